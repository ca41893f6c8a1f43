import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// A small HTTP/1.1 server for Prometheus: `GET /metrics` (and `HEAD`)
/// answers the registry in the text exposition format, every other path 404,
/// other methods 405. Keep-alive is honoured; idle connections are closed
/// after ``idleTimeout``.
public final class MetricsHTTPServer: Sendable {
    /// Connections silent for this long are closed.
    static let idleTimeout = TimeAmount.seconds(60)

    private let registry: PrometheusCollectorRegistry
    private let beforeScrape: @Sendable () -> Void
    private let logger: Logger
    private let channel: NIOLockedValueBox<(any Channel)?> = NIOLockedValueBox(nil)

    /// `beforeScrape` runs before each rendering (to refresh gauges read on demand).
    public init(registry: PrometheusCollectorRegistry, logger: Logger, beforeScrape: @escaping @Sendable () -> Void = {}) {
        self.registry = registry
        self.logger = logger
        self.beforeScrape = beforeScrape
    }

    /// Listens on `address`, or adopts the listening socket `inherited` (socket activation).
    public func start(address: SocketAddress?, inherited: NIOBSDSocket.Handle? = nil) async throws {
        let registry = self.registry, beforeScrape = self.beforeScrape
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.configureHTTPServerPipeline(withErrorHandling: true)
                    try pipeline.addHandler(IdleStateHandler(readTimeout: Self.idleTimeout))
                    try pipeline.addHandler(MetricsHTTPHandler(registry: registry, beforeScrape: beforeScrape))
                }
            }
        let listener: any Channel
        if let inherited {
            listener = try await bootstrap.withBoundSocket(inherited).get()
        } else if let address {
            listener = try await bootstrap.bind(to: address).get()
        } else {
            return
        }
        channel.withLockedValue { $0 = listener }
        let shown = listener.localAddress.flatMap { address in
            address.ipAddress.map { host in host.contains(":") ? "[\(host)]:\(address.port ?? 0)" : "\(host):\(address.port ?? 0)" }
        } ?? "inherited socket"
        logger.info("metrics on http://\(shown)/metrics")
    }

    /// The address listened on, once started.
    public var localAddress: SocketAddress? {
        channel.withLockedValue { $0?.localAddress }
    }

    /// Stops listening. Idempotent.
    public func shutdown() async {
        let listener = channel.withLockedValue { channel in
            defer { channel = nil }
            return channel
        }
        try? await listener?.close()
    }
}
