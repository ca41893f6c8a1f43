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

    /// The saved records; none when the file does not exist. Throws
    /// ``MountError/damagedStateFile(path:detail:)`` when it cannot be decoded.
    public func load() throws -> [MountRecord] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw MountError.failed(detail: "\(path): cannot read the state file: \(error.localizedDescription)")
        }
        do {
            return try JSONDecoder().decode(StateFile.self, from: data).mounts
        } catch {
            throw MountError.damagedStateFile(path: path, detail: Self.describe(error, size: data.count))
        }
    }

    /// What ``loadSettingAsideDamage()`` found.
    public struct Loaded: Sendable {
        /// The saved records (none when the file was missing or damaged).
        public var records: [MountRecord]
        /// Where a damaged file was moved, and what was wrong with it.
        public var setAside: (path: String, problem: String)?
    }

    /// Like ``load()``, but a damaged file (truncated, empty, not JSON, not a
    /// mount table) is renamed to `PATH.corrupt-<UTC time>` and no records are
    /// returned, so the daemon can start; the file is kept for inspection.
    /// Throws only when the file cannot be read or moved aside.
    public func loadSettingAsideDamage(now: Date = Date()) throws -> Loaded {
        do {
            return Loaded(records: try load(), setAside: nil)
        } catch MountError.damagedStateFile(_, let detail) {
            let stamp = Self.timestamp(now)
            var target = "\(path).corrupt-\(stamp)"
            var suffix = 1
            while FileManager.default.fileExists(atPath: target) {
                suffix += 1
                target = "\(path).corrupt-\(stamp)-\(suffix)"
            }
            guard rename(path, target) == 0 else {
                throw MountError.failed(detail: "\(path): damaged state file (\(detail)) cannot be moved aside to \(target): \(String(cString: strerror(errno)))")
            }
            return Loaded(records: [], setAside: (target, detail))
        }
    }

    /// `20261202T074512Z`: sorts by time, and has no character a shell or a
    /// file system minds.
    private static func timestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }

    /// One line for the log instead of a DecodingError dump.
    private static func describe(_ error: any Error, size: Int) -> String {
        if size == 0 { return "the file is empty" }
        switch error {
        case DecodingError.dataCorrupted(let context):
            let underlying = (context.underlyingError as? NSError)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return "not valid JSON (\(size) bytes): \(underlying ?? context.debugDescription)"
        case DecodingError.keyNotFound(let key, _):
            return "not a mount table: no \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            let where_ = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "not a mount table: unexpected value at \"\(where_)\""
        default:
            return "\(error)"
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
