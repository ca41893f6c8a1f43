import Logging
import NIOCore

/// The fixed-newstyle handshake: client flags and option haggling.
extension NBDConnectionHandler {
    /// Checks the client flags. Returns false when the connection is closed.
    func handleClientFlags(_ flags: UInt32, context: ChannelHandlerContext) -> Bool {
        let known = NBDProtocol.clientFlagFixedNewstyle | NBDProtocol.clientFlagNoZeroes
        guard flags & ~known == 0 else {
            // proto.md: the server MUST drop the connection on unknown client flags.
            logger.notice("client sent unknown flags 0x\(String(flags, radix: 16)); closing")
            closeNow(context: context)
            return false
        }
        guard flags & NBDProtocol.clientFlagFixedNewstyle != 0 else {
            // Only fixed newstyle is served: old (non-fixed) newstyle clients
            // cannot receive errors, so they are refused up front.
            logger.notice("client does not speak fixed newstyle negotiation; closing")
            closeNow(context: context)
            return false
        }
        clientNoZeroes = flags & NBDProtocol.clientFlagNoZeroes != 0
        phase = .options
        return true
    }

    /// An option whose length exceeds the configured limit.
    func rejectLongOption(option: UInt32, length: UInt32, context: ChannelHandlerContext) {
        if length <= configuration.maximumSkippableOptionLength {
            logger.notice("option \(option) has length \(length); skipping it")
            discardRemaining = UInt64(length)
            afterDiscard = .optionTooBig(option: option, length: length)
        } else {
            // Reading gigabytes only to stay in sync is not worth it: answer and hang up.
            logger.notice("option \(option) has absurd length \(length); closing")
            sendOptionError(option: option, type: NBDProtocol.repErrTooBig,
                            message: "option \(option) is \(length) bytes long; the limit is \(configuration.maximumOptionLength)",
                            context: context)
            closeAfterFlush(context: context)
        }
    }

    func handleOption(_ option: UInt32, payload: ByteBuffer, context: ChannelHandlerContext) {
        logger.trace("option \(option), \(payload.readableBytes) bytes")
        // ABORT keeps its ACK: the client is leaving anyway.
        if isDraining && option != NBDProtocol.optAbort {
            answerWhileStopping(option, context: context)
            return
        }
        if tlsRequired {
            switch option {
            case NBDProtocol.optStartTLS, NBDProtocol.optAbort:
                break
            case NBDProtocol.optExportName:
                // proto.md (FORCEDTLS): this option cannot carry an error, so
                // the server MUST end the session.
                logger.notice("NBD_OPT_EXPORT_NAME without TLS, which this server requires; closing")
                closeNow(context: context)
                return
            default:
                sendOptionError(option: option, type: NBDProtocol.repErrTLSReqd,
                                message: "this server requires TLS: send NBD_OPT_STARTTLS first (nbds:// URIs)",
                                context: context)
                return
            }
        }
        switch option {
        case NBDProtocol.optExportName:
            handleExportName(payload, context: context)
        case NBDProtocol.optAbort:
            // proto.md: reply ACK, then the client hangs up; we do not wait for it.
            handshakeAborted = true
            sendOptionReply(option: option, type: NBDProtocol.repAck, payload: nil, context: context)
            closeAfterFlush(context: context)
        case NBDProtocol.optList:
            handleList(payload, context: context)
        case NBDProtocol.optStartTLS:
            handleStartTLS(payload, context: context)
        case NBDProtocol.optInfo, NBDProtocol.optGo:
            handleInfoOrGo(option, payload: payload, context: context)
        case NBDProtocol.optStructuredReply:
            guard payload.readableBytes == 0 else {
                sendOptionError(option: option, type: NBDProtocol.repErrInvalid,
                                message: "NBD_OPT_STRUCTURED_REPLY takes no data", context: context)
                return
            }
            structuredReplies = true
            sendOptionReply(option: option, type: NBDProtocol.repAck, payload: nil, context: context)
        case NBDProtocol.optListMetaContext, NBDProtocol.optSetMetaContext:
            handleMetaContext(option, payload: payload, context: context)
        default:
            sendOptionError(option: option, type: NBDProtocol.repErrUnsup,
                            message: "option \(option) is not supported by this server", context: context)
        }
    }

    // MARK: Stopping during the handshake

