import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Keeps the mount table in a JSON file, replaced atomically on every change
/// (write to a temporary file, fsync, rename, fsync the directory), so a crash
/// leaves either the old table or the new one.
public struct MountStateStore: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// The saved records; none when the file does not exist.
    public func load() throws -> [MountRecord] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            return try JSONDecoder().decode(StateFile.self, from: data).mounts
        } catch {
            throw MountError.failed(detail: "\(path): unreadable state file: \(error)")
        }
    }

    public func save(_ records: [MountRecord]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(StateFile(version: 1, mounts: records))
        let directory = (path as NSString).deletingLastPathComponent
        let dir = directory.isEmpty ? "." : directory
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw MountError.failed(detail: "\(temporary): cannot create: \(String(cString: strerror(errno)))") }
        var ok = data.withUnsafeBytes { raw -> Bool in
            var done = 0
            while done < raw.count {
                guard let base = raw.baseAddress else { return false }
                let n = write(fd, base + done, raw.count - done)
                if n < 0 { if errno == EINTR { continue }; return false }
                done += n
            }
            return true
        }
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(temporary)
            throw MountError.failed(detail: "\(path): cannot save state: \(message)")
        }
        let dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 {
            fsync(dirfd)
            close(dirfd)
        }
    }

    private struct StateFile: Codable {
        var version: Int
        var mounts: [MountRecord]
    }
}
