import CimFS
import Logging
import NIOCore
import NIOPosix
import VolumeSynth

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The transmission phase: commands and their replies.
extension NBDConnectionHandler {
    /// 1 MiB of zeros, written (shared, never copied) for zero runs in data.
    private static let zeroBuffer: ByteBuffer = {
        var buffer = ByteBufferAllocator().buffer(capacity: 1 << 20)
        buffer.writeRepeatingByte(0, count: 1 << 20)
        return buffer
    }()

    func handleRequest(_ request: NBDRequest, context: ChannelHandlerContext) {
        guard let export else {
            closeNow(context: context)
            return
        }
        logger.trace("request \(request.commandName) offset \(request.offset) length \(request.length) flags \(request.flags)")
        if isDraining && request.type != NBDProtocol.cmdDisc && request.type != NBDProtocol.cmdWrite {
            // proto.md "Terminating the transmission phase": requests not yet
            // started when the server shuts down get NBD_ESHUTDOWN.
            inFlight += 1
            finishWithError(request, error: .eshutdown, message: "the server is shutting down", context: context)
            return
        }
        switch request.type {
        case NBDProtocol.cmdDisc:
            // proto.md: finish outstanding requests, then close; no reply.
            logger.debug("client sent NBD_CMD_DISC")
            phase = .closing
            inbound.clear()
            if inFlight == 0 {
                context.close(promise: nil)
            }
        case NBDProtocol.cmdWrite:
            inFlight += 1
            if request.length > 0 {
                // The payload follows the header; skip it without buffering so
                // the stream stays in sync, then answer.
                discardRemaining = UInt64(request.length)
                afterDiscard = .writeRejected(request)
            } else {
                finishWithError(request, error: .eperm, message: "the export is read-only", context: context)
            }
        case NBDProtocol.cmdTrim, NBDProtocol.cmdWriteZeroes:
            inFlight += 1
            finishWithError(request, error: .eperm, message: "the export is read-only", context: context)
        case NBDProtocol.cmdFlush:
            inFlight += 1
            // proto.md "Command flags": FUA only with NBD_FLAG_SEND_FUA, which a
            // read-only export does not advertise; FLUSH takes no other flag.
            guard request.flags == 0 else {
                finishWithError(request, error: .einval, message: "unsupported flags 0x\(String(request.flags, radix: 16)) for FLUSH", context: context)
                return
            }
            // Nothing is ever written, so there is nothing to flush.
            finishSuccessfully(request, context: context)
        case NBDProtocol.cmdRead:
            inFlight += 1
            handleRead(request, export: export, context: context)
        case NBDProtocol.cmdCache:
            inFlight += 1
            handleCache(request, export: export, context: context)
        case NBDProtocol.cmdBlockStatus:
            inFlight += 1
            handleBlockStatus(request, export: export, context: context)
        default:
            inFlight += 1
            finishWithError(request, error: .einval, message: "unknown command \(request.type)", context: context)
        }
    }

    // MARK: READ

