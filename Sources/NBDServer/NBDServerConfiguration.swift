import NIOCore

/// Tunables of an ``NBDServer``. The defaults suit a local daemon.
public struct NBDServerConfiguration: Sendable {
    /// Event-loop threads for network I/O (default: the number of cores).
    public var eventLoopThreads: Int
    /// Threads that run blocking volume reads (`pread`) off the event loops.
    public var blockingIOThreads: Int
    /// Most requests of one connection being served at once: the per-client
    /// cap on work and memory. When reached, the server stops reading that
    /// connection's socket until replies are written, so the client's own TCP
    /// window applies backpressure. Per connection the reply bytes held are at
    /// most this many times ``maximumPayloadSize`` (16 × 32 MiB by default),
    /// and much less with sendfile, which holds no copy of file data.
    public var maximumInFlightRequests: Int
    /// Largest READ length accepted; advertised as the maximum block size.
    /// At most 32 MiB (larger reads get `EINVAL`).
    public var maximumPayloadSize: UInt32
    /// Largest option payload handled during the handshake. Longer options are
    /// skipped and answered with `NBD_REP_ERR_TOO_BIG`.
    public var maximumOptionLength: UInt32
    /// Options longer than this are not even skipped: the server answers
    /// `NBD_REP_ERR_TOO_BIG` and closes the connection.
    public var maximumSkippableOptionLength: UInt32
    /// Which connections get file-backed data with `sendfile` (`FileRegion`)
    /// instead of copies through user-space buffers: by default only TCP
    /// clients on other hosts (see ``SendfileUse``).
    public var sendfile: SendfileUse
    /// Serve reads whose bytes are at hand (page-cached file data, zeros) on
    /// the event loop, with `preadv2(RWF_NOWAIT)`; only the rest goes through
    /// the blocking-I/O pool. Off: every read takes the pool (a thread hop per
    /// request, several times the CPU; for comparison, or storage whose
    /// `RWF_NOWAIT` blocks anyway).
    public var readsOnEventLoop: Bool
    /// File-backed pieces shorter than this are copied even when
    /// ``sendfile`` applies: a syscall per tiny piece costs more than a copy.
    public var sendfileMinimumLength: UInt64
    /// Seconds a client may spend in the handshake before it is disconnected
    /// (0 disables the limit). Stops idle sockets from pinning descriptors.
    public var handshakeTimeoutSeconds: Int64
    /// Most client connections open at once, over all listeners, in any phase.
    /// Connections beyond it are closed as soon as they are accepted (and
    /// counted in ``NBDServer/refusedConnectionCount``). The server lowers it at
    /// start when the process's descriptor limit could not hold that many.
    public var maximumConnections: Int
    /// Client addresses allowed to connect over TCP; empty allows everyone.
    /// Others are closed before the handshake. Unix-socket clients are not
    /// concerned (the socket file's permissions apply).
    public var allowedClients: [NBDClientAddressRange]
    /// How long a graceful stop (shutdown, forced dismount) waits for replies
    /// already being sent before it closes the connection anyway.
    public var shutdownGracePeriod: TimeAmount
    /// Advertised as the minimum block size (`NBD_INFO_BLOCK_SIZE`): hole
    /// chunks of structured reads and block-status descriptors start and end
    /// on multiples of it (except where a request itself starts or ends).
    /// A power of two from 512 to 4096.
    public var minimumBlockSize: UInt32

    /// The default of ``maximumConnections``.
    public static let defaultMaximumConnections = 4096
    /// TLS: off, offered or required on TCP connections. Unix-socket
    /// connections may upgrade with NBD_OPT_STARTTLS too but are never forced
    /// to: the socket's file mode guards them, and the kernel's nbd driver,
    /// which cannot speak TLS, needs a plain path to attach through.
    public var tls: NBDServerTLS

    /// Creates a configuration with the given values (all have defaults).
    public init(
        eventLoopThreads: Int = System.coreCount,
        blockingIOThreads: Int = 8,
        maximumInFlightRequests: Int = 16,
        maximumPayloadSize: UInt32 = 32 * 1024 * 1024,
        maximumOptionLength: UInt32 = 64 * 1024,
        maximumSkippableOptionLength: UInt32 = 1024 * 1024,
        sendfile: SendfileUse = .remote,
        sendfileMinimumLength: UInt64 = 16 * 1024,
        readsOnEventLoop: Bool = true,
        handshakeTimeoutSeconds: Int64 = 60,
        maximumConnections: Int = NBDServerConfiguration.defaultMaximumConnections,
        allowedClients: [NBDClientAddressRange] = [],
        shutdownGracePeriod: TimeAmount = .seconds(10),
        minimumBlockSize: UInt32 = 512,
        tls: NBDServerTLS = .off
    ) {
        self.eventLoopThreads = max(1, eventLoopThreads)
        self.blockingIOThreads = max(1, blockingIOThreads)
        self.maximumInFlightRequests = max(1, maximumInFlightRequests)
        self.maximumPayloadSize = min(max(4096, maximumPayloadSize), 32 * 1024 * 1024)
        self.maximumOptionLength = max(8 * 1024, maximumOptionLength)
        self.maximumSkippableOptionLength = max(self.maximumOptionLength, maximumSkippableOptionLength)
        self.sendfile = sendfile
        self.sendfileMinimumLength = sendfileMinimumLength
        self.readsOnEventLoop = readsOnEventLoop
        self.handshakeTimeoutSeconds = max(0, handshakeTimeoutSeconds)
        self.maximumConnections = max(1, maximumConnections)
        self.allowedClients = allowedClients
        self.shutdownGracePeriod = max(.zero, shutdownGracePeriod)
        let blockSize = min(max(512, minimumBlockSize), 4096)
        // Round down to a power of two, as proto.md requires.
        self.minimumBlockSize = UInt32(1) << (31 - UInt32(blockSize.leadingZeroBitCount))
        self.tls = tls
    }
}
