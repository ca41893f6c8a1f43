import Foundation
import XCTest
@testable import CimFS
@testable import VolumeSynth

/// Each writer feature, and a mixed tree, through the translator: e2fsck
/// clean, and the mounted tree identical to the image.
final class TranslatorWriterFeatureTests: XCTestCase {
    var work = ""

    override func setUpWithError() throws {
        work = try MountedVolumeChecker.temporaryDirectory("translator")
    }

    override func tearDownWithError() throws {
        // FileManager.removeItem is slow on trees of thousands of files.
        _ = try? MountedVolumeChecker.run("/bin/rm", ["-rf", work])
    }

    func mixedImage(_ options: CimWriterOptions, name: String = "layer") throws -> CimImage {
        let tree = try TranslatorTreeBuilder(work + "/tree-" + name)
        try tree.mixed()
        return try tree.write(to: work + "/images", name: name, options: options)
    }

    func testMixedTree() throws {
        let image = try mixedImage(CimWriterOptions())
        let compared = try MountedVolumeChecker.check(image: image)
        if MountedVolumeChecker.canMount { XCTAssertGreaterThan(compared, 25) }
    }

    func testSeveralDataRegionsAndNoSmallData() throws {
        var options = CimWriterOptions()
        options.dataRegions = 3
        options.smallDataThreshold = 0
        let image = try mixedImage(options)
        XCTAssertGreaterThanOrEqual(image.regions.count, 4)
        try MountedVolumeChecker.check(image: image)
    }

    func testDeduplicatedDataAppearsInEachFile() throws {
        let image = try mixedImage(CimWriterOptions())
        let a = try image.entry(try image.lookup(path: "\\Windows\\System32\\drivers\\a.sys")).defaultStream
        let b = try image.entry(try image.lookup(path: "\\Windows\\System32\\drivers\\same-as-a.sys")).defaultStream
        XCTAssertEqual(a.dataOffset, b.dataOffset, "the writer stores identical data once")
        try MountedVolumeChecker.check(image: image)
    }

    func testEntrySize128AndVersion3() throws {
        var options = CimWriterOptions()
        options.entrySize = 128
        options.formatVersion = 3
        let image = try mixedImage(options)
        XCTAssertEqual(image.versionMajor, 3)
        XCTAssertEqual(image.tables.first?.entrySize, 128)
        try MountedVolumeChecker.check(image: image)
    }

    func testPEImageStreamsReadAsPlainBytes() throws {
        var options = CimWriterOptions()
        options.peImagePaths = ["Windows/System32/size65537.bin", "Windows/System32/size1048576.bin"]
        let image = try mixedImage(options)
        let stream = try image.entry(try image.lookup(path: "\\Windows\\System32\\size65537.bin")).defaultStream
        XCTAssertEqual(stream.type, .peImage)
        try MountedVolumeChecker.check(image: image)
    }

    func testForkedImage() throws {
        let base = try mixedImage(CimWriterOptions(), name: "base")
        let child = try TranslatorTreeBuilder(work + "/tree-child")
        try child.mixed()
        try child.file("added-in-child.txt", Array("child".utf8))
        var options = CimWriterOptions()
        options.parentImagePath = base.path
        let image = try child.write(to: work + "/images", name: "child", options: options)
        XCTAssertEqual(image.parentRegionSets, [base.regionSet])
        try MountedVolumeChecker.check(image: image)
    }

    func testManyFilesInSeveralTablesAndLargeDirectory() throws {
        let tree = try TranslatorTreeBuilder(work + "/tree-many")
        try tree.directory("big")
        for i in 0..<5000 { try tree.file("big/file-\(i).txt", Array("\(i)".utf8)) }
        let image = try tree.write(to: work + "/images", name: "many")
        XCTAssertGreaterThan(image.tables.count, 4)
        let compared = try MountedVolumeChecker.check(image: image)
        if MountedVolumeChecker.canMount { XCTAssertEqual(compared, 5002) }
    }

    func testDeepTree() throws {
        let tree = try TranslatorTreeBuilder(work + "/tree-deep")
        let path = (0..<200).map { "d\($0 % 10)" }.joined(separator: "/")
        try tree.directory(path)
        try tree.file(path + "/bottom.txt", Array("deep".utf8))
        try tree.symlink("/d0", path + "/to-top")
        let image = try tree.write(to: work + "/images", name: "deep")
        let compared = try MountedVolumeChecker.check(image: image)
        if MountedVolumeChecker.canMount { XCTAssertEqual(compared, 203) }
        let source = try CimTreeSource(image: image)
        let link = try image.lookup(path: path + "/to-top")
        XCTAssertEqual(String(decoding: try source.symlinkTarget(of: link), as: UTF8.self),
                       String(repeating: "../", count: 200) + "d0")
    }

    func testOneTebibyteSparseFile() throws {
        let tree = try TranslatorTreeBuilder(work + "/tree-huge")
        try tree.sparse("huge.bin", size: 1 << 40)
        try tree.file("small.txt", Array("x".utf8))
        let image = try tree.write(to: work + "/images", name: "huge")
        let stream = try image.entry(try image.lookup(path: "\\huge.bin")).defaultStream
        XCTAssertTrue(stream.isSparse)
        XCTAssertEqual(stream.length, 1 << 40)
        try MountedVolumeChecker.check(image: image)
    }

    /// Reading the volume in random order and odd sizes gives the bytes of one sequential pass.
    func testRandomOrderReadsMatchSequentialPass() throws {
        let image = try mixedImage(CimWriterOptions())
        let (volume, _) = try CimVolumeBuilder.ext4(image: image, guid: .zero, mapping: MappingOptions())
        let sequential = try volume.read(offset: 0, length: Int(volume.size))
        var state: UInt64 = 0x1234_5678
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 11
        }
        for _ in 0..<3000 {
            let offset = next() % volume.size
            let length = Int(min(next() % 70_001 + 1, volume.size - offset))
            let bytes = try volume.read(offset: offset, length: length)
            if bytes[...] != sequential[Int(offset)..<(Int(offset) + length)] {
                XCTFail("bytes differ at \(offset)+\(length)")
                break
            }
        }
        // Segments cover the volume exactly and agree with the bytes.
        var position: UInt64 = 0
        for segment in try volume.segments(offset: 0, length: volume.size) {
            if case .zeros(let length) = segment {
                XCTAssertTrue(sequential[Int(position)..<Int(position + length)].allSatisfy { $0 == 0 }, "zeros segment at \(position)")
            }
            position += segment.length
        }
        XCTAssertEqual(position, volume.size)
        XCTAssertThrowsError(try volume.read(offset: volume.size - 1, length: 2))
    }
}
