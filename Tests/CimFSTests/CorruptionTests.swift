import Foundation
import XCTest
@testable import CimFS

/// Each kind of damage gives its own typed error naming the file and offset.
final class CorruptionTests: XCTestCase {
    func open(_ fixture: ImageFixture) throws -> CimImage { try CimImage(path: fixture.cimPath) }

    func assertThrows(_ expression: @autoclosure () throws -> Any, file: StaticString = #filePath, line: UInt = #line,
                      _ check: (CimError) -> Bool) {
        do {
            _ = try expression()
            XCTFail("expected an error", file: file, line: line)
        } catch let error as CimError {
            XCTAssertTrue(check(error), "unexpected error: \(error)", file: file, line: line)
            XCTAssertFalse(error.description.isEmpty)
        } catch {
            XCTFail("untyped error \(error)", file: file, line: line)
        }
    }

    func testWrongMagic() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        try f.patch(f.cimPath, at: 0, with: Array("notacim!".utf8))
        assertThrows(try self.open(f)) { if case .badMagic(let path, _) = $0 { return path == f.cimPath } else { return false } }
    }

    func testUnsupportedVersion() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        try f.patch(f.cimPath, at: 16, u32: 4)
        assertThrows(try self.open(f)) { if case .unsupportedVersion(_, 4, 0) = $0 { return true } else { return false } }
        XCTAssertTrue(CimError.unsupportedVersion(path: "x", major: 4, minor: 0).description.contains("4.0"))
    }

    func testVersion3IsAccepted() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        try f.patch(f.cimPath, at: 16, u32: 3)
        XCTAssertEqual(try open(f).versionMajor, 3)
    }

    func testWrongFileType() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        try f.patch(f.cimPath, at: 12, with: [1])
        assertThrows(try self.open(f)) { if case .invalidField(_, 12, "file type", 1, _) = $0 { return true } else { return false } }
    }

    func testTruncatedCimFile() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        try f.truncate(f.cimPath, to: 40)
        assertThrows(try self.open(f)) { if case .truncated(let path, 40, 32) = $0 { return path == f.cimPath } else { return false } }
    }

    func testHeaderLengthOutOfRange() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        try f.patch(f.cimPath, at: 8, u32: 9999)
        assertThrows(try self.open(f)) { if case .invalidField(_, 8, "header length", 9999, _) = $0 { return true } else { return false } }
    }

    func testParentCountPastEndOfFile() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        try f.patch(f.cimPath, at: 70, u16: 0xFFFF)
        assertThrows(try self.open(f)) { if case .invalidField(_, 70, "parent count", 0xFFFF, _) = $0 { return true } else { return false } }
    }

    func testRegionCountZero() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        try f.patch(f.cimPath, at: 48, u16: 0)
        assertThrows(try self.open(f)) { if case .invalidField(_, _, "total region count", 0, _) = $0 { return true } else { return false } }
    }

    func testMissingRegionFile() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        try FileManager.default.removeItem(atPath: f.regionPath(1))
        assertThrows(try self.open(f)) { $0 == .missingFile(path: f.regionPath(1)) }
    }

    func testTruncatedRegionFile() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        try f.truncate(f.regionPath(0), to: 1000)
        assertThrows(try self.open(f)) {
            if case .outOfBounds(let path, _, _, 1000, _) = $0 { return path == f.regionPath(0) } else { return false }
        }
    }

    /// A region is the one its file name's `n` says: Windows writes index 0 in
    /// every region header, so the field is not checked (issue 8).
    func testRegionHeaderIndexIsIgnored() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        try f.patch(f.regionPath(1), at: 32, u16: 7)
        let image = try open(f)
        XCTAssertEqual(image.regions[1].path, f.regionPath(1))
        XCTAssertEqual(image.verify().problems, [])
    }

    func testFilesystemOffsetPastEndOfFile() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        try f.patch(f.cimPath, at: 56, u64: CimFormat.regionOffset(region: 0, offset: 1 << 40))
        assertThrows(try self.open(f)) { if case .outOfBounds(_, 1 << 40, 24, _, "filesystem object") = $0 { return true } else { return false } }
    }

    func testFilesystemOffsetBadRegionIndex() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        try f.patch(f.cimPath, at: 56, u64: CimFormat.regionOffset(region: 200, offset: 64))
        assertThrows(try self.open(f)) { if case .invalidField(_, 56, _, 200, _) = $0 { return true } else { return false } }
    }

    /// Locates the filesystem object of the fixture (in region 0).
    func filesystemObjectPosition(_ f: ImageFixture) throws -> Int {
        let head = try f.bytes(f.cimPath)
        var value: UInt64 = 0
        for i in 0..<8 { value |= UInt64(head[56 + i]) << (8 * i) }
        XCTAssertEqual(CimFormat.split(regionOffset: value).region, 0)
        return f.position(value)
    }

    func testFileTableCountOverflow() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        let fs = try filesystemObjectPosition(f)
        try f.patch(f.regionPath(0), at: fs + 16, u32: 0xFFFF_FFFF)
        assertThrows(try self.open(f)) { if case .invalidField(_, _, "file table count", 0xFFFF_FFFF, _) = $0 { return true } else { return false } }
    }

    func testEntrySizeBelow96() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        let image = try open(f)
        let fs = try filesystemObjectPosition(f)
        let region0 = try f.bytes(f.regionPath(0))
        var directory: UInt64 = 0
        for i in 0..<8 { directory |= UInt64(region0[fs + 8 + i]) << (8 * i) }
        XCTAssertEqual(image.tables.count, 1)
        try f.patch(f.regionPath(0), at: f.position(directory) + 10, u16: 64)
        assertThrows(try self.open(f)) { if case .invalidField(_, _, "file entry size", 64, _) = $0 { return true } else { return false } }
    }

    func testValidCountAbove1024() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        let fs = try filesystemObjectPosition(f)
        let region0 = try f.bytes(f.regionPath(0))
        var directory: UInt64 = 0
        for i in 0..<8 { directory |= UInt64(region0[fs + 8 + i]) << (8 * i) }
        try f.patch(f.regionPath(0), at: f.position(directory) + 8, u16: 5000)
        assertThrows(try self.open(f)) { if case .invalidField(_, _, "valid file count", 5000, _) = $0 { return true } else { return false } }
    }

    func testRootFileIDOutOfRange() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        let fs = try filesystemObjectPosition(f)
        try f.patch(f.regionPath(0), at: fs + 20, u32: 99999)
        assertThrows(try self.open(f)) { if case .invalidFileID(_, 99999, _) = $0 { return true } else { return false } }
    }

    /// Position in region 0 of the root directory's link table.
    func rootLinkTable(_ f: ImageFixture) throws -> (position: Int, length: Int) {
        let image = try open(f)
        let stream = try image.entry(image.rootID).defaultStream
        XCTAssertEqual(CimFormat.split(regionOffset: stream.dataOffset).region, 0)
        return (f.position(stream.dataOffset), Int(stream.length))
    }

    func testLinkCountOverflow() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        let table = try rootLinkTable(f)
        try f.patch(f.regionPath(0), at: table.position + 4, u32: 0x4000_0000)
        let image = try open(f)
        assertThrows(try image.children(of: image.rootID)) { if case .invalidField(_, _, "link count", 0x4000_0000, _) = $0 { return true } else { return false } }
        XCTAssertFalse(image.verify().isClean)
    }

    func testLinkTableLengthLargerThanStream() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        let table = try rootLinkTable(f)
        try f.patch(f.regionPath(0), at: table.position, u32: UInt32(table.length + 100))
        let image = try open(f)
        assertThrows(try image.children(of: image.rootID)) { if case .corrupt = $0 { return true } else { return false } }
    }

    func testNameOffsetOutsideTable() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        let table = try rootLinkTable(f)
        let region0 = try f.bytes(f.regionPath(0))
        let count = Int(region0[table.position + 4])
        // The first name offset follows the FileID array.
        try f.patch(f.regionPath(0), at: table.position + 8 + 4 * count, u32: 0xFFFF)
        let image = try open(f)
        assertThrows(try image.children(of: image.rootID)) { if case .corrupt(_, _, let problem) = $0 { return problem.contains("name offset") } else { return false } }
    }

    func testChildFileIDOutOfRange() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        let table = try rootLinkTable(f)
        try f.patch(f.regionPath(0), at: table.position + 8, u32: 77777)
        let image = try open(f)
        assertThrows(try image.children(of: image.rootID)) { if case .invalidFileID(_, 77777, _) = $0 { return true } else { return false } }
        XCTAssertTrue(image.verify().problems.contains { $0.contains("77777") })
    }

    func testUnsortedLinkTableIsReportedAndLookupStillWorks() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        let table = try rootLinkTable(f)
        let before = try open(f)
        let children = try before.children(of: before.rootID)
        XCTAssertGreaterThan(children.count, 2)
        // Swap the first two FileIDs and name offsets: the names are then out of order.
        var region0 = try f.bytes(f.regionPath(0))
        let count = children.count
        let ids = table.position + 8, names = table.position + 8 + 4 * count
        for base in [ids, names] {
            let a = Array(region0[base..<(base + 4)]), b = Array(region0[(base + 4)..<(base + 8)])
            region0.replaceSubrange(base..<(base + 4), with: b)
            region0.replaceSubrange((base + 4)..<(base + 8), with: a)
        }
        try f.write(f.regionPath(0), region0)
        let image = try open(f)
        let report = image.verify()
        XCTAssertTrue(report.problems.contains { $0.contains("not sorted") }, "\(report.problems)")
        // The order never decides whether a name exists.
        for child in children {
            XCTAssertEqual(try image.lookup(child.name, in: image.rootID), child.fileID)
        }
    }

    func testDirectoryCycleIsReportedNotLoopedOn() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        let image = try open(f)
        let docs = try image.lookup(path: "\\docs")
        XCTAssertTrue(try image.entry(docs).isDirectory)
        // Point the first entry of \docs at the root: a cycle.
        let docsStream = try image.entry(docs).defaultStream
        try f.patch(f.regionPath(0), at: f.position(docsStream.dataOffset) + 8, u32: image.rootID)
        let damaged = try open(f)
        assertThrows(try damaged.walk { _, _, _ in }) { if case .corrupt(_, _, let problem) = $0 { return problem.contains("reached twice") } else { return false } }
        XCTAssertTrue(damaged.verify().problems.contains { $0.contains("reached twice") })
    }

    func testStreamPastEndOfRegion() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        let image = try open(f)
        let id = try image.lookup(path: "\\README")
        let entry = try image.entry(id)
        let (region, offset) = CimFormat.split(regionOffset: entry.defaultStream.dataOffset)
        try f.truncate(f.regionPath(Int(region)), to: Int(offset) + 10)
        let damaged = try open(f)
        assertThrows(try damaged.read(entry.defaultStream, at: 0, length: 100, fileID: id)) {
            if case .outOfBounds(_, offset, 550, _, _) = $0 { return true } else { return false }
        }
        XCTAssertFalse(damaged.verify().isClean)
    }

    func testMissingImageAndDirectory() {
        assertThrows(try CimImage(path: "/nonexistent/x.cim")) { $0 == .missingFile(path: "/nonexistent/x.cim") }
        assertThrows(try CimImage(directory: "/nonexistent", name: "x.cim")) { $0 == .missingDirectory(path: "/nonexistent") }
        assertThrows(try CimImage(directory: "/tmp", name: "no-such-image-\(UUID().uuidString)")) { if case .missingFile = $0 { return true } else { return false } }
    }

    func testOpenByDirectoryAndName() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        XCTAssertEqual(try CimImage(directory: f.directory.path, name: "small.cim").rootID, try open(f).rootID)
        XCTAssertEqual(try CimImage(directory: f.directory.path, name: "small").name, "small.cim")
    }
}
