@testable import NBDServer
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `PageCache` against the kernel: a file just written and read is resident,
/// the same file after `POSIX_FADV_DONTNEED` (clean pages, on a disk
/// filesystem) is not, and an invalid descriptor is never "resident".
final class PageCacheTests: XCTestCase {
    func testResidencyFollowsThePageCache() throws {
        guard PageCache.isSupported else { throw XCTSkip("no cachestat(2) on this kernel (Linux 6.5+)") }
        let path = FileManager.default.currentDirectoryPath + "/.build/pagecache-test-\(getpid()).bin"
        let bytes = [UInt8](repeating: 0xA5, count: 1 << 20)
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        defer { unlink(path) }
        let fd = open(path, O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var sink = [UInt8](repeating: 0, count: 1 << 20)
        XCTAssertEqual(pread(fd, &sink, sink.count, 0), sink.count)
        XCTAssertTrue(PageCache.isResident(fileDescriptor: fd, offset: 0, length: 1 << 20))
        XCTAssertTrue(PageCache.isResident(fileDescriptor: fd, offset: 4095, length: 2), "a range across a page boundary")
        // Clean pages are dropped at once (tmpfs would keep them: the test
        // file lives under .build, on the checkout's filesystem).
        XCTAssertEqual(fdatasync(fd), 0)
        XCTAssertEqual(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0)
        if try fileSystemType(of: path) != "tmpfs" {
            XCTAssertFalse(PageCache.isResident(fileDescriptor: fd, offset: 0, length: 1 << 20), "evicted pages")
        }
        XCTAssertFalse(PageCache.isResident(fileDescriptor: -1, offset: 0, length: 4096))
        XCTAssertFalse(PageCache.isResident(fileDescriptor: 1_000_000, offset: 0, length: 4096), "a descriptor not open")
    }

    private func fileSystemType(of path: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/stat")
        process.arguments = ["-f", "-c", "%T", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        return String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
