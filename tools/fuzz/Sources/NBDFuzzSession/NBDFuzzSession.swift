import Logging
@testable import NBDServer
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Plays one client session against the server's real `NBDConnectionHandler`.
///
/// The handler runs on a real event loop, on one end of a socketpair, with a
/// real thread pool for its reads, exactly as `NBDServer` sets it up for a
/// Unix-socket client. (NIO's `EmbeddedChannel` cannot host it: its event
/// loop must only be touched from its own thread, and the handler completes
/// reads from the thread pool.) The client is a second channel on the other
/// end of the socketpair, on the same event loop (``SessionClientHandler``):
/// it writes the input, half-closes, and reads until the server closes.
/// ``SessionEndHandler`` makes the server close only once every accepted
/// request is answered, so replies are not lost to the end of input.
///
/// The whole session runs on the loop's thread; the fuzzer's thread only
/// hands it over and waits for the result. Hops between threads are what a
/// session costs (on a busy machine each wake-up may wait for a time slice),
/// so there are two per session, plus one round trip to the pool per
/// request that reads the volume.
public final class NBDFuzzSession: Sendable {
    /// One session per process, built on first use (the export takes a few ms).
    public static let shared = NBDFuzzSession()

    /// A session that has not ended after this long is a finding: the server
    /// stopped answering a client that is still reading.
    public static let deadlineSeconds: Int64 = 10

    private let group: MultiThreadedEventLoopGroup
    private let threadPool: NIOThreadPool
    private let registry = ExportRegistry()
    private let configuration: NBDServerConfiguration
    private let logger = Logger(label: "cimnbd.fuzz", factory: { _ in DiscardingLogHandler() })

    private init() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        // The defaults, except a smaller largest READ (256 KiB instead of
        // 32 MiB) so that one input costs microseconds, not milliseconds.
        configuration = NBDServerConfiguration(eventLoopThreads: 1, blockingIOThreads: 1, maximumPayloadSize: 256 * 1024)
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        do {
            try FuzzExport.register(in: registry, directory: "\(base)/cimnbd-fuzz-nbd-\(getpid())")
        } catch {
            fatalError("cannot build the fuzz export: \(error)")
        }
    }

    /// The fixed handshake the request target starts with, chosen by the low
    /// four bits of `mode`: bit 0 client flag NO_ZEROES, bit 1
    /// NBD_OPT_STRUCTURED_REPLY, bit 2 NBD_OPT_SET_META_CONTEXT
    /// `base:allocation`, bit 3 NBD_OPT_EXPORT_NAME instead of NBD_OPT_GO.
    public static func handshake(mode: UInt8) -> [UInt8] {
        var bytes: [UInt8] = []
        func be<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.bigEndian) { bytes += $0 } }
        func option(_ code: UInt32, _ payload: [UInt8]) {
            be(NBDProtocol.optionMagic)
            be(code)
            be(UInt32(payload.count))
            bytes += payload
        }
        let name = Array(FuzzExport.name.utf8)
        be(NBDProtocol.clientFlagFixedNewstyle | (mode & 1 != 0 ? NBDProtocol.clientFlagNoZeroes : 0))
        if mode & 2 != 0 { option(NBDProtocol.optStructuredReply, []) }
        if mode & 4 != 0 {
            let query = Array(NBDProtocol.baseAllocation.utf8)
            var payload: [UInt8] = []
            func append(_ value: UInt32) { withUnsafeBytes(of: value.bigEndian) { payload += $0 } }
            append(UInt32(name.count))
            payload += name
            append(1)
            append(UInt32(query.count))
            payload += query
            option(NBDProtocol.optSetMetaContext, payload)
        }
        if mode & 8 != 0 {
            option(NBDProtocol.optExportName, name)
        } else {
            var payload: [UInt8] = []
            withUnsafeBytes(of: UInt32(name.count).bigEndian) { payload += $0 }
            payload += name
            payload += [0, 0]  // no information requests
            option(NBDProtocol.optGo, payload)
        }
        return bytes
    }

    /// Sends `bytes` as everything a client says after the greeting, then
    /// half-closes and reads until the server closes. Returns the number of
    /// bytes the server sent (greeting included).
    @discardableResult
    public func run(_ bytes: UnsafeRawBufferPointer) -> Int {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            fatalError("socketpair failed: errno \(errno)")
        }
        let (serverSocket, clientSocket) = (pair[0], pair[1])
        let input = ByteBuffer(bytes: bytes)
        let loop = group.next()
        let session = loop.flatSubmit { [self] () -> EventLoopFuture<Int> in
            let deadline = loop.scheduleTask(in: .seconds(Self.deadlineSeconds)) {
                fatalError("the NBD session did not end within \(Self.deadlineSeconds) s (\(input.readableBytes) bytes of input)")
            }
            let server = ClientBootstrap(group: loop)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .channelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = NBDConnectionHandler(registry: registry, configuration: configuration,
                                                           threadPool: threadPool, logger: logger)
                        try channel.pipeline.syncOperations.addHandler(handler)
                        try channel.pipeline.syncOperations.addHandler(SessionEndHandler(connection: handler))
                    }
                }
                .withConnectedSocket(serverSocket)
            let ended = loop.makePromise(of: Int.self)
            let client = ClientBootstrap(group: loop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(SessionClientHandler(input: input, ended: ended))
                    }
                }
                .withConnectedSocket(clientSocket)
            client.whenFailure { ended.fail($0) }
            // The client has seen the server's end of file; the server's
            // channel is closed (or closing) by then.
            return ended.futureResult.and(server).flatMap { received, channel in
                channel.closeFuture.map {
                    deadline.cancel()
                    return received
                }
            }
        }
        do {
            return try session.wait()
        } catch {
            fatalError("the fuzz session failed: \(error)")
        }
    }
}
