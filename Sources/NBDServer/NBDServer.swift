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
    }

    private let state = NIOLockedValueBox(State())

    /// Creates a server; nothing listens until ``start(listenAddresses:unixSockets:inheritedSockets:)``.
    /// `metrics`, when given, is told about every connection and request.
    public init(configuration: NBDServerConfiguration = NBDServerConfiguration(),
                registry: ExportRegistry,
                logger: Logger = Logger(label: "cimnbd.nbd"),
                metrics: (any NBDServerMetrics)? = nil) {
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
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

    /// Stops listening, closes every client connection, and releases the event
    /// loops and the I/O pool. Unix socket files are removed. Idempotent.
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
        for channel in connections { try? await channel.close() }
        for path in paths { unlink(path) }
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
                let id = register(channel)
                var connectionLogger = logger
                connectionLogger[metadataKey: "nbd.connection"] = "\(id)"
                connectionLogger[metadataKey: "nbd.peer"] = "\(channel.remoteAddress.map { "\($0)" } ?? "unix")"
                let handler = NBDConnectionHandler(registry: registry, configuration: configuration,
                                                   threadPool: threadPool, logger: connectionLogger, metrics: metrics)
                try channel.pipeline.syncOperations.addHandler(handler)
            }
        }
    }

    /// Tracks a new connection until it closes, for ``shutdown()``.
    private func register(_ channel: any Channel) -> UInt64 {
        let key = ObjectIdentifier(channel)
        let (id, accepted) = state.withLockedValue { state -> (UInt64, Bool) in
            state.nextConnectionID += 1
            guard state.life != .shutDown else { return (state.nextConnectionID, false) }
            state.connections[key] = channel
            return (state.nextConnectionID, true)
        }
        guard accepted else {
            metrics?.connectionRejected(.shuttingDown)
            channel.close(promise: nil)
            return id
        }
        metrics?.connectionAccepted()
        channel.closeFuture.whenComplete { [state, metrics] _ in
            _ = state.withLockedValue { $0.connections.removeValue(forKey: key) }
            metrics?.connectionClosed()
        }
        return id
    }
}
