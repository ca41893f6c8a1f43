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
/// reads from the thread pool.) The fuzzer's thread is the client: it writes
/// the input while reading replies, half-closes, and reads until the server
/// closes. ``SessionEndHandler`` makes the server close only once every
/// accepted request is answered, so replies are not lost to the end of input.
public final class NBDFuzzSession: Sendable {
    /// One session per process, built on first use (the export takes a few ms).
    public static let shared = NBDFuzzSession()

    /// A session that has not ended after this long is a finding: the server
    /// stopped answering a client that is still reading.
    public static let deadlineSeconds = 10

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
        let client = pair[1]
        // Not waited for: the client's bytes wait in the socket meanwhile, and
        // each hop between threads costs more than the rest of a session.
        let channel = ClientBootstrap(group: group)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = NBDConnectionHandler(registry: registry, configuration: configuration,
                                                       threadPool: threadPool, logger: logger)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    try channel.pipeline.syncOperations.addHandler(SessionEndHandler(connection: handler))
                }
            }
            .withConnectedSocket(pair[0])
        let received = converse(client: client, bytes: bytes)
        close(client)
        do {
            try channel.flatMap { $0.closeFuture }.wait()
        } catch {
            fatalError("the server side of the session failed: \(error)")
        }
        return received
    }

    /// The client side: writes while reading (a server blocked on a full
    /// socket would otherwise deadlock with us), then reads to end of file.
    private func converse(client: Int32, bytes: UnsafeRawBufferPointer) -> Int {
        _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
        var sent = 0
        var writing = true
        if bytes.isEmpty {
            shutdown(client, Int32(SHUT_WR))
            writing = false
        }
        var received = 0
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var started = timespec()
        clock_gettime(CLOCK_MONOTONIC, &started)
        while true {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let elapsed = Int(now.tv_sec - started.tv_sec) * 1000 + Int(now.tv_nsec - started.tv_nsec) / 1_000_000
            let remaining = Self.deadlineSeconds * 1000 - elapsed
            var descriptor = pollfd(fd: client, events: Int16(POLLIN) | (writing ? Int16(POLLOUT) : 0), revents: 0)
            let ready = remaining > 0 ? poll(&descriptor, 1, Int32(remaining)) : 0
            if ready == 0 {
                fatalError("the NBD session did not end within \(Self.deadlineSeconds) s: \(sent) of \(bytes.count) bytes sent, \(received) received")
            }
            if ready < 0 {
                if errno == EINTR { continue }
                fatalError("poll failed: errno \(errno)")
            }
            if descriptor.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                let n = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
                if n == 0 { return received }
                if n > 0 {
                    received += n
                } else if errno != EAGAIN && errno != EINTR {
                    return received  // reset by the server: the session is over
                }
            }
            if writing && descriptor.revents & Int16(POLLOUT) != 0 {
                let n = send(client, bytes.baseAddress.map { $0 + sent }, bytes.count - sent, Int32(MSG_NOSIGNAL))
                if n > 0 { sent += n }
                if n < 0 && errno != EAGAIN && errno != EINTR {
                    writing = false  // the server closed its end; read what it said
                } else if sent == bytes.count {
                    shutdown(client, Int32(SHUT_WR))
                    writing = false
                }
            }
        }
    }
}
