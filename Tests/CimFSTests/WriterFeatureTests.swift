import XCTest
@testable import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// Each writer option, read back through the reader's API.
final class WriterFeatureTests: XCTestCase {
    var work = ""
    var src = ""
    var out = ""

    override func setUpWithError() throws {
        work = try WriterTestSupport.makeTemporaryDirectory("feature")
        src = work + "/src"
        out = work + "/out"
        try WriterTestSupport.mkdir(src)
        try WriterTestSupport.mkdir(out)
    }

    override func tearDown() { WriterTestSupport.removeTree(work) }

    private func pattern(_ count: Int, seed: Int) -> [UInt8] {
        var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }

    private func create(_ name: String = "img.cim", _ configure: (inout CimWriterOptions) -> Void = { _ in }) throws -> (CimImage, CimWriteSummary) {
        var options = CimWriterOptions()
        configure(&options)
        let summary = try CimWriter().createImage(from: src, imagePath: out + "/" + name, options: options)
        let image = try CimImage(path: out + "/" + name)
        let report = image.verify()
        XCTAssertTrue(report.isClean, "verify: \(report.problems)")
        return (image, summary)
    }

    private func regionType(_ image: CimImage, _ regionOffset: UInt64) throws -> UInt8 {
        let (index, _) = CimFormat.split(regionOffset: regionOffset)
        return try image.regions[Int(index)].read(at: 34, length: 1)[0]
    }

    func testSeveralDataRegions() throws {
        for i in 0..<6 { try WriterTestSupport.write(src + "/f\(i)", pattern(10_000 + i, seed: i)) }
        let (image, summary) = try create { $0.dataRegions = 3; $0.smallDataThreshold = 0 }
        XCTAssertEqual(summary.regionFiles.count, 4)
        XCTAssertEqual(image.regions.count, 4)
        var used = Set<UInt16>()
        for i in 0..<6 {
            let id = try image.lookup(path: "f\(i)")
            let stream = try image.entry(id).defaultStream
            used.insert(CimFormat.split(regionOffset: stream.dataOffset).region)
            XCTAssertEqual(try regionType(image, stream.dataOffset), CimFormat.RegionType.pageAlignedData.rawValue)
            XCTAssertEqual(CimFormat.split(regionOffset: stream.dataOffset).offset % 4096, 0)
            XCTAssertEqual(try WriterTestSupport.content(image, stream, fileID: id), pattern(10_000 + i, seed: i))
        }
        XCTAssertEqual(used, [1, 2, 3])
    }

    func testSmallDataRegion() throws {
        try WriterTestSupport.write(src + "/tiny", pattern(13, seed: 1))
        try WriterTestSupport.write(src + "/tiny2", pattern(21, seed: 2))
        try WriterTestSupport.write(src + "/large", pattern(5000, seed: 3))
        let (image, _) = try create { $0.smallDataThreshold = 100 }
        for (name, size, seed) in [("tiny", 13, 1), ("tiny2", 21, 2)] {
            let id = try image.lookup(path: name)
            let stream = try image.entry(id).defaultStream
            XCTAssertEqual(try regionType(image, stream.dataOffset), CimFormat.RegionType.smallData.rawValue)
            XCTAssertEqual(CimFormat.split(regionOffset: stream.dataOffset).offset % 8, 0)
            XCTAssertEqual(try WriterTestSupport.content(image, stream, fileID: id), pattern(size, seed: seed))
        }
        let large = try image.lookup(path: "large")
        let stream = try image.entry(large).defaultStream
        XCTAssertEqual(try regionType(image, stream.dataOffset), CimFormat.RegionType.pageAlignedData.rawValue)
        XCTAssertEqual(try WriterTestSupport.content(image, stream, fileID: large), pattern(5000, seed: 3))
    }

