import Metrics
import NBDServer

/// The series of one export.
final class ExportCounters: NBDExportMetrics {
    let clients: Meter
    private let bytesRead: Counter
    /// Indexed by ``NBDCommandKind/rawValue``.
    private let requests: [Counter]
    /// Indexed like ``NBDErrorName/known``; the last one counts any other value.
    private let errors: [Counter]
    private let latency: Timer

    init(guid: ExportGUID, maker: MetricMaker) {
        let export = ("export", "\(guid)")
        clients = maker.meter("cimnbd_export_clients", "Clients in the transmission phase on the export.", [export])
        bytesRead = maker.counter("cimnbd_export_read_bytes_total",
                                  "Bytes answered to READ requests (payload, holes included).", [export])
        requests = NBDCommandKind.allCases.map { command in
            maker.counter("cimnbd_export_requests_total", "Requests answered, by NBD command.", [export, ("command", command.label)])
        }
        errors = (NBDErrorName.known.map(\.name) + ["other"]).map { name in
            maker.counter("cimnbd_export_errors_total", "Requests answered with an error, by NBD error.", [export, ("errno", name)])
        }
        latency = maker.timer("cimnbd_export_request_duration_seconds",
                              "Time from a request's arrival to its reply being written.", [export],
                              buckets: DaemonMetrics.latencyBuckets)
    }

    func requestCompleted(_ command: NBDCommandKind, bytes: UInt64, error: UInt32, latencyNanoseconds: Int64) {
        requests[command.rawValue].increment()
        if bytes > 0 { bytesRead.increment(by: Int64(clamping: bytes)) }
        if error != 0 {
            let index = NBDErrorName.known.firstIndex { $0.code == error } ?? NBDErrorName.known.count
            errors[index].increment()
        }
        latency.recordNanoseconds(latencyNanoseconds)
    }

    func transmissionEnded() {
        clients.decrement()
    }
}
