import Foundation
import Logging
import NBDKernel
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
        /// Limits and protocol settings of the NBD server, TLS included.
        public var server: NBDServerConfiguration
        /// Export descriptions show the image's host path (default: file name only).
        public var describePaths: Bool
        /// Where to serve Prometheus metrics (`/metrics`); nil serves none
        /// unless socket activation passes a `metrics` socket.
        public var metricsAddress: SocketAddress?
        /// Listening sockets from systemd. For each role it passes (NBD,
        /// control, metrics) the daemon binds nothing of its own: `listen`
        /// and `unixSockets` are ignored when it passes NBD sockets.
        public var activation: SystemdSocketActivation?

        public init(listen: [SocketAddress], unixSockets: [String], controlPath: String, controlMode: mode_t = 0o600, statePath: String?,
                    server: NBDServerConfiguration = NBDServerConfiguration(), describePaths: Bool = false,
                    metricsAddress: SocketAddress? = nil, activation: SystemdSocketActivation? = nil) {
            self.listen = listen
            self.unixSockets = unixSockets
            self.controlPath = controlPath
            self.controlMode = controlMode
            self.statePath = statePath
            self.server = server
            self.describePaths = describePaths
            self.metricsAddress = metricsAddress
            self.activation = activation
        }

        /// The NBD sockets passed by systemd; empty when the daemon binds its own.
        var inheritedNBDSockets: [SystemdSocketActivation.Socket] { activation?.nbdSockets ?? [] }

        /// The paths of the Unix sockets NBD is served on (bound or inherited).
        var nbdSocketPaths: [String] {
            guard !inheritedNBDSockets.isEmpty else { return unixSockets }
            return inheritedNBDSockets.compactMap { socket in
                guard case .unixDomainSocket = socket.localAddress else { return nil }
                return socket.localAddress?.pathname
            }
        }
    }

    public let configuration: Configuration
    public let registry = ExportRegistry()
    public let manager: MountManager
    public let server: NBDServer
    /// The metrics the server reports to; nil when no metrics are served.
    public let metrics: DaemonMetrics?
    private let metricsServer: MetricsHTTPServer?
    private let control: ControlServer
    private let notifier = SystemdNotifier()
    private let logger: Logger
    /// Runs after the state is restored and the server listens (e.g. to mount the demo image).
    private let onReady: @Sendable (CimNBDDaemon) async throws -> Void

    public init(configuration: Configuration, logger: Logger = Logger(label: "cimnbd"), makeVolume: @escaping VolumeFactory,
                onReady: @escaping @Sendable (CimNBDDaemon) async throws -> Void = { _ in }) {
        self.configuration = configuration
        self.logger = logger
        let authority: String
        let inheritedTCP = configuration.inheritedNBDSockets.compactMap(\.localAddress).first { $0.ipAddress != nil }
        let advertised = configuration.inheritedNBDSockets.isEmpty ? configuration.listen.first : inheritedTCP
        if let first = advertised, let host = first.ipAddress, let port = first.port {
            let shownHost = host.contains(":") ? "[\(host)]" : host
            authority = port == 10809 ? shownHost : "\(shownHost):\(port)"
        } else {
            authority = "127.0.0.1"
        }
        // Plain nbd:// URIs would fail against --tls require.
        let scheme = configuration.server.tls.mode == .require ? "nbds" : "nbd"
        manager = MountManager(registry: registry, store: configuration.statePath.map(MountStateStore.init(path:)),
                               advertisedAuthority: authority, describePaths: configuration.describePaths, advertisedScheme: scheme,
                               plainSocketPath: configuration.nbdSocketPaths.first, logger: logger, makeVolume: makeVolume)
        if configuration.metricsAddress != nil || configuration.activation?.metricsSocket != nil {
            let metrics = DaemonMetrics()
            let manager = self.manager
            self.metrics = metrics
            metricsServer = MetricsHTTPServer(registry: metrics.registry, logger: logger) { [metrics, manager] in
                metrics.setMountCount(manager.list().count)
            }
        } else {
            metrics = nil
            metricsServer = nil
        }
        server = NBDServer(configuration: configuration.server, registry: registry, logger: logger, metrics: metrics)
        control = ControlServer(path: configuration.controlPath, manager: manager, logger: logger)
        self.onReady = onReady
    }

    /// Gives every device that was attached before a restart new sockets
    /// (NBD_CMD_RECONFIGURE), so I/O waiting in the kernel (dead-connection
    /// timeout) resumes and no reader sees an error. Runs on a thread of its
    /// own: the handshakes need this server to be answering.
    private func reconnectAttachedDevices() {
        let attached = manager.list().compactMap { info in info.device.map { (info.guid, $0, info.uri) } }
        guard !attached.isEmpty else { return }
        let logger = self.logger
        let manager = self.manager
        Thread.detachNewThread {
            for (guid, device, uri) in attached {
                do {
                    // The kernel cannot carry TLS: kernelURI is the plain Unix
                    // socket under --tls require (with none, the nbds URI fails to parse).
                    let server = try NBDServerAddress(parsing: manager.kernelURI(for: guid) ?? uri)
                    try NBDDeviceManager.reconnect(device, server: server, exportName: guid, connections: 1)
                    logger.notice("reconnected \(device) to \(guid)")
                } catch {
                    logger.error("cannot reconnect \(device) to \(guid): \(error); run 'cimnbd reconnect \(device)' or 'cimnbd detach \(device)'")
                    if case NBDKernelError.deviceNotFound = error { try? manager.setDevice(guid: guid, device: nil) }
                }
            }
        }
    }

    /// The address `/metrics` is served on, once running.
    public var metricsAddress: SocketAddress? { metricsServer?.localAddress }

    public func run() async throws {
        do {
            // The table first: under socket activation clients already wait in
            // the listen queue, and the first one must find the exports there.
            try manager.restore()
            let inherited = configuration.inheritedNBDSockets
            if inherited.isEmpty {
                try await server.start(listenAddresses: configuration.listen, unixSockets: configuration.unixSockets)
            } else {
                try await server.start(listenAddresses: [], unixSockets: [], inheritedSockets: inherited.map(\.descriptor))
            }
            logTLSScope()
            try await metricsServer?.start(address: configuration.metricsAddress,
                                           inherited: configuration.activation?.metricsSocket?.descriptor)
            reconnectAttachedDevices()
            if let socket = configuration.activation?.controlSocket {
                try control.start(inheritedDescriptor: socket.descriptor)
            } else {
                try control.start(mode: configuration.controlMode)
            }
            try await onReady(self)
        } catch {
            control.stop()
            await metricsServer?.shutdown()
            try? await server.shutdown()
            throw error
        }
        tellServiceManager("READY=1\nSTATUS=serving \(manager.list().count) image(s)")
        // Wait for SIGINT/SIGTERM (or cancellation), then stop in order.
        // (Attached devices are left attached: their I/O waits for the next start.)
        try? await gracefulShutdown()
        logger.info("shutting down")
        tellServiceManager("STOPPING=1")
        control.stop()
        await metricsServer?.shutdown()
        try await server.shutdown()
    }

    /// Says at start what `--tls require` covers: TCP only. Unix sockets stay
    /// plain text on purpose (the kernel's nbd driver cannot carry TLS, and
    /// the socket's file mode decides who may connect).
    private func logTLSScope() {
        guard configuration.server.tls.mode == .require else { return }
        let paths = configuration.nbdSocketPaths
        if paths.isEmpty {
            logger.info("TLS required on every listener; no Unix socket is served, so 'cimnbd attach' and 'mount --attach' (the kernel's nbd driver cannot carry TLS) have nowhere to connect: add --socket PATH")
        } else {
            logger.notice("TLS required on TCP only: Unix socket(s) \(paths.joined(separator: ", ")) serve plain text, for 'cimnbd attach' (the kernel's nbd driver cannot carry TLS); their file mode decides who may connect")
        }
    }

    /// sd_notify for Type=notify units; a failure is logged, never fatal.
    private func tellServiceManager(_ state: String) {
        do {
            try notifier.notify(state)
        } catch {
            logger.warning("\(error)")
        }
    }
}
