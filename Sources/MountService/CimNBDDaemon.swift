import Logging
import NBDServer
import NIOCore
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// `cimnbd serve`: the NBD server, the control API and the mount table, run
/// as one service that stops cleanly on SIGINT/SIGTERM.
public final class CimNBDDaemon: Service, @unchecked Sendable {
    public struct Configuration: Sendable {
        /// TCP addresses to listen on (`host:port`).
        public var listen: [SocketAddress]
        /// Unix sockets to listen on.
        public var unixSockets: [String]
        /// The control socket.
        public var controlPath: String
        /// Permission bits of the control socket.
        public var controlMode: mode_t
        /// The state file (mount table); nil keeps no state.
        public var statePath: String?

        public init(listen: [SocketAddress], unixSockets: [String], controlPath: String, controlMode: mode_t = 0o600, statePath: String?) {
            self.listen = listen
            self.unixSockets = unixSockets
            self.controlPath = controlPath
            self.controlMode = controlMode
            self.statePath = statePath
        }
    }

    public let configuration: Configuration
    public let registry = ExportRegistry()
    public let manager: MountManager
    public let server: NBDServer
    private let control: ControlServer
    private let logger: Logger
    /// Runs after the server listens and the state is restored (e.g. to mount the demo image).
    private let onReady: @Sendable (CimNBDDaemon) async throws -> Void

    public init(configuration: Configuration, logger: Logger = Logger(label: "cimnbd"), makeVolume: @escaping VolumeFactory,
                onReady: @escaping @Sendable (CimNBDDaemon) async throws -> Void = { _ in }) {
        self.configuration = configuration
        self.logger = logger
        let authority: String
        if let first = configuration.listen.first, let host = first.ipAddress, let port = first.port {
            let shownHost = host.contains(":") ? "[\(host)]" : host
            authority = port == 10809 ? shownHost : "\(shownHost):\(port)"
        } else {
            authority = "127.0.0.1"
        }
        manager = MountManager(registry: registry, store: configuration.statePath.map(MountStateStore.init(path:)),
                               advertisedAuthority: authority, logger: logger, makeVolume: makeVolume)
        server = NBDServer(registry: registry, logger: logger)
        control = ControlServer(path: configuration.controlPath, manager: manager, logger: logger)
        self.onReady = onReady
    }

    public func run() async throws {
        do {
            try await server.start(listenAddresses: configuration.listen, unixSockets: configuration.unixSockets)
            try manager.restore()
            try control.start(mode: configuration.controlMode)
            try await onReady(self)
        } catch {
            control.stop()
            try? await server.shutdown()
            throw error
        }
        // Wait for SIGINT/SIGTERM (or cancellation), then stop in order.
        try? await gracefulShutdown()
        logger.info("shutting down")
        control.stop()
        try await server.shutdown()
    }
}
