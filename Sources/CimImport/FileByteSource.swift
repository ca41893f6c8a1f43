#if canImport(Glibc)
import Glibc
#endif
import Crypto

/// Bytes of a file descriptor, counted and optionally hashed with SHA-256
/// as they pass (blob digests are checked this way, in one pass).
public final class FileByteSource: ByteSource {
    public let name: String
    private let fd: Int32
    private let ownsDescriptor: Bool
    private var hasher: SHA256?
    /// Bytes read so far.
    public private(set) var bytesRead: UInt64 = 0

    /// Opens `path` for reading (`-` is stdin).
    public init(path: String, hashing: Bool = false) throws {
        name = path == "-" ? "stdin" : path
        if path == "-" {
            fd = 0
            ownsDescriptor = false
        } else {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw ImportError.io(path: path, errno: errno, what: "open") }
            ownsDescriptor = true
        }
        if hashing { hasher = SHA256() }
    }

    deinit { if ownsDescriptor { close(fd) } }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        while true {
            let n = Glibc.read(fd, base, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw ImportError.io(path: name, errno: errno, what: "read at byte \(bytesRead)")
            }
            if n > 0 {
                hasher?.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                bytesRead += UInt64(n)
            }
            return n
        }
    }

    /// `sha256:<hex>` of every byte read (hashing must have been asked for).
    public func digest() -> String? {
        hasher.map { "sha256:" + Hex.string($0.finalize()) }
    }
}
