#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything that can go wrong reading or writing a CIM image.
///
/// Each case names the file and, where there is one, the byte offset, so a
/// message points at the problem without a debugger.
public enum CimError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A file the image needs does not exist.
    case missingFile(path: String)
    /// The directory that should contain the image does not exist.
    case missingDirectory(path: String)
    /// Permission was refused.
    case accessDenied(path: String)
    /// The path is not a regular file.
    case notARegularFile(path: String)
    /// A system call failed.
    case io(path: String, offset: UInt64, errno: Int32, what: String)
    /// The file ended before a structure did.
    case truncated(path: String, offset: UInt64, expected: UInt64)
    /// A byte range lies (partly) outside its file.
    case outOfBounds(path: String, offset: UInt64, length: UInt64, fileSize: UInt64, what: String)
    /// The magic bytes are not `cimfile0`.
    case badMagic(path: String, found: [UInt8])
    /// A version this reader does not know.
    case unsupportedVersion(path: String, major: UInt32, minor: UInt32)
    /// A field holds a value the format does not allow.
    case invalidField(path: String, offset: UInt64, field: String, value: UInt64, expected: String)
    /// A structure is inconsistent (order, cycles, overlaps...).
    case corrupt(path: String, offset: UInt64, problem: String)
    /// A FileID that does not exist in the image.
    case invalidFileID(path: String, fileID: UInt32, problem: String)
    /// A path that names nothing.
    case notFound(path: String)
    /// A path component is not a directory.
    case notADirectory(path: String)
    /// The image uses a feature whose layout is not public.
    case unsupportedFeature(path: String, feature: String)
    /// A file changed on disk while it was in use.
    case fileChanged(path: String, detail: String)
    /// A problem with the writer's input or options.
    case invalidInput(String)

    public var description: String {
        switch self {
        case .missingFile(let path): return "\(path): no such file"
        case .missingDirectory(let path): return "\(path): no such directory"
        case .accessDenied(let path): return "\(path): access denied"
        case .notARegularFile(let path): return "\(path): not a regular file"
        case .io(let path, let offset, let code, let what):
            return "\(path): \(what) at offset \(offset) failed: \(String(cString: strerror(code)))"
        case .truncated(let path, let offset, let expected):
            return "\(path): file ends at offset \(offset), \(expected) more bytes expected"
        case .outOfBounds(let path, let offset, let length, let fileSize, let what):
            return "\(path): \(what) of \(length) bytes at offset \(offset) lies outside the file (\(fileSize) bytes)"
        case .badMagic(let path, let found):
            let hex = found.map { String($0, radix: 16) }.joined(separator: " ")
            return "\(path): not a CIM file (magic is [\(hex)], expected \"cimfile0\")"
        case .unsupportedVersion(let path, let major, let minor):
            return "\(path): unsupported CIM format version \(major).\(minor) (this reader knows 1.x, 2.x and 3.x)"
        case .invalidField(let path, let offset, let field, let value, let expected):
            return "\(path): offset \(offset): \(field) is \(value), expected \(expected)"
        case .corrupt(let path, let offset, let problem):
            return "\(path): offset \(offset): \(problem)"
        case .invalidFileID(let path, let fileID, let problem):
            return "\(path): FileID \(fileID): \(problem)"
        case .notFound(let path): return "\(path): no such file or directory in the image"
        case .notADirectory(let path): return "\(path): not a directory"
        case .unsupportedFeature(let path, let feature): return "\(path): unsupported feature: \(feature)"
        case .fileChanged(let path, let detail): return "\(path): changed while in use: \(detail)"
        case .invalidInput(let message): return message
        }
    }
}