    /// A graceful stop reached a connection still haggling: proto.md's
    /// NBD_REP_ERR_SHUTDOWN tells its client why the session ends, so the
    /// next option is answered with it (``answerWhileStopping(_:context:)``)
    /// rather than the connection vanishing. A client that sends nothing is
    /// closed after ``NBDGracefulStop/handshakeAnswerWindow`` (or the grace
    /// period, if shorter): nothing of the export is at stake yet.
    func beginHandshakeDrain(gracePeriod: TimeAmount, context: ChannelHandlerContext) {
        let window = min(gracePeriod, NBDGracefulStop.handshakeAnswerWindow)
        logger.info("server stopping: a connection still in the handshake gets NBD_REP_ERR_SHUTDOWN for its next option")
        drainDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: window) { [self] in
            guard context.channel.isActive, phase != .closing else { return }
            logger.debug("server stopping: no option within \(window.nanoseconds / 1_000_000) ms from a connection in the handshake; closing")
            closeNow(context: context)
        }
        // An option already buffered is answered now.
        processInbound(context: context)
    }

    /// Answers one option (not ABORT, which is answered as always) of a
    /// stopping server, then closes.
    private func answerWhileStopping(_ option: UInt32, context: ChannelHandlerContext) {
        switch option {
        case NBDProtocol.optExportName:
            // Cannot carry an error (proto.md): hanging up is the only answer.
            logger.notice("NBD_OPT_EXPORT_NAME while the server is stopping; closing")
            closeNow(context: context)
        default:
            logger.debug("server stopping: answered option \(option) with NBD_REP_ERR_SHUTDOWN; closing")
            sendOptionError(option: option, type: NBDProtocol.repErrShutdown,
                            message: "the server is shutting down", context: context)
            closeAfterFlush(context: context)
        }
    }

    // MARK: Individual options

    private func handleExportName(_ payload: ByteBuffer, context: ChannelHandlerContext) {
        let name = payload.getString(at: payload.readerIndex, length: payload.readableBytes) ?? ""
        guard let found = registry.export(named: name),
              let attached = attach(found.guid, context: context)
        else {
            // NBD_OPT_EXPORT_NAME cannot carry an error: the protocol says hang up.
            logger.notice("NBD_OPT_EXPORT_NAME for unknown export \"\(NBDWireEncoding.protocolString(name, limit: 100))\"; closing")
            closeNow(context: context)
            return
        }
        var reply = context.channel.allocator.buffer(capacity: 134)
        reply.writeInteger(attached.volume.size)
        reply.writeInteger(transmissionFlags)
        if !clientNoZeroes {
            reply.writeRepeatingByte(0, count: 124)
        }
        context.write(wrapOutboundOut(.byteBuffer(reply)), promise: nil)
        enterTransmission(attached)
    }

    private func handleStartTLS(_ payload: ByteBuffer, context: ChannelHandlerContext) {
        let option = NBDProtocol.optStartTLS
        guard let tlsHandler = configuration.tls.makeHandler() else {
            sendOptionError(option: option, type: NBDProtocol.repErrPolicy,
                            message: "TLS is not configured on this server", context: context)
            return
        }
        guard !tlsActive else {
            sendOptionError(option: option, type: NBDProtocol.repErrInvalid,
                            message: "TLS is already active on this connection", context: context)
            return
        }
        guard payload.readableBytes == 0 else {
            sendOptionError(option: option, type: NBDProtocol.repErrInvalid,
                            message: "NBD_OPT_STARTTLS takes no data", context: context)
            return
        }
        guard inbound.readableBytes == 0 else {
            // The client must wait for our answer before it starts TLS; bytes
            // already here were sent in plain text and cannot be TLS records.
            logger.notice("client sent data after NBD_OPT_STARTTLS before the reply; closing")
            closeNow(context: context)
            return
        }
        sendOptionReply(option: option, type: NBDProtocol.repAck, payload: nil, context: context)
        // The ACK has now passed every handler: it leaves in plain text, and
        // whatever follows goes through the TLS handler put in front of us.
        context.flush()
        do {
            try context.pipeline.syncOperations.addHandler(tlsHandler, position: .before(self))
        } catch {
            logger.error("cannot start TLS: \(error); closing")
            closeNow(context: context)
            return
        }
        tlsActive = true
        // proto.md: nothing negotiated before STARTTLS survives it.
        structuredReplies = false
        metaContextExport = nil
        logger.debug("NBD_OPT_STARTTLS accepted; TLS handshake next")
    }

    /// True while option haggling must wait for TLS: `--tls require`, a TCP
    /// connection, and no NBD_OPT_STARTTLS yet.
    var tlsRequired: Bool {
        configuration.tls.mode == .require && isTCP && !tlsActive
    }

    private func handleList(_ payload: ByteBuffer, context: ChannelHandlerContext) {
        guard payload.readableBytes == 0 else {
            sendOptionError(option: NBDProtocol.optList, type: NBDProtocol.repErrInvalid,
                            message: "NBD_OPT_LIST takes no data", context: context)
            return
        }
        for export in registry.exports {
            let name = export.name
            let description = NBDWireEncoding.protocolString(export.description)
            var data = context.channel.allocator.buffer(capacity: 4 + name.utf8.count + description.utf8.count)
            data.writeInteger(UInt32(name.utf8.count))
            data.writeString(name)
            data.writeString(description)
            sendOptionReply(option: NBDProtocol.optList, type: NBDProtocol.repServer, payload: data, context: context)
        }
        sendOptionReply(option: NBDProtocol.optList, type: NBDProtocol.repAck, payload: nil, context: context)
    }

    private func handleInfoOrGo(_ option: UInt32, payload: ByteBuffer, context: ChannelHandlerContext) {
        var data = payload
        guard let nameLength = data.readInteger(as: UInt32.self),
              nameLength <= UInt32(NBDProtocol.maxStringLength),
              let name = data.readString(length: Int(nameLength)),
              let requestCount = data.readInteger(as: UInt16.self),
              data.readableBytes == Int(requestCount) * 2
        else {
            sendOptionError(option: option, type: NBDProtocol.repErrInvalid,
                            message: "malformed NBD_OPT_INFO/NBD_OPT_GO request", context: context)
            return
        }
        var requested = Set<UInt16>()
        for _ in 0..<requestCount {
            if let item = data.readInteger(as: UInt16.self) { requested.insert(item) }
        }
        guard let found = registry.export(named: name) else {
            sendUnknownExport(option: option, name: name, context: context)
            return
        }
        var export = found
        if option == NBDProtocol.optGo {
            // Attach before answering so that a concurrent removal is reported
            // as an error instead of leaving a client on a vanished export.
            guard let attached = attach(found.guid, context: context) else {
                sendUnknownExport(option: option, name: name, context: context)
                return
            }
            export = attached
        }
        let allocator = context.channel.allocator
        var info = allocator.buffer(capacity: 12)
        info.writeInteger(NBDProtocol.infoExport)
        info.writeInteger(export.volume.size)
        info.writeInteger(transmissionFlags)
        sendOptionReply(option: option, type: NBDProtocol.repInfo, payload: info, context: context)

        if requested.contains(NBDProtocol.infoName) {
            var reply = allocator.buffer(capacity: 2 + 36)
            reply.writeInteger(NBDProtocol.infoName)
            reply.writeString(export.name)
            sendOptionReply(option: option, type: NBDProtocol.repInfo, payload: reply, context: context)
        }
        if requested.contains(NBDProtocol.infoDescription) {
            let text = NBDWireEncoding.protocolString(export.description)
            var reply = allocator.buffer(capacity: 2 + text.utf8.count)
            reply.writeInteger(NBDProtocol.infoDescription)
            reply.writeString(text)
            sendOptionReply(option: option, type: NBDProtocol.repInfo, payload: reply, context: context)
        }
        // Always sent. Clients that did not ask may still send unaligned
        // requests (they are served); the minimum is what hole and block-status
        // boundaries are aligned to.
        var blockSize = allocator.buffer(capacity: 14)
        blockSize.writeInteger(NBDProtocol.infoBlockSize)
        blockSize.writeInteger(configuration.minimumBlockSize)
        blockSize.writeInteger(UInt32(4096))
        blockSize.writeInteger(configuration.maximumPayloadSize)
        sendOptionReply(option: option, type: NBDProtocol.repInfo, payload: blockSize, context: context)

        sendOptionReply(option: option, type: NBDProtocol.repAck, payload: nil, context: context)
        if option == NBDProtocol.optGo {
            enterTransmission(export)
        }
    }

    private func handleMetaContext(_ option: UInt32, payload: ByteBuffer, context: ChannelHandlerContext) {
        let isSet = option == NBDProtocol.optSetMetaContext
        if isSet {
            // proto.md: SET replaces the previous selection even when it fails.
            metaContextExport = nil
        }
        guard structuredReplies else {
            sendOptionError(option: option, type: NBDProtocol.repErrInvalid,
                            message: "negotiate structured replies before metadata contexts", context: context)
            return
        }
        var data = payload
        guard let nameLength = data.readInteger(as: UInt32.self),
              nameLength <= UInt32(NBDProtocol.maxStringLength),
              let name = data.readString(length: Int(nameLength)),
              let queryCount = data.readInteger(as: UInt32.self)
        else {
            sendOptionError(option: option, type: NBDProtocol.repErrInvalid,
                            message: "malformed metadata context request", context: context)
            return
        }
        var queries: [String] = []
        for _ in 0..<queryCount {
            guard let length = data.readInteger(as: UInt32.self),
                  length <= UInt32(NBDProtocol.maxStringLength),
                  let query = data.readString(length: Int(length))
            else {
                sendOptionError(option: option, type: NBDProtocol.repErrInvalid,
                                message: "malformed metadata context query", context: context)
                return
            }
            queries.append(query)
        }
        guard data.readableBytes == 0 else {
            sendOptionError(option: option, type: NBDProtocol.repErrInvalid,
                            message: "trailing bytes after metadata context queries", context: context)
            return
        }
        guard let export = registry.export(named: name) else {
            sendUnknownExport(option: option, name: name, context: context)
            return
        }
        let selects: Bool
        if isSet {
            // SET: only the full name selects; "base:" alone MUST be ignored.
            selects = queries.contains(NBDProtocol.baseAllocation)
        } else {
            // LIST: no query lists everything, "base:" is a wildcard.
            selects = queries.isEmpty || queries.contains(NBDProtocol.baseAllocation) || queries.contains("base:")
        }
        if selects {
            let contextName = NBDProtocol.baseAllocation
            var reply = context.channel.allocator.buffer(capacity: 4 + contextName.utf8.count)
            // LIST replies carry id 0 (reserved); SET gives the id used in replies.
            reply.writeInteger(isSet ? Self.baseAllocationContextID : 0)
            reply.writeString(contextName)
            sendOptionReply(option: option, type: NBDProtocol.repMetaContext, payload: reply, context: context)
            if isSet {
                metaContextExport = export.guid
            }
        }
        sendOptionReply(option: option, type: NBDProtocol.repAck, payload: nil, context: context)
    }

    // MARK: Helpers

    /// Flags sent with NBD_INFO_EXPORT / NBD_OPT_EXPORT_NAME.
    var transmissionFlags: UInt16 {
        var flags = NBDProtocol.transmissionHasFlags | NBDProtocol.transmissionReadOnly
            | NBDProtocol.transmissionSendFlush | NBDProtocol.transmissionSendCache
            | NBDProtocol.transmissionCanMultiConn
        if structuredReplies {
            // proto.md: SEND_DF MUST be clear unless structured replies were negotiated.
            flags |= NBDProtocol.transmissionSendDF
        }
        return flags
    }

    private func attach(_ guid: ExportGUID, context: ChannelHandlerContext) -> NBDExport? {
        registry.attach(guid: guid, channel: context.channel)
    }

    private func enterTransmission(_ export: NBDExport) {
        self.export = export
        // Block status is only valid for the export SET_META_CONTEXT named.
        blockStatusEnabled = structuredReplies && metaContextExport == export.guid
        phase = .transmission
        handshakeTimeout?.cancel()
        handshakeTimeout = nil
        logger[metadataKey: "nbd.export"] = "\(export.guid)"
        exportMetrics = metrics?.transmissionStarted(export: export.guid)
        logger.info("client entered transmission phase", metadata: [
            "structured": "\(structuredReplies)", "blockStatus": "\(blockStatusEnabled)",
        ])
    }

    func sendUnknownExport(option: UInt32, name: String, context: ChannelHandlerContext) {
        let shown = NBDWireEncoding.protocolString(name, limit: 200)
        let host = listHint(context: context)
        sendOptionError(option: option, type: NBDProtocol.repErrUnknown,
                        message: "no export named \"\(shown)\"; list exports with: nbdinfo --list \(host)",
                        context: context)
    }

    /// An `nbdinfo --list` URI for the address the client connected to.
    private func listHint(context: ChannelHandlerContext) -> String {
        guard let local = context.channel.localAddress else { return "nbd://HOST" }
        switch local {
        case .v4(let address):
            return "nbd://\(address.host):\(local.port ?? 10809)"
        case .v6(let address):
            return "nbd://[\(address.host)]:\(local.port ?? 10809)"
        case .unixDomainSocket:
            return "'nbd+unix:///?socket=\(local.pathname ?? "SOCKET")'"
        }
    }

    func sendOptionReply(option: UInt32, type: UInt32, payload: ByteBuffer?, context: ChannelHandlerContext) {
        let buffer = NBDWireEncoding.optionReply(option: option, type: type, payload: payload, allocator: context.channel.allocator)
        context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
    }

    func sendOptionError(option: UInt32, type: UInt32, message: String, context: ChannelHandlerContext) {
        logger.debug("option \(option) refused: \(message)")
        let text = NBDWireEncoding.protocolString(message)
        var payload = context.channel.allocator.buffer(capacity: text.utf8.count)
        payload.writeString(text)
        sendOptionReply(option: option, type: type, payload: payload, context: context)
    }
}
