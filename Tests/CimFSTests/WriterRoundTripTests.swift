import XCTest
@testable import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// Source tree → create → reader → extract → byte-exact comparison of
/// everything the mapping restores.
final class WriterRoundTripTests: XCTestCase {
    var work = ""

    override func setUpWithError() throws { work = try WriterTestSupport.makeTemporaryDirectory("roundtrip") }
    override func tearDown() { WriterTestSupport.removeTree(work) }

    /// What the mapping restores for one path, taken before anything reads file data
    /// (reading would move atime).
    struct Snapshot: Equatable {
        var kind: String
        var size: UInt64
        var accessTime: WriterTimespec
        var modificationTime: WriterTimespec
        var symlinkTarget: String?
        var xattrs: [String: [UInt8]]
        /// Index of the hard-link group (same inode), or nil for single links.
        var linkGroup: Int?
    }

    static func mappedXattr(_ name: String) -> Bool { name.hasPrefix("user.") || name.hasPrefix("trusted.ntfs_") }

    private func snapshot(_ root: String) throws -> [String: Snapshot] {
        var result: [String: Snapshot] = [:]
        var inodes: [UInt64: [String]] = [:]
        var stats: [String: WriterStat] = [:]
        var queue = [""]
        while let relative = queue.popLast() {
            let path = relative.isEmpty ? root : root + "/" + relative
            let stat = try WriterLinux.stat(path)
            stats[relative] = stat
            var xattrs: [String: [UInt8]] = [:]
            for name in try WriterLinux.listXattrs(path) where Self.mappedXattr(name) {
                xattrs[name] = try WriterLinux.getXattr(path, name: name)
            }
            let kind = stat.isDirectory ? "dir" : stat.isSymlink ? "symlink" : "file"
            result[relative] = Snapshot(kind: kind, size: stat.isDirectory ? 0 : stat.size, accessTime: stat.accessTime,
                                        modificationTime: stat.modificationTime,
                                        symlinkTarget: stat.isSymlink ? try WriterSourceTree.readLink(path) : nil,
                                        xattrs: xattrs, linkGroup: nil)
            if !stat.isDirectory { inodes[stat.inode, default: []].append(relative) }
            if stat.isDirectory {
                for name in try WriterTestSupport.listDirectory(path) { queue.append(relative.isEmpty ? name : relative + "/" + name) }
            }
        }
        // Link groups numbered by their smallest path, so both trees number them alike.
        let groups = inodes.values.filter { $0.count > 1 }.map { $0.sorted() }.sorted { $0[0] < $1[0] }
        for (index, group) in groups.enumerated() { for path in group { result[path]?.linkGroup = index } }
        return result
    }