    func testDeduplication() throws {
        let data = pattern(100_000, seed: 9)
        try WriterTestSupport.write(src + "/one", data)
        try WriterTestSupport.write(src + "/two", data)
        try WriterTestSupport.write(src + "/small1", Array("same small".utf8))
        try WriterTestSupport.write(src + "/small2", Array("same small".utf8))
        let descriptor: [UInt8] = [1, 0, 4, 0x80] + [UInt8](repeating: 0, count: 16)
        try WriterLinux.setXattr(src + "/one", name: "trusted.ntfs_acl", value: descriptor)
        try WriterLinux.setXattr(src + "/two", name: "trusted.ntfs_acl", value: descriptor)
        let (image, summary) = try create()
        let one = try image.entry(try image.lookup(path: "one")), two = try image.entry(try image.lookup(path: "two"))
        XCTAssertEqual(one.defaultStream.dataOffset, two.defaultStream.dataOffset)
        XCTAssertNotEqual(one.defaultStream.dataOffset, 0)
        XCTAssertEqual(one.securityDescriptorOffset, two.securityDescriptorOffset)
        XCTAssertEqual(try image.securityDescriptor(of: try image.lookup(path: "two")), descriptor)
        let s1 = try image.entry(try image.lookup(path: "small1")), s2 = try image.entry(try image.lookup(path: "small2"))
        XCTAssertEqual(s1.defaultStream.dataOffset, s2.defaultStream.dataOffset)
        XCTAssertEqual(summary.deduplicatedBytes, 100_000 + 10)
        XCTAssertEqual(summary.storedDataBytes, 100_000 + 10)
        // The object-id file lists the data object with its digest.
        let objectIDs = try WriterTestSupport.readFile(summary.objectIDFiles[1])
        XCTAssertEqual(Array(objectIDs[48..<56]), [0xA0, 0x86, 0x01, 0, 0, 0, 0, 0])  // length 100000
        XCTAssertEqual(Array(objectIDs[56..<80]), CimObjectDigest.of(data))

        let (plain, plainSummary) = try create("nodedup.cim") { $0.deduplicate = false }
        let p1 = try plain.entry(try plain.lookup(path: "one")), p2 = try plain.entry(try plain.lookup(path: "two"))
        XCTAssertNotEqual(p1.defaultStream.dataOffset, p2.defaultStream.dataOffset)
        XCTAssertEqual(plainSummary.deduplicatedBytes, 0)
        XCTAssertEqual(try WriterTestSupport.content(plain, p2.defaultStream, fileID: 0), data)
    }

    func testEntrySize128() throws {
        try WriterTestSupport.write(src + "/a", Array("a".utf8))
        try WriterTestSupport.mkdir(src + "/d")
        let (image, _) = try create { $0.entrySize = 128 }
        XCTAssertEqual(image.tables.count, 1)
        XCTAssertEqual(image.tables[0].entrySize, 128)
        XCTAssertEqual(image.tables[0].validCount, 3)
        let (region, offset) = CimFormat.split(regionOffset: image.tables[0].offset)
        let raw = try image.regions[Int(region)].read(at: offset, length: 3 * 128)
        for slot in 0..<3 { XCTAssertEqual(Array(raw[(slot * 128 + 96)..<(slot * 128 + 128)]), [UInt8](repeating: 0, count: 32)) }
        XCTAssertEqual(try WriterTestSupport.content(image, try image.entry(try image.lookup(path: "a")).defaultStream, fileID: 0), Array("a".utf8))
        XCTAssertTrue(try image.entry(try image.lookup(path: "d")).isDirectory)
        XCTAssertThrowsError(try create("bad.cim") { $0.entrySize = 100 }) { error in
            guard case CimError.invalidInput = error else { return XCTFail("\(error)") }
        }
    }

    func testMoreThan1024Files() throws {
        for i in 0..<2500 { try WriterTestSupport.write(src + "/file\(i)", Array("content \(i)".utf8)) }
        let (image, summary) = try create()
        XCTAssertEqual(summary.fileCount, 2501)
        XCTAssertEqual(image.tables.count, 3)
        XCTAssertEqual(image.tables.map(\.validCount), [1024, 1024, 453])
        for i in stride(from: 0, to: 2500, by: 97) {
            let id = try image.lookup(path: "FILE\(i)")
            XCTAssertEqual(try WriterTestSupport.content(image, try image.entry(id).defaultStream, fileID: id), Array("content \(i)".utf8))
        }
        XCTAssertEqual(try image.children(of: image.rootID).count, 2500)
    }

