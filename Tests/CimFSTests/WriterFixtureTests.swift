import XCTest
import Foundation
import TestFixtures
@testable import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// Second opinion from the independent fixtures: extract each fixture image,
/// build a new image from the extracted tree with our writer, and check that
/// the new image reports what the fixture's manifest says, for everything the
/// Linux mapping can carry (all but FileIDs, directory table sizes, and the
/// creation and change times, which Linux cannot set).
final class WriterFixtureTests: XCTestCase {
    /// FILETIME of 1901-12-13T20:45:52Z, the earliest time ext4 holds.
    static let earliestExt4Time = 94_969_899_520_000_000

    /// `actual` came through a Linux file: equal to `expected`, or, for a time
    /// before 1901-12-13 (Windows' images give the root time 0, 1601), the
    /// earliest time the file system of the temporary directory could hold.
    func assertLinuxTime(_ actual: UInt64, _ expected: Int?, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let expected else { return XCTFail("\(what): no time in the manifest", file: file, line: line) }
        if expected < Self.earliestExt4Time && Int(actual) == Self.earliestExt4Time { return }
        XCTAssertEqual(Int(actual), expected, what, file: file, line: line)
    }

    func testFixturesSurviveExtractAndRecreate() throws {
        var checked = 0
        for (cim, manifestPath) in try FixtureLocator.cases().map({ ($0.image, $0.manifest) }) {
            let folder = URL(fileURLWithPath: cim).deletingLastPathComponent().lastPathComponent
            let work = try WriterTestSupport.makeTemporaryDirectory("fixture-\(folder)")
            defer { WriterTestSupport.removeTree(work) }
            // What Linux cannot hold (streams over 64 KiB or past the inode's xattr space) is left
            // out, each named; the rest must come back identical.
            let tree = work + "/tree"
            let extracted = try CimExtractor().extract(imagePath: cim, to: tree)
            var leftOut: [String: Set<String>] = [:]
            for omission in extracted.leftOut {
                XCTAssertTrue(omission.path.hasPrefix(tree), omission.path)
                leftOut["\\" + omission.path.dropFirst(tree.count + 1).split(separator: "/").joined(separator: "\\"), default: []]
                    .formUnion(omission.attributes)
            }
            XCTAssertEqual(extracted.attributesLeftOut, leftOut.values.map(\.count).reduce(0, +), folder)
            try WriterTestSupport.mkdir(work + "/out")
            try CimWriter().createImage(from: work + "/tree", imagePath: work + "/out/again.cim")
            let image = try CimImage(path: work + "/out/again.cim")
            XCTAssertTrue(image.verify().isClean, folder)
            let manifestData = try Data(contentsOf: URL(fileURLWithPath: manifestPath))
            let manifest = try XCTUnwrap(try JSONSerialization.jsonObject(with: manifestData) as? [[String: Any]])
            var linkGroups: [Int: CimFileID] = [:]
            for item in manifest {
                let path = try XCTUnwrap(item["path"] as? String)
                let id = path == "\\" ? image.rootID : try image.lookup(path: path)
                let entry = try image.entry(id)
                let what = "\(folder) \(path)"
                XCTAssertEqual(entry.isDirectory, item["type"] as? String == "dir", what)
                XCTAssertEqual(Int(entry.attributes), item["attributes"] as? Int, what)
                assertLinuxTime(entry.lastWriteTime, item["last_write_time"] as? Int, what + " last write")
                assertLinuxTime(entry.lastAccessTime, item["last_access_time"] as? Int, what + " last access")
                XCTAssertEqual(Int(entry.reparseTag), item["reparse_tag"] as? Int, what)
                XCTAssertEqual(try image.securityDescriptor(of: id).map(hex), item["sd"] as? String, what)
                XCTAssertEqual(try image.extendedAttributes(of: id).map(hex), item["ea"] as? String, what)
                XCTAssertEqual(try image.reparseData(of: id).map(hex), item["reparse"] as? String, what)
                if let fileID = item["file_id"] as? Int {
                    if let known = linkGroups[fileID] { XCTAssertEqual(id, known, "hard link \(what)") } else { linkGroups[fileID] = id }
                }
                if !entry.isDirectory {
                    XCTAssertEqual(Int(entry.defaultStream.length), item["size"] as? Int, what)
                    let data = try WriterTestSupport.content(image, entry.defaultStream, fileID: id)
                    XCTAssertEqual(WriterTestSupport.sha256(data), item["sha256"] as? String, what)
                }
                let expectedStreams = ((item["streams"] as? [[String: Any]]) ?? []).filter { stream in
                    !(leftOut[path]?.contains("user." + (stream["name"] as? String ?? "")) ?? false)
                }
                let streams = try image.alternateStreams(of: id)
                XCTAssertEqual(streams.map(\.name), expectedStreams.compactMap { $0["name"] as? String }, "stream order \(what)")
                for (stream, expected) in zip(streams, expectedStreams) {
                    XCTAssertEqual(Int(stream.size), expected["size"] as? Int, "\(what):\(stream.name)")
                    let data = try WriterTestSupport.content(image, stream.stream, fileID: id)
                    XCTAssertEqual(WriterTestSupport.sha256(data), expected["sha256"] as? String, "\(what):\(stream.name)")
                }
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 6, "fixtures checked")
    }

    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { byte -> String in
            let text = String(byte, radix: 16)
            return text.count == 1 ? "0" + text : text
        }.joined()
    }
}
