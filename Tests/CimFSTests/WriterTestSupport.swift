import XCTest
import Crypto
@testable import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// Helpers for the writer tests: build source trees with exact metadata and
/// snapshot what an image (read through the reader) or a tree holds.
enum WriterTestSupport {
    static func makeTemporaryDirectory(_ label: String) throws -> String {
        var template = Array("/tmp/cimwriter-\(label)-XXXXXX".utf8CString)
        guard let result = mkdtemp(&template) else { throw CimError.io(path: "/tmp", offset: 0, errno: errno, what: "mkdtemp") }
        return String(cString: result)
    }

    static func removeTree(_ path: String) {
        _ = runProcess("/bin/rm", ["-rf", path])
    }

    @discardableResult
    static func runProcess(_ executable: String, _ arguments: [String]) -> Int32 {
        var pid: pid_t = 0
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        guard posix_spawn(&pid, executable, nil, nil, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return status
    }

    static func mkdir(_ path: String) throws {
        guard Glibc.mkdir(path, 0o755) == 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "mkdir") }
    }

    static func write(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "open") }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(done)) }
            guard n > 0 else { throw CimError.io(path: path, offset: UInt64(done), errno: errno, what: "write") }
            done += n
        }
    }

    static func makeSparse(_ path: String, size: Int64) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "open") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "ftruncate") }
    }

    static func symlink(_ target: String, _ path: String) throws {
        guard Glibc.symlink(target, path) == 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "symlink") }
    }

    static func hardlink(_ existing: String, _ path: String) throws {
        guard link(existing, path) == 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "link") }
    }

    /// Sets atime and mtime exactly (not following symlinks).
    static func setTimes(_ path: String, access: WriterTimespec, modification: WriterTimespec) throws {
        var times = [timespec(tv_sec: Int(access.seconds), tv_nsec: Int(access.nanoseconds)),
                     timespec(tv_sec: Int(modification.seconds), tv_nsec: Int(modification.nanoseconds))]
        guard utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw CimError.io(path: path, offset: 0, errno: errno, what: "utimensat")
        }
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        let file = try RegionFile(path: path)
        return try file.read(at: 0, length: Int(file.size))
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { byte -> String in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }

    static func listDirectory(_ path: String) throws -> [String] {
        try WriterSourceTree.listDirectory(path).map { String(decoding: $0, as: UTF8.self) }.sorted()
    }

    /// Whole content of a stream read through the reader.
    static func content(_ image: CimImage, _ stream: CimStream, fileID: CimFileID) throws -> [UInt8] {
        var result: [UInt8] = []
        try image.forEachChunk(of: stream, fileID: fileID) { result.append(contentsOf: $0) }
        return result
    }

    static func fileID(_ image: CimImage, _ path: String) throws -> CimFileID { try image.lookup(path: path) }
}