    func testFullRoundTrip() throws {
        let src = work + "/src", out = work + "/out", dst = work + "/dst"
        for dir in [src, out] { try WriterTestSupport.mkdir(dir) }
        for dir in ["sub", "sub/deeper", "empty dir", "ünïcödé", "日本語", "stream dir"] { try WriterTestSupport.mkdir(src + "/" + dir) }
        var bigData = [UInt8](repeating: 0, count: 3 << 20)
        for i in stride(from: 0, to: bigData.count, by: 4093) { bigData[i] = UInt8(truncatingIfNeeded: i / 4093 | 1) }
        let files: [(String, [UInt8])] = [
            ("plain.txt", Array("plain text\n".utf8)),
            ("empty", []),
            ("sub/big.bin", bigData),
            ("sub/deeper/dup1", Array(repeating: 0x5A, count: 70_000)),
            ("sub/deeper/dup2", Array(repeating: 0x5A, count: 70_000)),
            ("ünïcödé/naïve café.txt", Array("accents".utf8)),
            ("日本語/ファイル", Array("japanese".utf8)),
            ("😀 emoji", Array("astral".utf8)),
            ("with xattrs", Array("metadata".utf8)),
            ("reparse-file", Array("not a link".utf8)),
        ]
        for (path, data) in files { try WriterTestSupport.write(src + "/" + path, data) }
        // Partly sparse: data, a 2 MiB hole, data.
        try WriterTestSupport.makeSparse(src + "/holey", size: 4 << 20)
        let fd = open(src + "/holey", O_WRONLY)
        _ = [UInt8](repeating: 7, count: 4096).withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, 0) }
        _ = [UInt8](repeating: 9, count: 4096).withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, off_t((4 << 20) - 4096)) }
        close(fd)
        try WriterTestSupport.makeSparse(src + "/sparse", size: 10 << 20)
        try WriterTestSupport.symlink("sub/big.bin", src + "/rel-link")
        try WriterTestSupport.symlink("../plain.txt", src + "/sub/up-link")
        try WriterTestSupport.symlink("/usr/share/dict/words", src + "/abs-link")
        try WriterTestSupport.symlink("dangling/target", src + "/dangling")
        try WriterTestSupport.hardlink(src + "/plain.txt", src + "/sub/plain-hardlink")
        try WriterTestSupport.hardlink(src + "/plain.txt", src + "/日本語/also-plain")
        try WriterTestSupport.hardlink(src + "/sparse", src + "/sparse-link")

        let descriptor: [UInt8] = [1, 0, 0x04, 0x80, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                   1, 1, 0, 0, 0, 0, 0, 5, 0x12, 0, 0, 0]
        let ea: [UInt8] = [0, 0, 0, 0, 0, 3, 2, 0] + Array("KEY".utf8) + [0, 0xAB, 0xCD] + [0, 0, 0]
        let mountPoint: [UInt8] = [0x03, 0, 0, 0xA0, 12, 0, 0, 0, 0, 0, 2, 0, 4, 0, 2, 0, 0x43, 0, 0, 0, 0x43, 0, 0, 0]
        // A directory with a mount point and no entries is a junction and extracts as a symlink
        // (ExtractCaseTests); a tag that is no link keeps "stream dir" a directory with its buffer.
        let wci: [UInt8] = [0x18, 0, 0, 0x80, 8, 0, 0, 0, 1, 0, 0, 0, 0xC1, 0xC2, 0xC3, 0xC4]
        let x = src + "/with xattrs"
        try WriterLinux.setXattr(x, name: "user.stream", value: Array("alternate data".utf8))
        try WriterLinux.setXattr(x, name: "user.empty", value: [])
        try WriterLinux.setXattr(x, name: "user.bigger", value: (0..<1500).map { UInt8(truncatingIfNeeded: $0) })
        try WriterLinux.setXattr(x, name: "user.ünicode", value: [1, 2, 3])
        try WriterLinux.setXattr(x, name: "trusted.ntfs_acl", value: descriptor)
        try WriterLinux.setXattr(x, name: "trusted.ntfs_attrib", value: [0x23, 0x02, 0, 0])  // RO|HIDDEN|ARCHIVE|SPARSE
        try WriterLinux.setXattr(x, name: "trusted.ntfs_ea", value: ea)
        try WriterLinux.setXattr(src + "/plain.txt", name: "trusted.ntfs_acl", value: descriptor)
        try WriterLinux.setXattr(src + "/reparse-file", name: "trusted.ntfs_reparse_data", value: mountPoint)
        try WriterLinux.setXattr(src + "/stream dir", name: "user.dirstream", value: Array("on a directory".utf8))
        try WriterLinux.setXattr(src + "/stream dir", name: "trusted.ntfs_reparse_data", value: wci)
        try WriterLinux.setXattr(src + "/stream dir", name: "trusted.ntfs_attrib", value: [0x04, 0, 0, 0])
        try WriterLinux.setXattr(src + "/abs-link", name: "trusted.ntfs_acl", value: descriptor)

        // Exact times, deepest first so directory times stick; atime before mtime on purpose.
        var all: [String] = []
        var queue = [""]
        while let relative = queue.popLast() {
            all.append(relative)
            let path = relative.isEmpty ? src : src + "/" + relative
            if try WriterLinux.stat(path).isDirectory {
                for name in try WriterTestSupport.listDirectory(path) { queue.append(relative.isEmpty ? name : relative + "/" + name) }
            }
        }
        // Reading a directory or a symlink moves its atime, so nothing reads the
        // source between setting the times and the writer's scan: the expected
        // times are remembered instead.
        var expectedTimes: [String: (access: WriterTimespec, modification: WriterTimespec)] = [:]
        var byInode: [UInt64: (access: WriterTimespec, modification: WriterTimespec)] = [:]
        for (index, relative) in all.sorted(by: { $0.count > $1.count }).enumerated() {
            let path = relative.isEmpty ? src : src + "/" + relative
            let times = (WriterTimespec(seconds: 1_400_000_000 + Int64(index), nanoseconds: UInt32(index * 100 + 300)),
                         WriterTimespec(seconds: 1_700_000_000 - Int64(index) * 3600, nanoseconds: 999_999_900))
            try WriterTestSupport.setTimes(path, access: times.0, modification: times.1)
            // Hard links share one inode: the last name's times win for all of them.
            byInode[try WriterLinux.stat(path).inode] = times
        }
        var sourceStats: [String: WriterStat] = [:]
        for relative in all {
            let stat = try WriterLinux.stat(relative.isEmpty ? src : src + "/" + relative)
            sourceStats[relative] = stat
            expectedTimes[relative] = byInode[stat.inode]
        }

        var options = CimWriterOptions()
        options.smallDataThreshold = 1024
        let summary = try CimWriter().createImage(from: src, imagePath: out + "/rt.cim", options: options)
        XCTAssertEqual(summary.sparseFiles, 1)
        XCTAssertEqual(summary.skipped, [])
        var before = try snapshot(src)
        for (relative, times) in expectedTimes {
            before[relative]?.accessTime = times.access
            before[relative]?.modificationTime = times.modification
        }

        // Reader view: every time, including creation (birth) and change.
        let image = try CimImage(path: out + "/rt.cim")
        XCTAssertTrue(image.verify().isClean)
        for (relative, stat) in sourceStats {
            let id = relative.isEmpty ? image.rootID : try image.lookup(path: relative)
            let entry = try image.entry(id)
            XCTAssertEqual(entry.lastWriteTime, WriterFileTime.ticks(stat.modificationTime), relative)
            XCTAssertEqual(entry.lastAccessTime, WriterFileTime.ticks(stat.accessTime), relative)
            XCTAssertEqual(stat.accessTime, expectedTimes[relative]?.access, relative)
            XCTAssertEqual(stat.modificationTime, expectedTimes[relative]?.modification, relative)
            XCTAssertEqual(entry.changeTime, WriterFileTime.ticks(stat.changeTime), relative)
            XCTAssertEqual(entry.creationTime, WriterFileTime.ticks(stat.birthTime ?? stat.modificationTime), relative)
            XCTAssertEqual(entry.isDirectory, stat.isDirectory, relative)
        }
        let xid = try image.lookup(path: "with xattrs")
        XCTAssertEqual(try image.securityDescriptor(of: xid), descriptor)
        XCTAssertEqual(try image.extendedAttributes(of: xid), ea)
        XCTAssertEqual(try image.entry(xid).attributes, 0x223)
        XCTAssertEqual(Set(try image.alternateStreams(of: xid).map(\.name)), ["stream", "empty", "bigger", "ünicode"])
        XCTAssertNil(try image.securityDescriptor(of: try image.lookup(path: "empty")))
        XCTAssertEqual(try image.entry(try image.lookup(path: "reparse-file")).reparseTag, CimFormat.ReparseTag.mountPoint)
        XCTAssertEqual(try image.reparseData(of: try image.lookup(path: "stream dir")), wci)
        let sparseEntry = try image.entry(try image.lookup(path: "sparse"))
        XCTAssertTrue(sparseEntry.defaultStream.isSparse)
        XCTAssertEqual(sparseEntry.defaultStream.length, 10 << 20)
        XCTAssertEqual(try image.lookup(path: "sparse-link"), try image.lookup(path: "sparse"))

        // Extract and compare.
        let extracted = try CimExtractor().extract(imagePath: out + "/rt.cim", to: dst)
        XCTAssertEqual(extracted.hardLinks, 3)
        XCTAssertEqual(extracted.symlinks, 4)
        let after = try snapshot(dst)
        XCTAssertEqual(Set(after.keys), Set(before.keys))
        for (relative, expected) in before {
            XCTAssertEqual(after[relative], expected, "metadata of \(relative.isEmpty ? "/" : relative)")
        }
        for (relative, snap) in before where snap.kind == "file" {
            XCTAssertEqual(try WriterTestSupport.readFile(dst + "/" + relative), try WriterTestSupport.readFile(src + "/" + relative), relative)
        }
        XCTAssertEqual(try WriterLinux.stat(dst + "/sparse").blocks, 0, "all-hole file must stay a hole")
        XCTAssertLessThan(try WriterLinux.stat(dst + "/holey").blocks, 1024, "holes must stay holes")
    }
}
