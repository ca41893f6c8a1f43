import Crypto
import Foundation
import TestFixtures
import XCTest
@testable import CimFS

/// The writer's object ids are what Windows writes (SHA-512/24, inline for
/// ≤ 24 bytes, sorted by length then digest), and `--format-version 1`
/// writes the 1.0 layout of the images Windows' tools made.
final class WriterObjectIDTests: XCTestCase {
    var work = ""
    var src = ""
    var out = ""

    override func setUpWithError() throws {
        work = try WriterTestSupport.makeTemporaryDirectory("objectid")
        src = work + "/src"
        out = work + "/out"
        try WriterTestSupport.mkdir(src)
        try WriterTestSupport.mkdir(out)
    }

    override func tearDown() { WriterTestSupport.removeTree(work) }

    func bytes(_ count: Int, seed: UInt8) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) } }

    func create(_ name: String, _ configure: (inout CimWriterOptions) -> Void = { _ in }) throws -> (CimImage, CimWriteSummary) {
        var options = CimWriterOptions()
        configure(&options)
        let summary = try CimWriter().createImage(from: src, imagePath: out + "/" + name, options: options)
        let image = try CimImage(path: out + "/" + name)
        let report = image.verify()
        XCTAssertEqual(report.problems, [], name)
        XCTAssertEqual(report.notes, [], name)
        return (image, summary)
    }

    func testObjectIDsAreSHA512OfTheFirst24BytesInlineAndSorted() throws {
        for (name, size) in [("one", 1), ("exact24", 24), ("just25", 25), ("page", 5000), ("big", 100_000), ("big-copy", 100_000)] {
            try WriterTestSupport.write(src + "/" + name, bytes(size, seed: UInt8(size & 0xFF)))
        }
        for version: UInt32 in [1, 2, 3] {
            let (image, summary) = try create("v\(version).cim") { $0.formatVersion = version }
            var entries = 0
            for (index, path) in summary.objectIDFiles.enumerated() {
                let file = try CimObjectIDFile(path: path)
                XCTAssertEqual(Int(file.headerIndex), index, "object-id headers carry their real index")
                let region = try WriterTestSupport.readFile(summary.regionFiles[index])
                for (i, entry) in file.entries.enumerated() {
                    let object = Array(region[Int(entry.offset)..<Int(entry.offset + entry.length)])
                    let expected = object.count <= 24 ? object + [UInt8](repeating: 0, count: 24 - object.count)
                                                       : Array(SHA512.hash(data: object).prefix(24))
                    XCTAssertEqual(entry.digest, expected, "\(path) entry \(i)")
                    if i > 0 {
                        let previous = file.entries[i - 1]
                        XCTAssertTrue(previous.length < entry.length
                                      || (previous.length == entry.length && !entry.digest.lexicographicallyPrecedes(previous.digest)),
                                      "\(path): entry \(i) sorted by (length, digest)")
                    }
                }
                entries += file.entries.count
            }
            XCTAssertEqual(image.verify().objectsChecked, entries)
            // A second opinion on the digest: coreutils' sha512sum of the source file.
            let sum = try XCTUnwrap(try runSHA512Sum(src + "/big"))
            let data = try CimObjectIDFile(path: summary.objectIDFiles[1]).entries.filter { $0.length == 100_000 }
            XCTAssertEqual(data.count, 1, "the two identical 100000-byte files are one object")
            XCTAssertEqual(data.first.map { $0.digest.map { String(format: "%02x", $0) }.joined() }, String(sum.prefix(48)))
        }
    }

    func runSHA512Sum(_ path: String) throws -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha512sum")
        process.arguments = [path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        return String(decoding: output, as: UTF8.self).split(separator: " ").first.map(String.init)
    }

    func testFormatVersion1WritesThe10Layout() throws {
        try WriterTestSupport.mkdir(src + "/dir")
        try WriterTestSupport.write(src + "/dir/file", bytes(9000, seed: 1))
        try WriterTestSupport.write(src + "/small", bytes(10, seed: 2))
        try WriterTestSupport.write(src + "/empty", [])
        let (image, summary) = try create("v1.cim") { $0.formatVersion = 1 }
        XCTAssertEqual(image.versionMajor, 1)
        XCTAssertEqual(image.tables.map(\.entrySize), [88])
        for path in [summary.imagePath] + summary.regionFiles + summary.objectIDFiles {
            XCTAssertEqual(Array(try WriterTestSupport.readFile(path)[16..<24]), [1, 0, 0, 0, 0, 0, 0, 0], "1.0 in the header of \(path)")
        }
        for path in summary.regionFiles {
            XCTAssertEqual(Array(try WriterTestSupport.readFile(path)[32..<34]), [0, 0], "region index 0 in \(path), as Windows writes it")
        }
        let file = try image.lookup(path: "dir\\file")
        XCTAssertNil(try image.entry(file).parentFileID)
        XCTAssertEqual(try WriterTestSupport.content(image, try image.entry(file).defaultStream, fileID: file), bytes(9000, seed: 1))
        XCTAssertEqual(try image.stat(try image.lookup(path: "empty")).size, 0)

        // Longer entries for version 1 are allowed; the reader takes its 88 bytes and skips the rest.
        let (wide, _) = try create("v1-wide.cim") { $0.formatVersion = 1; $0.entrySize = 96 }
        XCTAssertEqual(wide.tables.map(\.entrySize), [96])
        XCTAssertNil(try wide.entry(try wide.lookup(path: "small")).parentFileID)
        XCTAssertEqual(try WriterTestSupport.content(wide, try wide.entry(try wide.lookup(path: "small")).defaultStream, fileID: 0), bytes(10, seed: 2))
        // Versions 2 and 3 keep their 96-byte entries with the parent FileID.
        let (v2, v2Summary) = try create("v2.cim")
        XCTAssertEqual(v2.tables.map(\.entrySize), [96])
        XCTAssertEqual(try v2.entry(try v2.lookup(path: "dir\\file")).parentFileID, try v2.lookup(path: "dir"))
        XCTAssertEqual(Array(try WriterTestSupport.readFile(v2Summary.regionFiles[1])[32..<34]), [1, 0])
        XCTAssertThrowsError(try create("v1-short.cim") { $0.formatVersion = 1; $0.entrySize = 80 })
    }

    /// Extract the image made by Windows, write the tree as format 1.0, and
    /// read back the same tree: names, types, bytes, security descriptors,
    /// attributes, and the times Linux can carry (last write, last access).
    func testPuttyRoundTripsThroughFormatVersion1() throws {
        let original = try CimImage(path: try FixtureLocator.image("real/putty/putty.cim"))
        try CimExtractor().extract(imagePath: original.path, to: work + "/tree")
        let summary = try CimWriter().createImage(from: work + "/tree", imagePath: out + "/putty1.cim", options: {
            var options = CimWriterOptions()
            options.formatVersion = 1
            return options
        }())
        let copy = try CimImage(path: summary.imagePath)
        XCTAssertEqual(copy.versionMajor, 1)
        XCTAssertEqual(copy.tables.map(\.entrySize), [88])
        XCTAssertEqual(copy.verify().problems, [])
        var compared = 0
        try original.walk { _, child, components in
            let path = components.joined(separator: "\\")
            let what = "\\" + path
            let id = try copy.lookup(path: path)
            let a = try original.entry(child.fileID), b = try copy.entry(id)
            XCTAssertEqual(b.isDirectory, a.isDirectory, what)
            XCTAssertEqual(b.attributes, a.attributes, what)
            XCTAssertEqual(b.lastWriteTime, a.lastWriteTime, what)
            XCTAssertEqual(b.lastAccessTime, a.lastAccessTime, what)
            XCTAssertEqual(b.reparseTag, a.reparseTag, what)
            XCTAssertEqual(try copy.securityDescriptor(of: id), try original.securityDescriptor(of: child.fileID), what)
            XCTAssertEqual(try copy.extendedAttributes(of: id), try original.extendedAttributes(of: child.fileID), what)
            XCTAssertEqual(try copy.alternateStreams(of: id).map(\.name), try original.alternateStreams(of: child.fileID).map(\.name), what)
            if a.isDirectory {
                XCTAssertEqual(try copy.children(of: id).map(\.nameUnits), try original.children(of: child.fileID).map(\.nameUnits), what)
            } else {
                XCTAssertEqual(b.defaultStream.length, a.defaultStream.length, what)
                XCTAssertEqual(try WriterTestSupport.content(copy, b.defaultStream, fileID: id),
                               try WriterTestSupport.content(original, a.defaultStream, fileID: child.fileID), what)
            }
            compared += 1
        }
        XCTAssertEqual(compared, Int(original.maxFileID) - 1)
        XCTAssertEqual(try copy.children(of: copy.rootID).map(\.name), ["msix"])
    }
}
