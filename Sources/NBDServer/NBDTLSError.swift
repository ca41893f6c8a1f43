#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why TLS credentials could not be loaded. Each case names the file.
public enum NBDTLSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `--tls on|require` without certificates or a PSK file.
    case noCredentials(mode: NBDTLSMode)
    /// A file the chosen credentials need is missing.
    case missingFile(path: String, purpose: String)
    /// A certificate or key file that exists but cannot be used.
    case unusableFile(path: String, detail: String)
    /// The PSK file cannot be read.
    case unreadablePSKFile(path: String, errno: Int32)
    /// The PSK file is larger than any list of keys should be.
    case oversizedPSKFile(path: String, limit: Int)
    /// A line of the PSK file is not `username:hexkey`.
    case malformedPSKLine(path: String, line: Int, problem: String)
    /// The PSK file holds no key.
    case emptyPSKFile(path: String)

    public var description: String {
        switch self {
        case .noCredentials(let mode):
            return "--tls \(mode) needs --tls-certificates DIR or --tls-psk FILE"
        case .missingFile(let path, let purpose):
            return "\(path): no such file (\(purpose))"
        case .unusableFile(let path, let detail):
            return "\(path): \(detail)"
        case .unreadablePSKFile(let path, let code):
            return "\(path): cannot read the PSK file: \(String(cString: strerror(code)))"
        case .oversizedPSKFile(let path, let limit):
            return "\(path): the PSK file is larger than \(limit) bytes"
        case .malformedPSKLine(let path, let line, let problem):
            return "\(path):\(line): \(problem); expected username:hexkey as psktool writes it"
        case .emptyPSKFile(let path):
            return "\(path): the PSK file holds no key; add one with: psktool -u alice -p \(path)"
        }
    }
}
