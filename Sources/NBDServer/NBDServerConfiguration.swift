import NIOCore

/// Tunables of an ``NBDServer``. The defaults suit a local daemon.
public struct NBDServerConfiguration: Sendable {
    /// Event-loop threads for network I/O (default: the number of cores).
    public var eventLoopThreads: Int
    /// Threads that run blocking volume reads (`pread`) off the event loops.
    public var blockingIOThreads: Int
    /// Most requests of one connection being served at once. When reached, the
    /// server stops reading that connection's socket until replies are written:
    /// the client's own TCP window then applies backpressure. Per connection the
    /// memory held is at most this many times ``maximumPayloadSize``.
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
    /// Send file-backed data with `sendfile` (`FileRegion`) instead of copying it
    /// through user-space buffers.
    public var useSendfile: Bool
    /// File-backed pieces shorter than this are copied even when
    /// ``useSendfile`` is on: a syscall per tiny piece costs more than a copy.
    public var sendfileMinimumLength: UInt64
    /// Seconds a client may spend in the handshake before it is disconnected
    /// (0 disables the limit). Stops idle sockets from pinning descriptors.
    public var handshakeTimeoutSeconds: Int64
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
        useSendfile: Bool = true,
        sendfileMinimumLength: UInt64 = 16 * 1024,
        handshakeTimeoutSeconds: Int64 = 60,
        tls: NBDServerTLS = .off
    ) {
        self.eventLoopThreads = max(1, eventLoopThreads)
        self.blockingIOThreads = max(1, blockingIOThreads)
        self.maximumInFlightRequests = max(1, maximumInFlightRequests)
        self.maximumPayloadSize = min(max(4096, maximumPayloadSize), 32 * 1024 * 1024)
        self.maximumOptionLength = max(8 * 1024, maximumOptionLength)
        self.maximumSkippableOptionLength = max(self.maximumOptionLength, maximumSkippableOptionLength)
        self.useSendfile = useSendfile
        self.sendfileMinimumLength = sendfileMinimumLength
        self.handshakeTimeoutSeconds = max(0, handshakeTimeoutSeconds)
        self.tls = tls
    }
}
