/// Why a mount-table operation failed. The first five mirror the errors of
/// Windows' `CimMountImage`; each has its own exit code for the CLI.
public enum MountError: Error, Sendable, Equatable, CustomStringConvertible, Codable {
    /// An unknown or unsupported mount flag (ERROR_INVALID_PARAMETER).
    case invalidFlag(flags: UInt32, detail: String)
    /// The image directory does not exist (ERROR_PATH_NOT_FOUND).
    case pathNotFound(path: String)
    /// No image of that name in the directory (ERROR_FILE_NOT_FOUND).
    case fileNotFound(path: String)
    /// The caller may not read the image, or may not mount (ERROR_ACCESS_DENIED).
    case accessDenied(path: String)
    /// A volume with that GUID is already mounted (ERROR_ALREADY_EXISTS).
    case alreadyExists(guid: String)
    /// No volume with that GUID is mounted.
    case notMounted(guid: String)
    /// The volume has connected clients and `force` was not given.
    case busy(guid: String, clients: Int)
    /// The argument is not a GUID.
    case invalidGUID(text: String)
    /// The image is damaged or cannot be represented.
    case invalidImage(detail: String)
    /// The state file cannot be decoded (truncated, empty, not a mount table).
    case damagedStateFile(path: String, detail: String)
    /// Anything else.
    case failed(detail: String)

    public var description: String {
        switch self {
        case .invalidFlag(let flags, let detail): return "invalid argument: mount flags 0x\(String(flags, radix: 16)): \(detail)"
        case .pathNotFound(let path): return "path not found: image directory \(path) does not exist"
        case .fileNotFound(let path): return "file not found: no image \(path)"
        case .accessDenied(let path): return "access denied: \(path)"
        case .alreadyExists(let guid): return "already exists: a volume with GUID \(guid) is already mounted"
        case .notMounted(let guid): return "not mounted: no volume with GUID \(guid); see 'cimnbd list'"
        case .busy(let guid, let clients):
            return "busy: volume \(guid) has \(clients) connected client(s); use --force to disconnect them"
        case .invalidGUID(let text): return "invalid argument: \"\(text)\" is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
        case .invalidImage(let detail): return "invalid image: \(detail)"
        case .damagedStateFile(let path, let detail): return "\(path): damaged state file: \(detail)"
        case .failed(let detail): return detail
        }
    }

    /// The CLI's exit code for this error (documented in README).
    public var exitCode: Int32 {
        switch self {
        case .invalidFlag, .invalidGUID: return 10
        case .pathNotFound: return 11
        case .fileNotFound: return 12
        case .accessDenied: return 13
        case .alreadyExists: return 14
        case .notMounted: return 15
        case .busy: return 16
        case .invalidImage: return 17
        case .damagedStateFile, .failed: return 1
        }
    }
}
