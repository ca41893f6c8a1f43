import Crypto
import Foundation
import XCTest
@testable import CimFS

/// `verify` proves the bytes: every object-id entry must lie inside its
/// region file, the entries must be sorted by (length, digest), and each
/// digest must be SHA-512/24 of the object (inline for ≤ 24 bytes). Each
/// kind of damage is its own test, on the image made by Windows.
final class ObjectIDVerifyTests: XCTestCase {
    func putty() throws -> ImageFixture { try ImageFixture(folder: "real/putty", image: "putty") }

    func objectIDPath(_ f: ImageFixture, _ index: Int) -> String {
        f.directory.appendingPathComponent(CimFormat.objectIDFileName(set: f.regionSet, index: index)).path
    }

    func problems(_ f: ImageFixture) throws -> [String] { try CimImage(path: f.cimPath).verify().problems }

    func testFlippedByteInFileDataIsAProblem() throws {
        let f = try putty()
        let image = try CimImage(path: f.cimPath)
        let id = try image.lookup(path: WindowsImageTests.packageDirectory + "\\putty.exe")
        let stream = try image.entry(id).defaultStream
        XCTAssertEqual(stream.type, .peImage)
        // File byte 54321 of putty.exe, wherever the PE layout put it.
        var fileOffset: UInt64 = 0
        var found: (region: Int, position: UInt64)?
        for run in try image.layout(of: stream, fileID: id) {
            if case .region(let region, _, let runOffset, let runLength) = run, fileOffset + runLength > 54_321, found == nil {
                found = (region, runOffset + 54_321 - fileOffset)
            }
            fileOffset += run.length
        }
        let (region, position) = try XCTUnwrap(found)
        let original = try f.bytes(f.regionPath(region))[Int(position)]
        try f.patch(f.regionPath(region), at: Int(position), with: [original ^ 0x01])
        let file = try CimObjectIDFile(path: objectIDPath(f, region))
        let index = try XCTUnwrap(file.entries.firstIndex { $0.offset <= position && position < $0.offset + $0.length })
        let object = file.entries[index]
        // The reader itself cannot tell (the stream is still readable); the digest can.
        XCTAssertEqual(try problems(f), [
            "\(objectIDPath(f, region)): entry \(index) (at offset \(file.fileOffset(ofEntry: index))): object of \(object.length) bytes at offset \(object.offset) of \(f.regionPath(region)): digest does not match the object's bytes",
        ])
    }

    func testDamagedDigestIsAProblem() throws {
        let f = try putty()
        let path = objectIDPath(f, 0)
        let file = try CimObjectIDFile(path: path)
        let entry = file.entries[5]
        XCTAssertGreaterThan(entry.length, 24, "entry 5 is a hashed object")
        let at = Int(file.fileOffset(ofEntry: 5)) + 8 + 23
        try f.patch(path, at: at, with: [try f.bytes(path)[at] ^ 0x80])
        XCTAssertEqual(try problems(f), [
            "\(path): entry 5 (at offset \(file.fileOffset(ofEntry: 5))): object of \(entry.length) bytes at offset \(entry.offset) of \(f.regionPath(0)): digest does not match the object's bytes",
        ])
    }

    func testDamagedInlineDigestIsAProblem() throws {
        let f = try putty()
        let path = objectIDPath(f, 0)
        let file = try CimObjectIDFile(path: path)
        // Windows stores objects of at most 24 bytes inline: the digest field is the object.
        let index = try XCTUnwrap(file.entries.firstIndex { $0.length <= 24 })
        let entry = file.entries[index]
        let object = try f.bytes(f.regionPath(0))[Int(entry.offset)..<Int(entry.offset + entry.length)]
        XCTAssertEqual(entry.digest, Array(object) + [UInt8](repeating: 0, count: 24 - object.count))
        let at = Int(file.fileOffset(ofEntry: index)) + 8
        try f.patch(path, at: at, with: [entry.digest[0] ^ 0xFF])
        XCTAssertEqual(try problems(f), [
            "\(path): entry \(index) (at offset \(file.fileOffset(ofEntry: index))): object of \(entry.length) bytes at offset \(entry.offset) of \(f.regionPath(0)): digest does not match the object's bytes",
        ])
    }

    func testEntryOutsideItsRegionFileIsAProblem() throws {
        let f = try putty()
        let path = objectIDPath(f, 1)
        let file = try CimObjectIDFile(path: path)
        let regionSize = try f.bytes(f.regionPath(1)).count
        try f.patch(path, at: Int(file.fileOffset(ofEntry: 2)) + 32, u64: UInt64(regionSize) - 10)
        let found = try problems(f)
        XCTAssertEqual(found.count, 1, "\(found)")
        XCTAssertTrue(found.first?.hasPrefix("\(path): entry 2 ") == true, "\(found)")
        XCTAssertTrue(found.first?.hasSuffix("lies outside the region file (\(regionSize) bytes)") == true, "\(found)")
    }

    func testEntryInTheRegionHeaderIsAProblem() throws {
        let f = try putty()
        let path = objectIDPath(f, 0)
        try f.patch(path, at: Int(try CimObjectIDFile(path: path).fileOffset(ofEntry: 0)) + 32, u64: 8)
        let found = try problems(f)
        XCTAssertTrue(found.contains { $0.hasPrefix("\(path): entry 0 ") && $0.hasSuffix("lies in the 40-byte region header") }, "\(found)")
    }

