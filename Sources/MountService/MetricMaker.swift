import CoreMetrics
import Metrics
import Prometheus

/// Makes swift-metrics handles whose handlers are registered, with help text,
/// in a Prometheus registry.
struct MetricMaker {
    let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory

    func counter(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> CoreMetrics.Counter {
        let handler = registry.makeCounter(descriptor: descriptor(name, help), labels: labels)
        return CoreMetrics.Counter(label: name, dimensions: labels, handler: handler, factory: factory)
    }

    func meter(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> CoreMetrics.Meter {
        let handler = registry.makeGauge(descriptor: descriptor(name, help), labels: labels)
        return CoreMetrics.Meter(label: name, dimensions: labels, handler: handler, factory: factory)
    }

    func timer(_ name: String, _ help: String, _ labels: [(String, String)], buckets: [Duration]) -> CoreMetrics.Timer {
        let handler = registry.makeDurationHistogram(descriptor: descriptor(name, help), labels: labels, buckets: buckets)
        return CoreMetrics.Timer(label: name, dimensions: labels, handler: handler, factory: factory)
    }

    /// The whole name goes into `metricName`: the registry joins the parts with `_` anyway.
    private func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