    func testPEImageStreams() throws {
        let exe = pattern(20_000, seed: 5), dll = pattern(3000, seed: 6), big = pattern(1_000_000, seed: 7)
        try WriterTestSupport.mkdir(src + "/bin")
        try WriterTestSupport.write(src + "/bin/app.exe", exe)
        try WriterTestSupport.write(src + "/bin/lib.dll", dll)
        try WriterTestSupport.write(src + "/bin/big.sys", big)
        try WriterTestSupport.write(src + "/plain.txt", exe)
        let (image, summary) = try create {
            $0.peImagePaths = ["bin/app.exe"]
            $0.peImagePredicate = { $0.hasSuffix(".dll") || $0.hasSuffix(".sys") }
        }
        XCTAssertEqual(summary.peImageFiles, 3)
        for (path, data) in [("bin/app.exe", exe), ("bin/lib.dll", dll), ("bin/big.sys", big)] {
            let id = try image.lookup(path: path)
            let stream = try image.entry(id).defaultStream
            XCTAssertEqual(stream.type, .peImage, path)
            XCTAssertEqual(stream.length, UInt64(data.count))
            XCTAssertEqual(try WriterTestSupport.content(image, stream, fileID: id), data, path)
            // Read through odd offsets too, across segment boundaries.
            XCTAssertEqual(try image.read(stream, at: 4000, length: 9000, fileID: id), Array(data[min(4000, data.count)..<min(13_000, data.count)]))
        }
        let exeStream = try image.entry(try image.lookup(path: "bin/app.exe")).defaultStream
        XCTAssertEqual(try image.layout(of: exeStream).count, 3)  // three segments, deltas 0, 4096, 8192
        let plain = try image.entry(try image.lookup(path: "plain.txt")).defaultStream
        XCTAssertEqual(plain.type, .data)
        XCTAssertEqual(try WriterTestSupport.content(image, plain, fileID: 0), exe)
    }

    func testForkReusesParentData() throws {
        let shared = pattern(50_000, seed: 11), onlyBase = pattern(7000, seed: 12), onlyChild = pattern(9000, seed: 13)
        try WriterTestSupport.write(src + "/shared", shared)
        try WriterTestSupport.write(src + "/gone", onlyBase)
        let (base, baseSummary) = try create("base.cim")
        try WriterTestSupport.removeTree(src)
        try WriterTestSupport.mkdir(src)
        try WriterTestSupport.write(src + "/shared-renamed", shared)
        try WriterTestSupport.write(src + "/new", onlyChild)
        let (child, childSummary) = try create("child.cim") { $0.parentImagePath = self.out + "/base.cim" }
        XCTAssertEqual(child.parentRegionSets, [base.regionSet])
        XCTAssertEqual(child.regions.count, base.regions.count + childSummary.regionFiles.count)
        XCTAssertEqual(childSummary.deduplicatedBytes, 50_000)
        let id = try child.lookup(path: "shared-renamed")
        let stream = try child.entry(id).defaultStream
        XCTAssertLessThan(Int(CimFormat.split(regionOffset: stream.dataOffset).region), base.regions.count, "data must live in the parent's regions")
        XCTAssertEqual(try WriterTestSupport.content(child, stream, fileID: id), shared)
        let newID = try child.lookup(path: "new")
        let newStream = try child.entry(newID).defaultStream
        XCTAssertGreaterThanOrEqual(Int(CimFormat.split(regionOffset: newStream.dataOffset).region), base.regions.count)
        XCTAssertEqual(try WriterTestSupport.content(child, newStream, fileID: newID), onlyChild)
        XCTAssertThrowsError(try child.lookup(path: "gone"))
        XCTAssertEqual(baseSummary.parentRegionCount, 0)

        // A grandchild lists both sets, oldest first, and still finds the base's data.
        try WriterTestSupport.write(src + "/third", pattern(100, seed: 14))
        let (grandchild, _) = try create("grandchild.cim") { $0.parentImagePath = self.out + "/child.cim" }
        XCTAssertEqual(grandchild.parentRegionSets, [base.regionSet, child.regionSet])
        let gid = try grandchild.lookup(path: "shared-renamed")
        let gstream = try grandchild.entry(gid).defaultStream
        XCTAssertEqual(gstream.dataOffset, stream.dataOffset)
        XCTAssertEqual(try WriterTestSupport.content(grandchild, gstream, fileID: gid), shared)
        XCTAssertEqual(try WriterTestSupport.content(grandchild, try grandchild.entry(try grandchild.lookup(path: "new")).defaultStream, fileID: 0), onlyChild)

        // A parent in another directory is refused.
        let elsewhere = work + "/elsewhere"
        try WriterTestSupport.mkdir(elsewhere)
        var options = CimWriterOptions()
        options.parentImagePath = out + "/base.cim"
        XCTAssertThrowsError(try CimWriter().createImage(from: src, imagePath: elsewhere + "/x.cim", options: options))
        XCTAssertEqual(try WriterTestSupport.listDirectory(elsewhere), [])
    }

