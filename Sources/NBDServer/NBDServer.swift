import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An NBD server exporting the volumes of an ``ExportRegistry`` read-only.
///
/// Usage:
/// ```swift
/// let registry = ExportRegistry()
/// try registry.add(guid: guid, volume: volume, description: "/images/a.cim (ext4)")
/// let server = NBDServer(registry: registry)
/// try await server.start(listenAddresses: [NBDServer.defaultListenAddress], unixSockets: ["/run/cimnbd.sock"])
/// // clients: nbdinfo nbd://127.0.0.1/<guid>
/// try await server.shutdown()
/// ```
///
/// The server owns its event loops and a thread pool for blocking reads; both
/// are released by ``shutdown()``, which must be called before the last
/// reference goes away.
public final class NBDServer: Sendable {
    /// `127.0.0.1:10809`, NBD's IANA port on the loopback interface.
    public static var defaultListenAddress: SocketAddress {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(10809).bigEndian
        address.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
        return SocketAddress(address, host: "127.0.0.1")
    }

    /// The configuration the server was created with.
    public let configuration: NBDServerConfiguration
    /// The exports served; change it at any time.
    public let registry: ExportRegistry

    private let logger: Logger
    private let metrics: (any NBDServerMetrics)?
    private let group: MultiThreadedEventLoopGroup
    private let threadPool: NIOThreadPool

    private struct State {
        enum Life { case idle, starting, running, shutDown }
        var life: Life = .idle
        var listeners: [any Channel] = []
        var unixSocketPaths: [String] = []
        var connections: [ObjectIdentifier: any Channel] = [:]
        var nextConnectionID: UInt64 = 0
        /// ``NBDServerConfiguration/maximumConnections``, lowered to fit the descriptor limit.
        var connectionLimit: Int
        var refusedOverLimit = 0
        var refusedByAddress = 0
        /// Refusals are logged at most once a second, with a count, so that a
        /// flood of connections cannot flood the log as well.
        var refusalsNotLogged = 0
        var lastRefusalLog = NIODeadline.distantPast
    }

    private let state: NIOLockedValueBox<State>

