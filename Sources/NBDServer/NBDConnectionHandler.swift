import Logging
import NIOCore
import NIOPosix
import NIOTLS

/// Speaks NBD on one client connection: fixed-newstyle handshake, then the
/// transmission phase.
///
/// The handler does its own framing instead of using a decoder, because the
/// framing depends on state it owns (handshake vs transmission, WRITE payloads
/// to skip) and because it applies backpressure: once
/// ``NBDServerConfiguration/maximumInFlightRequests`` requests are being served
/// it neither parses buffered bytes nor asks the socket for more, until replies
/// have been written to the socket.
///
/// All methods run on the channel's event loop.
final class NBDConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    enum Phase {
        /// Greeting sent; waiting for the 32-bit client flags.
        case awaitingClientFlags
        /// Option haggling.
        case options
        /// Serving commands for `export`.
        case transmission
        /// No more input is processed; the channel closes once replies are out.
        case closing
    }

    /// What to do once a skipped payload has been consumed.
    enum AfterDiscard {
        /// An option too long to handle: answer NBD_REP_ERR_TOO_BIG.
        case optionTooBig(option: UInt32, length: UInt32)
        /// A WRITE on our read-only export: answer EPERM.
        case writeRejected(NBDRequest)
    }

    let registry: ExportRegistry
    let configuration: NBDServerConfiguration
    let blockingWork: BlockingWork
    var logger: Logger
    let metrics: (any NBDServerMetrics)?
    /// Where this connection's requests are counted, once in transmission.
    var exportMetrics: (any NBDExportMetrics)?
    /// The client ended option haggling with NBD_OPT_ABORT.
    var handshakeAborted = false

    var phase: Phase = .awaitingClientFlags
    /// Bytes received and not yet parsed.
    var inbound = ByteBuffer()
    /// Bytes of the current skipped payload still to consume.
    var discardRemaining: UInt64 = 0
    var afterDiscard: AfterDiscard?
    /// Requests accepted whose reply has not been written to the socket yet.
    var inFlight = 0
    /// A `read` from the pipeline held back because of backpressure.
    var readPending = false
    /// True while ``processInbound(context:)`` runs (it is never re-entered).
    var isProcessingInbound = false
    /// Replies were written during ``processInbound(context:)`` without a flush.
    var needsFlush = false
    /// A graceful stop was asked for (``NBDGracefulStop``): no new request is
    /// started, the connection closes once the started ones are answered.
    var isDraining = false
    /// Closes the connection when a graceful stop takes too long.
    var drainDeadline: Scheduled<Void>?
    var handshakeTimeout: Scheduled<Void>?
    /// True on TCP connections (TCP options apply), false on Unix sockets.
    var isTCP = false
    /// File data may go by sendfile to this peer (``NBDServerConfiguration/sendfile``).
    var sendfileToPeer = false
    /// Buffers of large copied read replies, used again once written.
    let readBuffers = ReadBufferPool(maximumSpareBytes: NBDConnectionHandler.spareReadBufferBytes)
    /// True once NBD_OPT_STARTTLS was acknowledged: a TLS handler now sits in
    /// front of this one, and everything sent or received goes through it.
    var tlsActive = false
    /// True once the TLS handshake completed.
    var tlsEstablished = false
    /// Files of replies being sent with sendfile, and their handles. On TCP
    /// the socket is corked exactly while this is not empty.
    var sendfileFiles = SendfileFiles()
    /// The re-check of ``sendfileFiles`` while replies with file data are pending.
    var sendfileWatch: Scheduled<Void>?

    // Negotiated state.
    var clientNoZeroes = false
    var structuredReplies = false
    /// The export whose `base:allocation` context was selected by the last
    /// NBD_OPT_SET_META_CONTEXT, if any.
    var metaContextExport: ExportGUID?
    /// The export served in transmission phase.
    var export: NBDExport?
    /// True when block status was negotiated for the export being served.
    var blockStatusEnabled = false

    /// Most bytes of spare read buffers a connection keeps: 16 replies of
    /// 512 KiB in flight, a common request size for sequential readers.
    static let spareReadBufferBytes = 8 * 1024 * 1024

    /// The context id given to `base:allocation` by NBD_OPT_SET_META_CONTEXT.
    static let baseAllocationContextID: UInt32 = 1

    convenience init(registry: ExportRegistry, configuration: NBDServerConfiguration, threadPool: NIOThreadPool, logger: Logger,
                     metrics: (any NBDServerMetrics)? = nil) {
        self.init(registry: registry, configuration: configuration, blockingWork: .pool(threadPool), logger: logger, metrics: metrics)
    }

    init(registry: ExportRegistry, configuration: NBDServerConfiguration, blockingWork: BlockingWork, logger: Logger,
         metrics: (any NBDServerMetrics)? = nil) {
        self.registry = registry
        self.configuration = configuration
        self.blockingWork = blockingWork
        self.logger = logger
        self.metrics = metrics
    }

    // MARK: Channel events

    func channelActive(context: ChannelHandlerContext) {
        inbound = context.channel.allocator.buffer(capacity: 256)
        switch context.channel.localAddress {
        case .v4, .v6: isTCP = true
        default: isTCP = false
        }
        sendfileToPeer = configuration.sendfile.allows(peer: context.channel.remoteAddress, local: context.channel.localAddress)
        logger.debug("client connected")
        var greeting = context.channel.allocator.buffer(capacity: 18)
        greeting.writeInteger(NBDProtocol.initPasswd)
        greeting.writeInteger(NBDProtocol.optionMagic)
        greeting.writeInteger(NBDProtocol.flagFixedNewstyle | NBDProtocol.flagNoZeroes)
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(greeting)), promise: nil)
        if configuration.handshakeTimeoutSeconds > 0 {
            handshakeTimeout = context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(configuration.handshakeTimeoutSeconds)) { [self] in
                guard phase == .awaitingClientFlags || phase == .options else { return }
                logger.notice("handshake timed out; closing")
                phase = .closing
                context.close(promise: nil)
            }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeTimeout?.cancel()
        handshakeTimeout = nil
        sendfileWatch?.cancel()
        sendfileWatch = nil
        drainDeadline?.cancel()
        drainDeadline = nil
        if let export {
            registry.detach(guid: export.guid, channel: context.channel)
        }
        if let exportMetrics {
            exportMetrics.transmissionEnded()
        } else {
            metrics?.handshakeEnded(handshakeAborted ? .aborted : .failed)
        }
        phase = .closing
        logger.debug("client disconnected")
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard phase != .closing else { return }
        inbound.writeBuffer(&bytes)
        processInbound(context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if tlsActive && !tlsEstablished {
            // A failed TLS handshake (wrong key, untrusted certificate) is what
            // an operator looks for in the log; a reset in transmission is not.
            metrics?.tlsHandshakeFailed()
            logger.notice("TLS handshake failed: \(error); closing")
        } else {
            // Connection resets and the like: nothing to answer, just close.
            logger.debug("connection error: \(error)")
        }
        phase = .closing
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let stop = event as? NBDGracefulStop {
            beginDraining(gracePeriod: stop.gracePeriod, context: context)
            return
        }
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            tlsEstablished = true
            metrics?.tlsHandshakeSucceeded()
            logger.info("TLS session established")
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Holds back reads while the connection has as many requests in flight as
    /// allowed, so a client cannot make us buffer without bound.
    func read(context: ChannelHandlerContext) {
        if shouldPauseReading {
            readPending = true
        } else {
            context.read()
        }
    }

    var shouldPauseReading: Bool {
        // A WRITE payload being skipped must keep flowing: its request counts as
        // in flight and only finishes once the payload is consumed.
        phase == .transmission && inFlight >= configuration.maximumInFlightRequests && discardRemaining == 0
    }

    // MARK: Framing

    /// Parses and handles as many complete messages as are buffered.
    ///
    /// This loop is the only place requests are started, and it is never
    /// re-entered: a reply that completes while it runs (an error written and
    /// flushed at once) only lowers ``inFlight``, and the loop, which re-checks
    /// the capacity after every flush, carries on. So a client pipelining a
    /// million requests costs iterations, never stack depth.
    func processInbound(context: ChannelHandlerContext) {
        guard !isProcessingInbound else { return }
        isProcessingInbound = true
        defer { isProcessingInbound = false }
        while true {
            parseBufferedMessages(context: context)
            guard needsFlush else { break }
            // Replies written without a flush complete here, which may free
            // capacity for more of the buffered requests.
            needsFlush = false
            context.flush()
        }
        if inbound.readerIndex > 64 * 1024 || inbound.readableBytes == 0 {
            inbound.discardReadBytes()
        }
        if isDraining {
            closeIfDrained(context: context)
        }
        // While draining, read on only to finish skipping a WRITE payload:
        // whatever else arrives would just be answered with ESHUTDOWN.
        if readPending && !shouldPauseReading && phase != .closing && (!isDraining || discardRemaining > 0) {
            readPending = false
            context.read()
        }
    }

    private func parseBufferedMessages(context: ChannelHandlerContext) {
        parsing: while true {
            if discardRemaining > 0 {
                let count = min(UInt64(inbound.readableBytes), discardRemaining)
                inbound.moveReaderIndex(forwardBy: Int(count))
                discardRemaining -= count
                if discardRemaining > 0 { break parsing }
                if let action = afterDiscard {
                    afterDiscard = nil
                    discardFinished(action, context: context)
                    needsFlush = true
                }
                continue parsing
            }
            switch phase {
            case .awaitingClientFlags:
                guard let flags = inbound.readInteger(as: UInt32.self) else { break parsing }
                guard handleClientFlags(flags, context: context) else { break parsing }
            case .options:
                guard inbound.readableBytes >= NBDProtocol.optionHeaderSize,
                      let magic = inbound.getInteger(at: inbound.readerIndex, as: UInt64.self),
                      let option = inbound.getInteger(at: inbound.readerIndex + 8, as: UInt32.self),
                      let length = inbound.getInteger(at: inbound.readerIndex + 12, as: UInt32.self)
                else { break parsing }
                guard magic == NBDProtocol.optionMagic else {
                    logger.warning("bad option magic 0x\(String(magic, radix: 16)); closing")
                    closeNow(context: context)
                    break parsing
                }
                if length > configuration.maximumOptionLength {
                    inbound.moveReaderIndex(forwardBy: NBDProtocol.optionHeaderSize)
                    rejectLongOption(option: option, length: length, context: context)
                    needsFlush = true
                    continue parsing
                }
                guard inbound.readableBytes >= NBDProtocol.optionHeaderSize + Int(length) else { break parsing }
                inbound.moveReaderIndex(forwardBy: NBDProtocol.optionHeaderSize)
                guard let payload = inbound.readSlice(length: Int(length)) else { break parsing }
                handleOption(option, payload: payload, context: context)
                needsFlush = true
            case .transmission:
                // While draining, requests are answered with ESHUTDOWN (small,
                // no I/O) instead of being held back by the in-flight cap.
                if inFlight >= configuration.maximumInFlightRequests && !isDraining { break parsing }
                guard inbound.readableBytes >= NBDProtocol.requestHeaderSize,
                      let magic = inbound.getInteger(at: inbound.readerIndex, as: UInt32.self)
                else { break parsing }
                guard magic == NBDProtocol.requestMagic else {
                    // Without a valid header we cannot know where the next one
                    // starts: the stream is corrupt and cannot be answered.
                    logger.warning("bad request magic 0x\(String(magic, radix: 16)); closing connection")
                    closeNow(context: context)
                    break parsing
                }
                guard let request = NBDRequest.read(from: &inbound) else { break parsing }
                handleRequest(request, context: context)
            case .closing:
                inbound.clear()
                break parsing
            }
        }
    }

    private func discardFinished(_ action: AfterDiscard, context: ChannelHandlerContext) {
        switch action {
        case .optionTooBig(let option, let length):
            sendOptionError(option: option, type: NBDProtocol.repErrTooBig,
                            message: "option \(option) is \(length) bytes long; the limit is \(configuration.maximumOptionLength)",
                            context: context)
        case .writeRejected(let request):
            finishWithError(request, error: .eperm, message: "the export is read-only", context: context)
        }
    }

    /// Closes at once, dropping anything not yet parsed.
    func closeNow(context: ChannelHandlerContext) {
        phase = .closing
        inbound.clear()
        context.close(promise: nil)
    }

    /// Closes after everything written so far reached the socket.
    func closeAfterFlush(context: ChannelHandlerContext) {
        phase = .closing
        inbound.clear()
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(ByteBuffer())), promise: promise)
        promise.futureResult.assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    // MARK: Graceful stop

    private func beginDraining(gracePeriod: TimeAmount, context: ChannelHandlerContext) {
        guard !isDraining, phase != .closing else { return }
        isDraining = true
        switch phase {
        case .awaitingClientFlags, .options:
            beginHandshakeDrain(gracePeriod: gracePeriod, context: context)
        case .transmission:
            logger.info("server stopping: finishing \(inFlight) started request(s), answering the rest with NBD_ESHUTDOWN")
            drainDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: gracePeriod) { [self] in
                guard context.channel.isActive else { return }
                logger.warning("server stopping: \(inFlight) reply(ies) still unsent after \(gracePeriod.nanoseconds / 1_000_000) ms; closing")
                phase = .closing
                context.close(promise: nil)
            }
            processInbound(context: context)
        case .closing:
            break
        }
    }

    /// Closes a draining connection once no request is in flight.
    func closeIfDrained(context: ChannelHandlerContext) {
        guard isDraining, phase == .transmission, inFlight == 0, discardRemaining == 0 else { return }
        logger.debug("server stopping: every started request answered; closing")
        closeAfterFlush(context: context)
    }

    // MARK: Request accounting

    /// Called when a request's reply has been written (or failed to be).
    ///
    /// Never starts requests itself while ``processInbound(context:)`` runs
    /// (the loop sees the freed capacity); otherwise this is a fresh stack (a
    /// write completing on a later event-loop tick) and the loop may run.
    func requestFinished(context: ChannelHandlerContext, failed: Bool) {
        inFlight -= 1
        if failed && phase != .closing {
            // The connection is broken: nothing more can be answered on it.
            phase = .closing
            inbound.clear()
        }
        if phase == .closing {
            if inFlight == 0 && context.channel.isActive {
                context.close(promise: nil)
            }
            return
        }
        if !isProcessingInbound {
            processInbound(context: context)
        }
    }
}
