import CimFS
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import VolumeSynth

final class Ext4ScaleTests: XCTestCase {
    typealias S = Ext4TestSupport

    /// 100,000 entries in one directory (two-level htree), a 200-level deep
    /// tree, and a directory with many subdirectories.
    /// Names in the big directory: varied lengths, some non-ASCII (the hash
    /// treats bytes as unsigned, which matters only above 0x7F).
    static func bigName(_ i: Int) -> String {
        switch i % 10 {
        case 3: return "fichier-\(i)-été-☃-日本"
        case 7: return String(format: "file-%06d-with-a-longer-name-to-vary-lengths", i)
        default: return String(format: "file-%06d-x", i)
        }
    }

    func testHugeDirectoryAndDeepTree() throws {
        let t = try MemoryTree()
        let big = t.dir(1, "big")
        for i in 0..<100_000 {
            try t.file(big, Self.bigName(i), i % 1000 == 0 ? [.data([UInt8(i % 251)])] : [])
        }
        var d: UInt32 = 1
        for level in 0..<200 { d = t.dir(d, "d\(level)") }
        try t.file(d, "bottom", [.data(Array("deep\n".utf8))])
        let many = t.dir(1, "many-subdirs")
        for i in 0..<300 { t.dir(many, "s\(i)") }
        try t.finish()

        let start = Date()
        let volume = try Ext4Volume(source: t, options: S.options)
        let buildTime = Date().timeIntervalSince(start)
        XCTAssertTrue(volume.warnings.isEmpty)
        XCTAssertLessThan(buildTime, 30, "build of ~100k nodes (debug build) took \(buildTime)s")
        let image = try S.writeImage(volume, name: "huge-dir")
        defer { try? FileManager.default.removeItem(atPath: image) }
        try S.assertClean(image)

        let (_, htree) = try S.run(["debugfs", "-R", "htree_dump /big", image])
        XCTAssertTrue(htree.contains("Number of entries (count):"), String(htree.prefix(2000)))
        XCTAssertTrue(htree.contains("Indirect levels: 1") || htree.contains("Indirect levels: 0"), String(htree.prefix(2000)))

        guard S.canMount else { return }
        try S.withMount(image) { mount in
            // Lookups go through the htree: each must find the right inode quickly.
            let lookupStart = Date()
            for i in stride(from: 0, to: 100_000, by: 97) {
                let name = Self.bigName(i)
                var st = stat()
                XCTAssertEqual(lstat(mount + "/big/" + name, &st), 0, name)
                XCTAssertEqual(UInt64(st.st_size), i % 1000 == 0 ? 1 : 0, name)
            }
            XCTAssertLessThan(Date().timeIntervalSince(lookupStart), 10)
            var st = stat()
            XCTAssertNotEqual(lstat(mount + "/big/file-000001-y", &st), 0)
            let names = try FileManager.default.contentsOfDirectory(atPath: mount + "/big")
            XCTAssertEqual(names.count, 100_000)
            let deep = (0..<200).map { "d\($0)" }.joined(separator: "/")
            XCTAssertEqual(try String(contentsOfFile: mount + "/" + deep + "/bottom", encoding: .utf8), "deep\n")
            XCTAssertEqual(lstat(mount + "/many-subdirs", &st), 0)
            XCTAssertEqual(st.st_nlink, 302)
        }
    }

    /// Files needing extent index blocks (depth 1 and 2), extents longer than
    /// 32768 blocks, and a 1 TiB sparse file.
    func testLargeAndSparseFiles() throws {
        let t = try MemoryTree()
        func block(_ i: Int) -> [UInt8] { (0..<4096).map { UInt8(truncatingIfNeeded: $0 ^ i) } }
        // 600 extents: depth 1.
        var pieces: [MemoryTree.Piece] = []
        for i in 0..<600 { pieces += [.data(block(i)), .hole(4096)] }
        try t.file(1, "frag-600", pieces)
        // 1500 extents: 5 leaves -> depth 2.
        pieces = []
        for i in 0..<1500 { pieces += [.data(block(i)), .hole(8192)] }
        try t.file(1, "frag-1500", pieces)
        // A contiguous 130 MiB file: extents split at 32768 blocks and at backup superblocks.
        try t.file(1, "long", [.data([UInt8](repeating: 0xA5, count: 130 << 20))])
        // 1 TiB, nearly all hole.
        let tib: UInt64 = 1 << 40
        try t.file(1, "sparse-1tib", [.data(Array("start".utf8)), .hole(tib / 2 - 5), .data(block(7)), .hole(tib / 2 - 4096 - 3), .data([1, 2, 3])], keepExpected: false)
        try t.file(1, "only-hole", [.hole(1 << 33)], keepExpected: false)
        try t.finish()

        let volume = try Ext4Volume(source: t, options: S.options)
        let image = try S.writeImage(volume, name: "large")
        defer { try? FileManager.default.removeItem(atPath: image) }
        try S.assertClean(image)
        // The backup superblock and descriptors in group 1 are valid too.
        let (backupStatus, backupOutput) = try S.run(["e2fsck", "-fn", "-b", "32768", "-B", "4096", image])
        XCTAssertEqual(backupStatus, 0, backupOutput)
        let (_, stat600) = try S.run(["debugfs", "-R", "stat /frag-1500", image])
        XCTAssertTrue(stat600.contains("(ETB1)") || stat600.contains("ETB"), String(stat600.prefix(3000)))

        guard S.canMount else { return }
        try S.withMount(image) { mount in
            try S.compare(tree: t, mount: mount, skipContentAbove: 1 << 30)
            let fd = open(mount + "/sparse-1tib", O_RDONLY)
            XCTAssertGreaterThanOrEqual(fd, 0)
            defer { close(fd) }
            var buf = [UInt8](repeating: 0xFF, count: 8)
            XCTAssertEqual(pread(fd, &buf, 5, 0), 5)
            XCTAssertEqual(Array(buf[0..<5]), Array("start".utf8))
            XCTAssertEqual(pread(fd, &buf, 8, off_t(tib / 2)), 8)
            XCTAssertEqual(buf, Array(block(7)[0..<8]))
            XCTAssertEqual(pread(fd, &buf, 8, off_t(tib / 4)), 8)
            XCTAssertEqual(buf, [UInt8](repeating: 0, count: 8))
            XCTAssertEqual(pread(fd, &buf, 8, off_t(tib - 3)), 3)
            XCTAssertEqual(Array(buf[0..<3]), [1, 2, 3])
            XCTAssertEqual(lseek(fd, off_t(5), 3 /* SEEK_DATA */), off_t(5))  // still in the first block
            XCTAssertEqual(lseek(fd, off_t(4096), 3 /* SEEK_DATA */), off_t(tib / 2))
        }
    }
}
