#if canImport(Glibc)
import Glibc
#endif

/// Why an import failed. Every case names the input and the entry (or byte
/// offset) at fault, so one line says what to fix.
public enum ImportError: Error, CustomStringConvertible, Equatable {
    /// The input ends before a structure it announced (`offset` in the stream named).
    case truncated(input: String, offset: UInt64, what: String)
    /// The compressed stream is damaged.
    case badCompression(input: String, offset: UInt64, detail: String)
    /// A tar header or record is malformed.
    case badTar(input: String, offset: UInt64, problem: String)
    /// A tar entry (named by its path) cannot be imported.
    case badEntry(input: String, entry: String, problem: String)
    /// An OCI layout, manifest or config is wrong.
    case badLayout(path: String, problem: String)
    /// A blob's bytes do not hash to the digest that names them.
    case digestMismatch(what: String, expected: String, found: String)
    /// A zip or MSIX package is malformed.
    case badPackage(path: String, entry: String?, problem: String)
    /// A file could not be read or written.
    case io(path: String, errno: Int32, what: String)

    public var description: String {
        switch self {
        case .truncated(let input, let offset, let what):
            return "\(input): truncated at byte \(offset): \(what)"
        case .badCompression(let input, let offset, let detail):
            return "\(input): corrupt compressed data near byte \(offset): \(detail)"
        case .badTar(let input, let offset, let problem):
            return "\(input): bad tar data at byte \(offset): \(problem)"
        case .badEntry(let input, let entry, let problem):
            return "\(input): entry \(entry): \(problem)"
        case .badLayout(let path, let problem):
            return "\(path): \(problem)"
        case .digestMismatch(let what, let expected, let found):
            return "\(what): digest mismatch: expected \(expected), found \(found)"
        case .badPackage(let path, let entry, let problem):
            return entry.map { "\(path): entry \($0): \(problem)" } ?? "\(path): \(problem)"
        case .io(let path, let code, let what):
            return "\(path): \(what) failed: \(String(cString: strerror(code)))"
        }
    }
}