    func testFormatVersions() throws {
        try WriterTestSupport.write(src + "/a", Array("version".utf8))
        for version: UInt32 in [2, 3] {
            let (image, summary) = try create("v\(version).cim") { $0.formatVersion = version }
            XCTAssertEqual(image.versionMajor, version)
            XCTAssertEqual(image.versionMinor, 0)
            for region in summary.regionFiles + summary.objectIDFiles {
                XCTAssertEqual(try WriterTestSupport.readFile(region)[16], UInt8(version))
            }
            let id = try image.lookup(path: "a")
            XCTAssertEqual(try WriterTestSupport.content(image, try image.entry(id).defaultStream, fileID: id), Array("version".utf8))
        }
        XCTAssertThrowsError(try create("v4.cim") { $0.formatVersion = 4 })
    }

    func testNameOrderAndCaseConflicts() throws {
        let names = ["b", "A", "a1", "Zeta", "éclair", "Ω", "日本", "😀", "\u{E000}", "_x", "~"]
        for name in names { try WriterTestSupport.write(src + "/" + name, Array(name.utf8)) }
        let (image, _) = try create()
        let stored = try image.children(of: image.rootID).map(\.nameUnits)
        let expected = names.map { Array($0.utf16) }.sorted { WriterUpcaseTable.less($0, $1) }
        XCTAssertEqual(stored, expected)
        // Surrogates (U+D83D…) sort before U+E000 in code-unit order.
        XCTAssertLessThan(stored.firstIndex(of: Array("😀".utf16)) ?? 99, stored.firstIndex(of: Array("\u{E000}".utf16)) ?? 0)
        for name in names {
            let id = try image.lookup(path: name.uppercased())
            XCTAssertEqual(try WriterTestSupport.content(image, try image.entry(id).defaultStream, fileID: id), Array(name.utf8))
        }
        // Upcase table: ASCII, Latin-1, Greek; ß has no single-unit uppercase; surrogates map to themselves.
        let table = WriterUpcaseTable.table
        XCTAssertEqual(table[0x61], 0x41)
        XCTAssertEqual(table[0xE9], 0xC9)
        XCTAssertEqual(table[0x3C9], 0x3A9)
        XCTAssertEqual(table[0xDF], 0xDF)
        XCTAssertEqual(table[0xD83D], 0xD83D)
        XCTAssertEqual(try image.upcase.upcase([0x61, 0xE9]), [0x41, 0xC9])

        try WriterTestSupport.write(src + "/ÉCLAIR", [])
        XCTAssertThrowsError(try create("conflict.cim")) { error in
            guard case CimError.invalidInput(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("differ only in case"), message)
        }
        XCTAssertFalse(try WriterTestSupport.listDirectory(out).contains("conflict.cim"))
    }
}
