import Crypto
import Foundation
import TestFixtures
import XCTest
@testable import CimFS

/// The reader on an image made by Windows (`Tests/Fixtures/real/putty`):
/// format 1.0 in every header, 88-byte file entries, region headers with
/// index 0, and header bytes Windows fills with values nobody explained.
final class WindowsImageTests: XCTestCase {
    static let packageDirectory = "\\msix\\putty_1.0.1.0_x64__ynj0a7qyfqv8c"

    func putty() throws -> ImageFixture { try ImageFixture(folder: "real/putty", image: "putty") }

    func testOpensAsFormat1WithEightyEightByteEntries() throws {
        let image = try CimImage(path: try FixtureLocator.image("real/putty/putty.cim"))
        XCTAssertEqual(image.versionMajor, 1)
        XCTAssertEqual(image.versionMinor, 0)
        XCTAssertEqual(image.tables.map(\.entrySize), [88])
        XCTAssertEqual(image.regions.count, 3)
        for region in image.regions {
            // The header says index 0 for every region; the file name's n is what counts.
            XCTAssertEqual(try region.read(at: 32, length: 2), [0, 0], region.path)
        }
        let root = try image.entry(image.rootID)
        XCTAssertNil(root.parentFileID)
        XCTAssertNil(root.baseRegionIndex)
        let licence = try image.lookup(path: Self.packageDirectory + "\\LICENCE")
        var content: [UInt8] = []
        try image.forEachChunk(of: try image.entry(licence).defaultStream, fileID: licence) { content += $0 }
        XCTAssertTrue(String(decoding: content, as: UTF8.self).hasPrefix("PuTTY is copyright"), String(decoding: content.prefix(40), as: UTF8.self))
        XCTAssertEqual(try image.lookup(path: "/MSIX/PUTTY_1.0.1.0_X64__YNJ0A7QYFQV8C/licence"), licence)
    }

    func testVerifyIsCleanAndChecksEveryObject() throws {
        let image = try CimImage(path: try FixtureLocator.image("real/putty/putty.cim"))
        let report = image.verify()
        XCTAssertEqual(report.problems, [])
        XCTAssertEqual(report.notes, [])
        // 23 + 15 + 1 entries in the three object-id files, each object digested.
        XCTAssertEqual(report.objectsChecked, 39)
        XCTAssertEqual(report.filesChecked, Int(image.maxFileID))
    }

    /// Byte 13 of the common header and the u64 at 24 (Windows: 1 or 2, and 7)
    /// are not understood; any value is accepted.
    func testUnexplainedHeaderFieldsAreIgnored() throws {
        let f = try putty()
        try f.patch(f.cimPath, at: 13, with: [0xFF])
        try f.patch(f.cimPath, at: 24, u64: 0xDEAD_BEEF_0000_0001)
        for region in 0..<3 { try f.patch(f.regionPath(region), at: 13, with: [0x5A]) }
        let image = try CimImage(path: f.cimPath)
        XCTAssertEqual(image.verify().problems, [])
    }

    /// File-table directory entry of the first table (in region 0).
    func tableDirectoryEntryPosition(_ f: ImageFixture) throws -> Int {
        let head = try f.bytes(f.cimPath)
        let fsOffset = head[56..<64].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let region0 = try f.bytes(f.regionPath(0))
        let fs = f.position(fsOffset)
        let directory = region0[(fs + 8)..<(fs + 16)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        XCTAssertEqual(CimFormat.split(regionOffset: directory).region, 0)
        return f.position(directory)
    }

    func testEntryShorterThanVersion1EntryIsCorrupt() throws {
        let f = try putty()
        try f.patch(f.regionPath(0), at: try tableDirectoryEntryPosition(f) + 10, u16: 80)
        XCTAssertThrowsError(try CimImage(path: f.cimPath)) { error in
            guard case CimError.invalidField(let path, _, "file entry size", 80, let expected) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, f.regionPath(0))
            XCTAssertTrue(expected.contains("at least 88") && expected.contains("1.x"), expected)
        }
    }

    /// The same 88-byte entries under a 2.0 header are too short for that version's parent FileID.
    func testEightyEightByteEntriesInVersion2AreCorrupt() throws {
        let f = try putty()
        try f.patch(f.cimPath, at: 16, u32: 2)
        XCTAssertThrowsError(try CimImage(path: f.cimPath)) { error in
            guard case CimError.invalidField(_, _, "file entry size", 88, let expected) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(expected.contains("at least 96") && expected.contains("2.x"), expected)
            XCTAssertTrue("\(error)".contains("file entry size is 88, expected at least 96"), "\(error)")
        }
    }

    func testUnknownVersionNamesTheVersionsKnown() throws {
        let f = try putty()
        try f.patch(f.cimPath, at: 16, u32: 4)
        XCTAssertThrowsError(try CimImage(path: f.cimPath)) { error in
            XCTAssertEqual("\(error)", "\(f.cimPath): unsupported CIM format version 4.0 (this reader knows 1.x, 2.x and 3.x)")
        }
        try f.patch(f.cimPath, at: 16, u32: 0)
        XCTAssertThrowsError(try CimImage(path: f.cimPath)) { error in
            guard case CimError.unsupportedVersion(_, 0, 0) = error else { return XCTFail("\(error)") }
        }
    }

    /// Random damage to the Windows image never crashes or hangs the reader, and verify notices it.
    func testRandomByteFlipsAreSurvivedAndDetected() throws {
        let f = try putty()
        let image = try CimImage(path: f.cimPath)
        let objectIDs = image.regions.map { image.objectIDPath(of: $0) }
        var rng = MutationTests.SplitMix64(state: 0x9077_7100)
        var detected = 0, rounds = 0
        for target in [f.cimPath] + image.regions.map(\.path) + objectIDs {
            let original = try f.bytes(target)
            for _ in 0..<12 {
                var bytes = original
                let position = Int(rng.next() % UInt64(bytes.count))
                bytes[position] ^= UInt8(truncatingIfNeeded: 1 + rng.next() % 255)
                try f.write(target, bytes)
                rounds += 1
                if let damaged = try? CimImage(path: f.cimPath) {
                    if !damaged.verify().isClean { detected += 1 }
                } else {
                    detected += 1
                }
            }
            try f.write(target, original)
        }
        // Not every flip can be seen (padding between aligned objects, reserved fields), but most are.
        XCTAssertGreaterThan(detected, rounds / 2, "\(detected) of \(rounds) flips detected")
    }
}
