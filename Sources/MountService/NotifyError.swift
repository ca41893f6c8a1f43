/// A notification that could not be delivered to `NOTIFY_SOCKET`.
public struct NotifyError: Error, CustomStringConvertible {
    /// The socket named by `NOTIFY_SOCKET`.
    public var socket: String
    /// What went wrong.
    public var detail: String

    public var description: String { "cannot notify the service manager at \(socket): \(detail)" }
}
