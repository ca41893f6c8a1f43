/// Errors of ``ExportRegistry``.
public enum ExportRegistryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An export with this GUID is already registered.
    case duplicate(ExportGUID)
    /// No export with this GUID is registered.
    case notFound(ExportGUID)
    /// The export still has connected clients and `force` was not given.
    case busy(ExportGUID, clients: Int)
    /// The text is not a GUID.
    case invalidGUID(String)

    public var description: String {
        switch self {
        case .duplicate(let guid): return "an export named \(guid) already exists"
        case .notFound(let guid): return "no export named \(guid)"
        case .busy(let guid, let clients):
            return "export \(guid) has \(clients) connected client(s); remove it with force to disconnect them"
        case .invalidGUID(let text): return "\"\(text)\" is not a GUID"
        }
    }
}
