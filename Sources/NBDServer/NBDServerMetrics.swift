import NIOCore

/// What an ``NBDServer`` reports about its connections, for a metrics backend.
///
/// The server calls these at a few fixed points: a connection accepted,
/// rejected or closed; a handshake that ends in transmission, is aborted by
/// the client, or fails; and every request once its reply has been written.
/// Implementations must be cheap and thread-safe: they are called on the event
/// loops, request completions once per request. Nothing here may block.
public protocol NBDServerMetrics: Sendable {
    /// A client connection was accepted and its handshake begins.
    func connectionAccepted()
    /// A client connection was closed before its handshake began.
    func connectionRejected(_ reason: NBDConnectionRejection)
    /// An accepted connection closed, in whatever phase it was.
    func connectionClosed()
    /// The client chose `export` and entered the transmission phase. The sink
    /// returned receives that connection's requests and its end.
    func transmissionStarted(export: ExportGUID) -> any NBDExportMetrics
    /// The connection ended during option haggling: `.aborted` when the client
    /// said NBD_OPT_ABORT (as `nbdinfo --list` does), `.failed` otherwise.
    func handshakeEnded(_ outcome: NBDHandshakeOutcome)
    /// A TLS session was established on a connection (NBD_OPT_STARTTLS).
    func tlsHandshakeSucceeded()
    /// A TLS handshake failed (bad certificate, wrong PSK, protocol error).
    func tlsHandshakeFailed()
}

/// Per-export counters of one connection in the transmission phase.
public protocol NBDExportMetrics: Sendable {
    /// A request was answered: its reply has left (or failed to leave) the
    /// server. `bytes` is the payload of a successful READ, else 0; `error`
    /// is the NBD error sent (0 for success); `latencyNanoseconds` runs from
    /// the request header's arrival to the reply's write completing.
    func requestCompleted(_ command: NBDCommandKind, bytes: UInt64, error: UInt32, latencyNanoseconds: Int64)
    /// The connection closed.
    func transmissionEnded()
}

/// Why a connection was closed before the handshake.
public enum NBDConnectionRejection: String, Sendable, CaseIterable {
    /// The server is shutting down.
    case shuttingDown = "shutting_down"
    /// The connection limit was reached.
    case connectionLimit = "connection_limit"
    /// The client's address is not allowed.
    case addressNotAllowed = "address_not_allowed"
}

/// How an option-haggling phase ended without transmission.
public enum NBDHandshakeOutcome: String, Sendable, CaseIterable {
    /// The client sent NBD_OPT_ABORT (listing and probing clients do).
    case aborted
    /// The connection closed, timed out or was refused during the handshake.
    case failed
}

/// The NBD commands, as a small closed set a backend can keep counters for.
public enum NBDCommandKind: Int, Sendable, CaseIterable {
    case read, write, disconnect, flush, trim, cache, writeZeroes, blockStatus, other

    /// The kind of the wire command `type` (NBD_CMD_*).
    public init(wireType type: UInt16) {
        switch type {
        case NBDProtocol.cmdRead: self = .read
        case NBDProtocol.cmdWrite: self = .write
        case NBDProtocol.cmdDisc: self = .disconnect
        case NBDProtocol.cmdFlush: self = .flush
        case NBDProtocol.cmdTrim: self = .trim
        case NBDProtocol.cmdCache: self = .cache
        case NBDProtocol.cmdWriteZeroes: self = .writeZeroes
        case NBDProtocol.cmdBlockStatus: self = .blockStatus
        default: self = .other
        }
    }

    /// The lowercase name used as a metric label (`read`, `block_status`…).
    public var label: String {
        switch self {
        case .read: return "read"
        case .write: return "write"
        case .disconnect: return "disc"
        case .flush: return "flush"
        case .trim: return "trim"
        case .cache: return "cache"
        case .writeZeroes: return "write_zeroes"
        case .blockStatus: return "block_status"
        case .other: return "other"
        }
    }
}

/// Names of the NBD error values (proto.md "Error values") for metric labels.
public enum NBDErrorName {
    /// Every error value this server sends, with its name.
    public static let known: [(code: UInt32, name: String)] = [
        (1, "EPERM"), (5, "EIO"), (12, "ENOMEM"), (22, "EINVAL"), (28, "ENOSPC"),
        (75, "EOVERFLOW"), (95, "ENOTSUP"), (108, "ESHUTDOWN"),
    ]

    /// `EINVAL` for 22 and so on; `E<number>` for values outside the protocol's list.
    public static func of(_ code: UInt32) -> String {
        known.first { $0.code == code }?.name ?? "E\(code)"
    }
}

extension NBDExportMetrics {
    /// Reports `request` as answered with `error`; `written` tells whether the
    /// reply reached the socket (a READ's bytes count only then).
    func requestCompleted(_ request: NBDRequest, error: UInt32, written: Result<Void, any Error>) {
        let command = NBDCommandKind(wireType: request.type)
        var bytes: UInt64 = 0
        if command == .read, error == 0, case .success = written { bytes = UInt64(request.length) }
        let latency = NIODeadline.now() - request.receivedAt
        requestCompleted(command, bytes: bytes, error: error, latencyNanoseconds: latency.nanoseconds)
    }
}
