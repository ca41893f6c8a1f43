/// Errors of ``NBDServer`` life-cycle calls.
public enum NBDServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `start` was called twice.
    case alreadyStarted
    /// `start` was called after `shutdown`.
    case alreadyShutDown
    /// Neither TCP addresses nor Unix sockets were given.
    case nothingToListenOn

    public var description: String {
        switch self {
        case .alreadyStarted: return "the NBD server is already started"
        case .alreadyShutDown: return "the NBD server has been shut down"
        case .nothingToListenOn: return "no TCP address or Unix socket to listen on"
        }
    }
}