    private func handleRead(_ request: NBDRequest, export: NBDExport, context: ChannelHandlerContext) {
        // DF only once structured replies made us advertise SEND_DF; never FUA
        // (SEND_FUA is not advertised: proto.md says EINVAL).
        let allowedFlags = structuredReplies ? NBDProtocol.cmdFlagDF : 0
        guard request.flags & ~allowedFlags == 0 else {
            finishWithError(request, error: .einval, message: "unsupported flags 0x\(String(request.flags, radix: 16)) for READ", context: context)
            return
        }
        guard request.length > 0 else {
            finishWithError(request, error: .einval, message: "zero-length read", context: context)
            return
        }
        guard request.length <= configuration.maximumPayloadSize else {
            finishWithError(request, error: .einval,
                            message: "read of \(request.length) bytes exceeds the maximum of \(configuration.maximumPayloadSize)",
                            context: context)
            return
        }
        guard requireInside(request, export: export, operation: "read", context: context) else { return }
        let dontFragment = request.flags & NBDProtocol.cmdFlagDF != 0
        let options = ReadReplyPlan.Options(
            allowHoles: structuredReplies && !dontFragment,
            // A TLS handler takes bytes only: file regions cannot pass it.
            useSendfile: sendfileToPeer && !tlsActive,
            sendfileMinimumLength: configuration.sendfileMinimumLength,
            blockSize: UInt64(configuration.minimumBlockSize)
        )
        let volume = export.volume
        let offset = request.offset
        let length = Int(request.length)
        // Page-cached data is served right here: the hop to the I/O pool and
        // back costs several times more CPU than the read itself. What may
        // wait for the disk goes to the pool.
        if configuration.readsOnEventLoop {
            do {
                if let plan = try ReadReplyPlan.buildWithoutBlocking(volume: volume, offset: offset, length: length, options: options,
                                                                       buffers: readBuffers) {
                    sendReadReply(request, plan: plan, context: context)
                    return
                }
            } catch {
                finishWithFailure(request, error: error, context: context)
                return
            }
        }
        let future = blockingWork.run(on: context.eventLoop) {
            try ReadReplyPlan.build(volume: volume, offset: offset, length: length, options: options)
        }
        future.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let plan):
                sendReadReply(request, plan: plan, context: context)
            case .failure(let error):
                finishWithFailure(request, error: error, context: context)
            }
        }
    }

    private func sendReadReply(_ request: NBDRequest, plan: ReadReplyPlan, context: ChannelHandlerContext) {
        let allocator = context.channel.allocator
        var writes: [IOData] = []
        var sentFiles: [RegionFile] = []
        // Copy buffers to be filled again once this reply is written.
        var keptBuffers: [ByteBuffer] = []
        // No reply with file data pending: the socket is not corked.
        let firstFileReply = sendfileFiles.isEmpty

        func appendParts(_ parts: [ReadReplyPlan.Part]) {
            for part in parts {
                switch part {
                case .bytes(let buffer):
                    writes.append(.byteBuffer(buffer))
                    if readBuffers.isWorthKeeping(buffer) { keptBuffers.append(buffer) }
                case .zeros(var count):
                    while count > 0 {
                        let piece = min(count, Self.zeroBuffer.readableBytes)
                        writes.append(.byteBuffer(Self.zeroBuffer.getSlice(at: 0, length: piece) ?? ByteBuffer()))
                        count -= piece
                    }
                case .file(let file, let offset, let length):
                    let handle = sendfileFiles.beginReply(file)
                    sentFiles.append(file)
                    let start = Int(offset)
                    writes.append(.fileRegion(FileRegion(fileHandle: handle, readerIndex: start, endIndex: start + length)))
                }
            }
        }

        if !structuredReplies {
            writes.append(.byteBuffer(NBDWireEncoding.simpleReply(handle: request.handle, error: 0, allocator: allocator)))
            for chunk in plan.chunks {
                if case .data(_, _, let parts) = chunk { appendParts(parts) }
            }
        } else {
            // The last chunk carries the done flag, also when its data goes by
            // sendfile: a sendfile failing mid-way leaves the stream cut inside
            // a chunk, which only a disconnect can answer (proto.md), done flag
            // or not, so a separate NONE chunk would only cost a tiny packet.
            for (index, chunk) in plan.chunks.enumerated() {
                let isLast = index == plan.chunks.count - 1
                let flags: UInt16 = isLast ? NBDProtocol.replyFlagDone : 0
                var header = allocator.buffer(capacity: 32)
                switch chunk {
                case .data(let offset, let length, let parts):
                    NBDWireEncoding.writeChunkHeader(into: &header, handle: request.handle, flags: flags,
                                                     type: NBDProtocol.replyTypeOffsetData, length: UInt32(8 + length))
                    header.writeInteger(offset)
                    writes.append(.byteBuffer(header))
                    appendParts(parts)
                case .hole(let offset, let length):
                    NBDWireEncoding.writeChunkHeader(into: &header, handle: request.handle, flags: flags,
                                                     type: NBDProtocol.replyTypeOffsetHole, length: 12)
                    header.writeInteger(offset)
                    header.writeInteger(length)
                    writes.append(.byteBuffer(header))
                }
            }
            if plan.chunks.isEmpty {
                writes.append(.byteBuffer(NBDWireEncoding.structuredDone(handle: request.handle, allocator: allocator)))
            }
        }
        // sendfile cannot carry a reply header with its data, and TCP_NODELAY
        // is on: uncorked, every header would leave as a tiny packet of its
        // own. So the socket stays corked (only full segments leave) while
        // replies with file data are being written, and is uncorked, which
        // pushes the tail, when the last of them is out.
        if isTCP && firstFileReply && !sentFiles.isEmpty {
            setCork(true, context: context)
        }
        let future = writeReply(writes, answering: request, context: context)
        if !keptBuffers.isEmpty {
            future.assumeIsolated().whenComplete { [self, keptBuffers] _ in
                for buffer in keptBuffers { readBuffers.giveBack(buffer) }
            }
        }
        guard !sentFiles.isEmpty else { return }
        startSendfileWatch(context: context)
        future.assumeIsolated().whenComplete { [self] result in
            if case .failure(let error) = result {
                logger.warning("sending file data failed: \(error)")
            }
            for file in sentFiles {
                sendfileFiles.endReply(file)
            }
            if isTCP && sendfileFiles.isEmpty {
                setCork(false, context: context)
            }
        }
    }

    /// How often files being sent are checked by ``startSendfileWatch(context:)``.
    static let sendfileWatchInterval = TimeAmount.seconds(1)

    /// Guards against a file that shrinks after it was checked: `sendfile` then
    /// returns 0 at the new end of file, which NIO treats as "try again", so the
    /// reply would never finish and the event loop would spin. While replies
    /// with file data are pending, the connection re-checks their files every
    /// ``sendfileWatchInterval``; if one changed, it closes (proto.md: an error
    /// after a success header means hard disconnect). One timer per
    /// connection, not one per reply.
    private func startSendfileWatch(context: ChannelHandlerContext) {
        guard sendfileWatch == nil else { return }
        sendfileWatch = context.eventLoop.assumeIsolated().scheduleTask(in: Self.sendfileWatchInterval) { [self] in
            sendfileWatch = nil
            guard !sendfileFiles.isEmpty, context.channel.isActive else { return }
            do {
                try sendfileFiles.checkUnchanged()
            } catch {
                logger.error("file changed while being sent, closing connection: \(error)")
                context.close(promise: nil)
                return
            }
            startSendfileWatch(context: context)
        }
    }

    private func setCork(_ on: Bool, context: ChannelHandlerContext) {
        let option = ChannelOptions.Types.SocketOption(level: SocketOptionLevel(IPPROTO_TCP), name: TCP_CORK)
        // Only an optimisation: a failure changes nothing about correctness.
        try? context.channel.syncOptions?.setOption(option, value: on ? 1 : 0)
    }

    // MARK: BLOCK_STATUS

    private func handleBlockStatus(_ request: NBDRequest, export: NBDExport, context: ChannelHandlerContext) {
        guard structuredReplies, blockStatusEnabled else {
            finishWithError(request, error: .einval, message: "no metadata context was negotiated (select base:allocation first)", context: context)
            return
        }
        guard request.flags & ~NBDProtocol.cmdFlagReqOne == 0 else {
            finishWithError(request, error: .einval, message: "unsupported flags 0x\(String(request.flags, radix: 16)) for BLOCK_STATUS", context: context)
            return
        }
        guard request.length > 0 else {
            finishWithError(request, error: .einval, message: "zero-length block status request", context: context)
            return
        }
        guard requireInside(request, export: export, operation: "block status", context: context) else { return }
        let volume = export.volume
        let offset = request.offset
        let length = UInt64(request.length)
        let future = blockingWork.run(on: context.eventLoop) {
            try volume.blockStatus(offset: offset, length: length)
        }
        future.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let extents):
                sendBlockStatus(request, extents: extents, context: context)
            case .failure(let error):
                finishWithFailure(request, error: error, context: context)
            }
        }
    }

    /// Most descriptors sent in one reply; the client asks again for the rest.
    private static let maximumDescriptors = 1 << 16

    private func sendBlockStatus(_ request: NBDRequest, extents: [VolumeExtent], context: ChannelHandlerContext) {
        let onlyOne = request.flags & NBDProtocol.cmdFlagReqOne != 0
        let aligned = BlockAlignment.extents(extents, start: request.offset, limit: UInt64(request.length),
                                             blockSize: UInt64(configuration.minimumBlockSize))
        var descriptors: [(UInt32, UInt32)] = []
        for extent in aligned {
            // Never more than was asked (the limit above), so it fits in 32 bits.
            let length = UInt32(truncatingIfNeeded: extent.length)
            let flags = extent.isZero ? (NBDProtocol.stateHole | NBDProtocol.stateZero) : 0
            descriptors.append((length, flags))
            if onlyOne || descriptors.count >= Self.maximumDescriptors { break }
        }
        if descriptors.isEmpty {
            // proto.md: at least one descriptor; status 0 ("data") is always safe.
            descriptors.append((request.length, 0))
        }
        var buffer = context.channel.allocator.buffer(capacity: 24 + 8 * descriptors.count)
        NBDWireEncoding.writeChunkHeader(into: &buffer, handle: request.handle, flags: NBDProtocol.replyFlagDone,
                                         type: NBDProtocol.replyTypeBlockStatus, length: UInt32(4 + 8 * descriptors.count))
        buffer.writeInteger(Self.baseAllocationContextID)
        for (length, flags) in descriptors {
            buffer.writeInteger(length)
            buffer.writeInteger(flags)
        }
        writeReply([.byteBuffer(buffer)], answering: request, context: context)
    }

    // MARK: CACHE

    private func handleCache(_ request: NBDRequest, export: NBDExport, context: ChannelHandlerContext) {
        guard request.flags == 0 else {
            // proto.md: a server advertising SEND_CACHE MUST reject unknown flags.
            finishWithError(request, error: .einval, message: "unsupported flags 0x\(String(request.flags, radix: 16)) for CACHE", context: context)
            return
        }
        guard requireInside(request, export: export, operation: "cache", context: context) else { return }
        let volume = export.volume
        let offset = request.offset
        let length = UInt64(request.length)
        let future = blockingWork.run(on: context.eventLoop) {
            guard length > 0 else { return }
            // Prefetch: ask the kernel to read file-backed data ahead. Metadata
            // and zeros are generated, so there is nothing to warm for them.
            for segment in try volume.segments(offset: offset, length: length) {
                if case .file(let file, let fileOffset, let segmentLength) = segment, fileOffset <= UInt64(Int64.max) {
                    _ = posix_fadvise(file.fileDescriptor, off_t(fileOffset), off_t(min(segmentLength, UInt64(Int64.max))), Int32(POSIX_FADV_WILLNEED))
                }
            }
        }
        future.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success:
                finishSuccessfully(request, context: context)
            case .failure(let error):
                finishWithFailure(request, error: error, context: context)
            }
        }
    }

    // MARK: Replies

    /// Answers EINVAL and returns false unless the request's range lies inside the export.
    private func requireInside(_ request: NBDRequest, export: NBDExport, operation: String, context: ChannelHandlerContext) -> Bool {
        let size = export.volume.size
        guard Self.rangeInside(offset: request.offset, length: request.length, size: size) else {
            finishWithError(request, error: .einval,
                            message: "\(operation) of \(request.length) bytes at \(request.offset) is beyond the end of the export (\(size) bytes)",
                            context: context)
            return false
        }
        return true
    }

    /// True when `[offset, offset + length)` lies inside `size` bytes, without
    /// trapping on overflow of client-chosen values.
    static func rangeInside(offset: UInt64, length: UInt32, size: UInt64) -> Bool {
        let (end, overflow) = offset.addingReportingOverflow(UInt64(length))
        return !overflow && end <= size
    }

    /// Writes one complete reply to `request` (`error` is the NBD error it
    /// carries) and accounts the request as finished when the bytes have left
    /// (or failed to).
    ///
    /// Inside ``processInbound(context:)`` the reply is only written: the loop
    /// flushes once per batch. Elsewhere (a read completed by the I/O pool) it
    /// is flushed at once.
    @discardableResult
    func writeReply(_ writes: [IOData], answering request: NBDRequest, error: UInt32 = 0,
                    context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        let promise = context.eventLoop.makePromise(of: Void.self)
        guard let last = writes.last else {
            promise.succeed()
            requestFinished(context: context, failed: false)
            return promise.futureResult
        }
        for data in writes.dropLast() {
            context.write(wrapOutboundOut(data), promise: nil)
        }
        promise.futureResult.assumeIsolated().whenComplete { [self] result in
            exportMetrics?.requestCompleted(request, error: error, written: result)
            if case .failure = result {
                requestFinished(context: context, failed: true)
            } else {
                requestFinished(context: context, failed: false)
            }
        }
        if isProcessingInbound {
            context.write(wrapOutboundOut(last), promise: promise)
            needsFlush = true
        } else {
            context.writeAndFlush(wrapOutboundOut(last), promise: promise)
        }
        return promise.futureResult
    }

    func finishSuccessfully(_ request: NBDRequest, context: ChannelHandlerContext) {
        // A simple reply without payload is valid even with structured replies.
        writeReply([.byteBuffer(NBDWireEncoding.simpleReply(handle: request.handle, error: 0, allocator: context.channel.allocator))],
                   answering: request, context: context)
    }

    /// The message is built only when it is sent (structured replies) or
    /// logged: a flood of bad requests should not cost a string each.
    func finishWithError(_ request: NBDRequest, error: NBDError, message: @autoclosure () -> String, context: ChannelHandlerContext) {
        logger.debug("\(request.commandName) failed with \(error): \(message())")
        let allocator = context.channel.allocator
        let reply: ByteBuffer
        if structuredReplies {
            // proto.md prefers structured errors: the message reaches the user.
            reply = NBDWireEncoding.structuredError(handle: request.handle, error: error.rawValue, message: message(), allocator: allocator)
        } else {
            reply = NBDWireEncoding.simpleReply(handle: request.handle, error: error.rawValue, allocator: allocator)
        }
        writeReply([.byteBuffer(reply)], answering: request, error: error.rawValue, context: context)
    }

    /// Maps a failure of the volume (or of the I/O pool) to an NBD error reply.
    func finishWithFailure(_ request: NBDRequest, error: any Error, context: ChannelHandlerContext) {
        if let volumeError = error as? VolumeError, case .outOfRange = volumeError {
            finishWithError(request, error: .einval, message: volumeError.description, context: context)
            return
        }
        logger.error("\(request.commandName) of \(request.length) bytes at \(request.offset) failed: \(error)")
        finishWithError(request, error: .eio, message: "I/O error: \(error)", context: context)
    }
}