    /// Creates a server; nothing listens until ``start(listenAddresses:unixSockets:inheritedSockets:)``.
    /// `metrics`, when given, is told about every connection and request.
    public init(configuration: NBDServerConfiguration = NBDServerConfiguration(),
                registry: ExportRegistry,
                logger: Logger = Logger(label: "cimnbd.nbd"),
                metrics: (any NBDServerMetrics)? = nil) {
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
        self.state = NIOLockedValueBox(State(connectionLimit: configuration.maximumConnections))
        self.metrics = metrics
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopThreads)
        self.threadPool = NIOThreadPool(numberOfThreads: configuration.blockingIOThreads)
        self.threadPool.start()
    }

    /// Starts listening on every TCP address and Unix socket path given, and
    /// on every listening socket inherited (socket activation).
    ///
    /// Use port 0 to let the system choose; ``boundAddresses`` then tells the
    /// actual ports. An existing file at a Unix socket path is replaced. If any
    /// listener fails to bind, those already bound are closed and the error is
    /// thrown. Inherited sockets (stream sockets, TCP or Unix, already bound by
    /// e.g. systemd) are owned by the server from then on; their socket files
    /// are left in place at shutdown, since whoever bound them owns those.
    public func start(listenAddresses: [SocketAddress] = [NBDServer.defaultListenAddress],
                      unixSockets: [String] = [],
                      inheritedSockets: [NIOBSDSocket.Handle] = []) async throws {
        guard !listenAddresses.isEmpty || !unixSockets.isEmpty || !inheritedSockets.isEmpty else {
            throw NBDServerError.nothingToListenOn
        }
        try state.withLockedValue { state in
            switch state.life {
            case .idle: state.life = .starting
            case .starting, .running: throw NBDServerError.alreadyStarted
            case .shutDown: throw NBDServerError.alreadyShutDown
            }
        }
        fitConnectionLimitToDescriptorLimit()
        var bound: [any Channel] = []
        do {
            for address in listenAddresses {
                let channel = try await bootstrap(tcp: true).bind(to: address).get()
                logger.info("listening on \(channel.localAddress.map { "\($0)" } ?? "\(address)")")
                bound.append(channel)
            }
            for path in unixSockets {
                let channel = try await bootstrap(tcp: false).bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
                logger.info("listening on unix socket \(path)")
                bound.append(channel)
            }
            for descriptor in inheritedSockets {
                // systemd has called listen(); doing it again only sets our backlog.
                _ = listen(descriptor, 256)
                let channel = try await bootstrap(tcp: Self.isInternetSocket(descriptor)).withBoundSocket(descriptor).get()
                logger.info("listening on inherited socket \(channel.localAddress.map { "\($0)" } ?? "fd \(descriptor)")")
                bound.append(channel)
            }
        } catch {
            for channel in bound { try? await channel.close() }
            state.withLockedValue { $0.life = .idle }
            throw error
        }
        state.withLockedValue { state in
            state.listeners = bound
            state.unixSocketPaths = unixSockets
            state.life = .running
        }
    }

    /// The addresses the server listens on (TCP ports resolved, then Unix sockets).
    public var boundAddresses: [SocketAddress] {
        state.withLockedValue { $0.listeners.compactMap(\.localAddress) }
    }

    /// The TCP ports actually bound, in the order the addresses were given.
    public var boundPorts: [Int] {
        boundAddresses.compactMap { address in
            if case .unixDomainSocket = address { return nil }
            return address.port
        }
    }

    /// The number of open client connections, in any phase.
    public var connectionCount: Int {
        state.withLockedValue { $0.connections.count }
    }

    /// Connections closed on accept because ``connectionLimit`` were open.
    public var refusedConnectionCount: Int {
        state.withLockedValue { $0.refusedOverLimit }
    }

    /// TCP connections closed on accept because the peer is not in
    /// ``NBDServerConfiguration/allowedClients``.
    public var deniedConnectionCount: Int {
        state.withLockedValue { $0.refusedByAddress }
    }

    /// The connection limit in force (``NBDServerConfiguration/maximumConnections``,
    /// or less when the descriptor limit is lower).
    public var connectionLimit: Int {
        state.withLockedValue { $0.connectionLimit }
    }

    /// Stops listening, stops every client connection gracefully, and releases
    /// the event loops and the I/O pool. Unix socket files are removed.
    /// Idempotent.
    ///
    /// Replies already being sent are finished, for at most
    /// ``NBDServerConfiguration/shutdownGracePeriod``; requests not yet started
    /// are answered with `NBD_ESHUTDOWN` (proto.md); then connections close.
    public func shutdown() async throws {
        let (listeners, connections, paths, wasRunning) = state.withLockedValue { state in
            let result = (state.listeners, Array(state.connections.values), state.unixSocketPaths, state.life != .shutDown)
            state.listeners = []
            state.unixSocketPaths = []
            state.life = .shutDown
            return result
        }
        guard wasRunning else { return }
        for channel in listeners { try? await channel.close() }
        for path in paths { unlink(path) }
        let grace = configuration.shutdownGracePeriod
        if !connections.isEmpty {
            logger.info("stopping \(connections.count) client connection(s), waiting at most \(grace.nanoseconds / 1_000_000_000) s for replies being sent")
        }
        for channel in connections {
            NBDGracefulStop.request(on: channel, gracePeriod: grace)
            // Each connection closes itself by the grace period; this is the
            // backstop for one that could not even start stopping.
            channel.eventLoop.scheduleTask(in: grace + .seconds(1)) { channel.close(promise: nil) }
        }
        for channel in connections { try? await channel.closeFuture.get() }
        try await threadPool.shutdownGracefully()
        try await group.shutdownGracefully()
        logger.info("NBD server stopped")
    }

    /// True for an IPv4 or IPv6 socket (TCP options apply), false for Unix sockets.
    private static func isInternetSocket(_ descriptor: NIOBSDSocket.Handle) -> Bool {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard result == 0 else { return false }
        return Int32(address.ss_family) == AF_INET || Int32(address.ss_family) == AF_INET6
    }

    private func bootstrap(tcp: Bool) -> ServerBootstrap {
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.maxMessagesPerRead, value: 16)
        if tcp {
            bootstrap = bootstrap
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                // Replies are written whole and flushed once: no Nagle delay wanted.
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                // Kernel clients keep idle connections for days: notice dead peers.
                .childChannelOption(.socketOption(.so_keepalive), value: 1)
        }
        return bootstrap.childChannelInitializer { [self] channel in
            channel.eventLoop.makeCompletedFuture {
                guard let id = admit(channel, tcp: tcp) else { return }
                var connectionLogger = logger
                connectionLogger[metadataKey: "nbd.connection"] = "\(id)"
                connectionLogger[metadataKey: "nbd.peer"] = "\(channel.remoteAddress.map { "\($0)" } ?? "unix")"
                let handler = NBDConnectionHandler(registry: registry, configuration: configuration,
                                                   threadPool: threadPool, logger: connectionLogger, metrics: metrics)
                try channel.pipeline.syncOperations.addHandler(handler)
            }
        }
    }

    /// Why a connection was closed on accept.
    private enum Refusal: Equatable {
        case overLimit(Int)
        case notAllowed
    }

    /// Tracks a new connection until it closes, for ``shutdown()``; nil when it
    /// is refused (peer not allowed, connection limit, server stopping) and closed.
    private func admit(_ channel: any Channel, tcp: Bool) -> UInt64? {
        let allowed = !tcp || configuration.allowedClients.isEmpty
            || channel.remoteAddress.map { peer in configuration.allowedClients.contains { $0.contains(peer) } } ?? false
        let key = ObjectIdentifier(channel)
        let now = NIODeadline.now()
        let (id, refusal, logCount) = state.withLockedValue { state -> (UInt64?, Refusal?, Int) in
            state.nextConnectionID += 1
            var refusal: Refusal?
            if !allowed {
                state.refusedByAddress += 1
                refusal = .notAllowed
            } else if state.connections.count >= state.connectionLimit {
                state.refusedOverLimit += 1
                refusal = .overLimit(state.connectionLimit)
            } else if state.life == .shutDown {
                return (nil, nil, 0)
            } else {
                state.connections[key] = channel
                return (state.nextConnectionID, nil, 0)
            }
            state.refusalsNotLogged += 1
            guard now - state.lastRefusalLog >= .seconds(1) else { return (nil, refusal, 0) }
            state.lastRefusalLog = now
            defer { state.refusalsNotLogged = 0 }
            return (nil, refusal, state.refusalsNotLogged)
        }
        guard let id else {
            channel.close(promise: nil)
            metrics?.connectionRejected(refusal.map { $0 == .notAllowed ? .addressNotAllowed : .connectionLimit } ?? .shuttingDown)
            if let refusal, logCount > 0 {
                let peer = channel.remoteAddress.map { "\($0)" } ?? "unix"
                let more = logCount > 1 ? " (\(logCount) refused since the last such line, this one included)" : ""
                switch refusal {
                case .overLimit(let limit):
                    logger.warning("connection from \(peer) refused: \(limit) connections are open, the limit (--max-connections)\(more)")
                case .notAllowed:
                    logger.warning("connection from \(peer) refused: the address is not in --allow\(more)")
                }
            }
            return nil
        }
        metrics?.connectionAccepted()
        channel.closeFuture.whenComplete { [state, metrics] _ in
            _ = state.withLockedValue { $0.connections.removeValue(forKey: key) }
            metrics?.connectionClosed()
        }
        return id
    }

    /// Each connection holds one descriptor; keep the limit below what the
    /// process may open, with room for images, listeners and the control socket.
    private func fitConnectionLimitToDescriptorLimit() {
        #if canImport(Glibc)
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        let reserve: rlim_t = 256
        let wanted = rlim_t(configuration.maximumConnections) + reserve
        if limit.rlim_cur < wanted && limit.rlim_cur < limit.rlim_max {
            // Raising the soft limit up to the hard one needs no privilege.
            var raised = limit
            raised.rlim_cur = min(wanted, limit.rlim_max)
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        guard limit.rlim_cur < wanted else { return }
        let fitting = Int(max(limit.rlim_cur, reserve + 16) - reserve)
        state.withLockedValue { $0.connectionLimit = min($0.connectionLimit, fitting) }
        logger.notice("the descriptor limit is \(limit.rlim_cur): serving at most \(fitting) connections instead of \(configuration.maximumConnections)")
        #endif
    }
}