    func testChangedObjectLengthIsAProblem() throws {
        let f = try putty()
        let path = objectIDPath(f, 1)
        let file = try CimObjectIDFile(path: path)
        let last = file.entries.count - 1
        try f.patch(path, at: Int(file.fileOffset(ofEntry: last)), u64: file.entries[last].length - 1)
        let found = try problems(f)
        XCTAssertTrue(found.contains { $0.hasPrefix("\(path): entry \(last) ") && $0.contains("object of \(file.entries[last].length - 1) bytes") }, "\(found)")
    }

    func testUnsortedEntriesAreAProblem() throws {
        let f = try putty()
        let path = objectIDPath(f, 0)
        let file = try CimObjectIDFile(path: path)
        XCTAssertNotEqual(file.entries[0].length, file.entries[1].length)
        var bytes = try f.bytes(path)
        let first = Int(file.fileOffset(ofEntry: 0)), second = Int(file.fileOffset(ofEntry: 1))
        let saved = Array(bytes[first..<second])
        bytes.replaceSubrange(first..<second, with: bytes[second..<(second + 40)])
        bytes.replaceSubrange(second..<(second + 40), with: saved)
        try f.write(path, bytes)
        let found = try problems(f)
        XCTAssertEqual(found.count, 1, "\(found)")
        XCTAssertTrue(found.first?.hasPrefix("\(path): entry 1 ") == true && found.first?.hasSuffix("entries are not sorted by (length, digest)") == true, "\(found)")
    }

    func testEntryTablePastTheEndOfTheFileIsAProblem() throws {
        let f = try putty()
        let path = objectIDPath(f, 2)
        try f.patch(path, at: 44, u32: 1000)
        XCTAssertEqual(try problems(f), ["\(path): table of 1000 object-id entries of 40000 bytes at offset 48 lies outside the file (88 bytes)"])
    }

    func testHeaderLengthPastTheTableIsAProblem() throws {
        let f = try putty()
        let path = objectIDPath(f, 1)
        try f.patch(path, at: 8, u32: 49)
        XCTAssertEqual(try problems(f), ["\(path): offset 8: header length is 49, expected 48...48, ending before the entry table"])
    }

    func testRegionTypeDifferentFromTheRegionsIsAProblem() throws {
        let f = try putty()
        let path = objectIDPath(f, 2)
        try f.patch(path, at: 34, with: [1])
        XCTAssertEqual(try problems(f), ["\(path): offset 34: region type is 1, but \(f.regionPath(2)) has type 2"])
    }

    /// An image whose writer used another digest: one note, and no digest compared.
    func testAnotherDigestAlgorithmIsOneNote() throws {
        let f = try putty()
        for index in 0..<3 {
            let path = objectIDPath(f, index)
            let file = try CimObjectIDFile(path: path)
            let region = try f.bytes(f.regionPath(index))
            var entries = file.entries.map { entry -> CimObjectIDFile.Entry in
                var changed = entry
                changed.digest = Array(SHA256.hash(data: region[Int(entry.offset)..<Int(entry.offset + entry.length)]).prefix(24))
                return changed
            }
            entries.sort(by: CimObjectIDFile.precedes)
            var bytes = try f.bytes(path)
            for (i, entry) in entries.enumerated() {
                let at = Int(file.fileOffset(ofEntry: i))
                bytes.replaceSubrange((at + 8)..<(at + 32), with: entry.digest)
                bytes.replaceSubrange(at..<(at + 8), with: withUnsafeBytes(of: entry.length.littleEndian, Array.init))
                bytes.replaceSubrange((at + 32)..<(at + 40), with: withUnsafeBytes(of: entry.offset.littleEndian, Array.init))
            }
            try f.write(path, bytes)
        }
        let report = try CimImage(path: f.cimPath).verify()
        XCTAssertEqual(report.problems, [])
        XCTAssertEqual(report.notes.count, 1, "\(report.notes)")
        XCTAssertTrue(report.notes.first?.contains("another digest, so 39 digests were not checked") == true, "\(report.notes)")
        XCTAssertEqual(report.objectsChecked, 0)
    }

    func testMissingObjectIDFileIsANote() throws {
        let f = try putty()
        try FileManager.default.removeItem(atPath: objectIDPath(f, 1))
        let report = try CimImage(path: f.cimPath).verify()
        XCTAssertEqual(report.problems, [])
        XCTAssertEqual(report.notes, ["\(objectIDPath(f, 1)): missing, so the bytes of \(f.regionPath(1)) are not checked against digests"])
        XCTAssertEqual(report.objectsChecked, 24)
    }

    /// Every object of the image is covered: a flip inside any one of them is found.
    func testAFlipInsideEveryObjectIsFound() throws {
        let f = try putty()
        for index in 0..<3 {
            let regionPath = f.regionPath(index)
            let original = try f.bytes(regionPath)
            let file = try CimObjectIDFile(path: objectIDPath(f, index))
            for (entryIndex, entry) in file.entries.enumerated() {
                var bytes = original
                bytes[Int(entry.offset + entry.length / 2)] ^= 0x10
                try f.write(regionPath, bytes)
                let found = (try? CimImage(path: f.cimPath).verify().problems) ?? ["does not open"]
                XCTAssertFalse(found.isEmpty, "flip in object \(entryIndex) of \(regionPath) not found")
            }
            try f.write(regionPath, original)
        }
    }
}
