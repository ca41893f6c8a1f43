import CoreMetrics
import Metrics
import NBDServer
import NIOConcurrencyHelpers
import Prometheus

/// The daemon's metrics: swift-metrics counters, meters and timers backed by a
/// Prometheus registry of their own, which ``MetricsHTTPServer`` serves as
/// text at `/metrics`.
///
/// Per daemon: connections accepted, open and rejected (by reason),
/// handshakes (by result), TLS handshakes and their failures, mounts. Per
/// export, labelled by its GUID: bytes read, requests by command, errors by
/// NBD error name, connected clients and a request-latency histogram. Every
/// series of an export exists from its first client on; the per-request path
/// touches only counters created then (atomics) and the histogram's own lock.
public final class DaemonMetrics: NBDServerMetrics {
    /// The registry ``MetricsHTTPServer`` renders.
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    private let connectionsAccepted: CoreMetrics.Counter
    private let connectionsOpen: CoreMetrics.Meter
    private let connectionsRejected: [NBDConnectionRejection: CoreMetrics.Counter]
    private let handshakesToTransmission: CoreMetrics.Counter
    private let handshakesEnded: [NBDHandshakeOutcome: CoreMetrics.Counter]
    private let tlsHandshakes: CoreMetrics.Counter
    private let tlsHandshakeFailures: CoreMetrics.Counter
    private let mounts: CoreMetrics.Meter
    private let exports = NIOLockedValueBox([ExportGUID: ExportCounters]())

    /// Upper bounds of the latency buckets: 50 µs to 10 s.
    static let latencyBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2.5), .seconds(10),
    ]

    /// Creates the daemon-wide series, all at zero.
    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        factory = PrometheusMetricsFactory(registry: registry)
        let maker = MetricMaker(registry: registry, factory: factory)
        connectionsAccepted = maker.counter("cimnbd_connections_accepted_total", "NBD client connections accepted.")
        connectionsOpen = maker.meter("cimnbd_connections_open", "NBD client connections open now, in any phase.")
        var rejected: [NBDConnectionRejection: CoreMetrics.Counter] = [:]
        for reason in NBDConnectionRejection.allCases {
            rejected[reason] = maker.counter("cimnbd_connections_rejected_total",
                                             "NBD client connections closed before the handshake, by reason.",
                                             [("reason", reason.rawValue)])
        }
        connectionsRejected = rejected
        let handshakeHelp = "NBD handshakes by how they ended: transmission (an export was opened), aborted (NBD_OPT_ABORT, e.g. nbdinfo --list), failed."
        handshakesToTransmission = maker.counter("cimnbd_handshakes_total", handshakeHelp, [("result", "transmission")])
        var ended: [NBDHandshakeOutcome: CoreMetrics.Counter] = [:]
        for outcome in NBDHandshakeOutcome.allCases {
            ended[outcome] = maker.counter("cimnbd_handshakes_total", handshakeHelp, [("result", outcome.rawValue)])
        }
        handshakesEnded = ended
        tlsHandshakes = maker.counter("cimnbd_tls_handshakes_total", "TLS sessions established (NBD_OPT_STARTTLS).")
        tlsHandshakeFailures = maker.counter("cimnbd_tls_handshake_failures_total", "TLS handshakes that failed.")
        mounts = maker.meter("cimnbd_mounts", "Images in the mount table.")
    }

    /// Sets the number of mounted images (read when `/metrics` is scraped).
    public func setMountCount(_ count: Int) {
        mounts.set(count)
    }

    public func connectionAccepted() {
        connectionsAccepted.increment()
        connectionsOpen.increment()
    }

    public func connectionRejected(_ reason: NBDConnectionRejection) {
        connectionsRejected[reason]?.increment()
    }

    public func connectionClosed() {
        connectionsOpen.decrement()
    }

    public func transmissionStarted(export: ExportGUID) -> any NBDExportMetrics {
        handshakesToTransmission.increment()
        let counters = exports.withLockedValue { exports in
            if let existing = exports[export] { return existing }
            let made = ExportCounters(guid: export, maker: MetricMaker(registry: registry, factory: factory))
            exports[export] = made
            return made
        }
        counters.clients.increment()
        return counters
    }

    public func handshakeEnded(_ outcome: NBDHandshakeOutcome) {
        handshakesEnded[outcome]?.increment()
    }

    public func tlsHandshakeSucceeded() {
        tlsHandshakes.increment()
    }

    public func tlsHandshakeFailed() {
        tlsHandshakeFailures.increment()
    }
}
