import Crypto
import Foundation
import TestFixtures
import XCTest
@testable import CimFS

/// Reads every fixture image (the independent writer's and those made by
/// Windows) and compares what the reader reports with the manifest a correct
/// reader must produce.
final class FixtureManifestTests: XCTestCase {
    func hex(_ bytes: [UInt8]?) -> String? {
        bytes.map { $0.map { String(format: "%02x", $0) }.joined() }
    }

    func sha256(_ image: CimImage, _ stream: CimStream, _ id: CimFileID) throws -> String {
        var hasher = SHA256()
        try image.forEachChunk(of: stream, fileID: id) { hasher.update(bufferPointer: $0) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Builds the manifest of `image` the way the fixtures' README defines it.
    func manifest(of image: CimImage) throws -> [[String: Any]] {
        var rows: [[String: Any]] = []
        func row(path: String, id: CimFileID) throws -> [String: Any] {
            let entry = try image.entry(id)
            let stat = try image.stat(id)
            var streams: [[String: Any]] = []
            for stream in try image.alternateStreams(of: id) {
                streams.append(["name": stream.name, "size": Int(stream.size), "sha256": try sha256(image, stream.stream, id)])
            }
            return [
                "path": path,
                "type": entry.isDirectory ? "dir" : "file",
                "file_id": Int(id),
                "size": Int(stat.size),
                "sha256": entry.isDirectory ? NSNull() : try sha256(image, entry.defaultStream, id) as Any,
                "attributes": Int(stat.attributes),
                "creation_time": Int(stat.creationTime),
                "last_write_time": Int(stat.lastWriteTime),
                "change_time": Int(stat.changeTime),
                "last_access_time": Int(stat.lastAccessTime),
                "sd": hex(try image.securityDescriptor(of: id)) ?? NSNull(),
                "ea": hex(try image.extendedAttributes(of: id)) ?? NSNull(),
                "reparse": hex(try image.reparseData(of: id)) ?? NSNull(),
                "reparse_tag": Int(entry.reparseTag),
                "streams": streams,
            ]
        }
        rows.append(try row(path: "\\", id: image.rootID))
        try image.walk { _, child, components in
            rows.append(try row(path: "\\" + components.joined(separator: "\\"), id: child.fileID))
        }
        return rows
    }

    func normalized(_ value: Any) -> String {
        if value is NSNull { return "null" }
        if let number = value as? NSNumber { return number.stringValue }
        if let string = value as? String { return "\"\(string)\"" }
        if let array = value as? [Any] { return "[" + array.map(normalized).joined(separator: ",") + "]" }
        if let dict = value as? [String: Any] {
            return "{" + dict.keys.sorted().map { "\($0):\(normalized(dict[$0] as Any))" }.joined(separator: ",") + "}"
        }
        return "\(value)"
    }

    func testEveryFixtureMatchesItsManifest() throws {
        let cases = try FixtureLocator.cases()
        XCTAssertGreaterThanOrEqual(cases.count, 9, "expected the fixture images")
        if ProcessInfo.processInfo.environment["CIMNBD_FIXTURES"] == nil {
            XCTAssertTrue(cases.contains { $0.isMadeByWindows }, "expected the images made by Windows (Tests/Fixtures/real)")
        }
        for (imagePath, manifestPath) in cases.map({ ($0.image, $0.manifest) }) {
            let image = try CimImage(path: imagePath)
            let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: manifestPath))) as? [[String: Any]] ?? []
            XCTAssertFalse(expected.isEmpty, manifestPath)
            let actual = try manifest(of: image)
            // Keyed by code units: Swift's String equality would merge canonically equivalent names.
            let byPath = Dictionary(actual.map { (Array(($0["path"] as? String ?? "").utf16), $0) }, uniquingKeysWith: { a, _ in a })
            XCTAssertEqual(actual.count, expected.count, "\(imagePath): number of paths")
            for row in expected {
                let path = row["path"] as? String ?? "?"
                guard let mine = byPath[Array(path.utf16)] else {
                    XCTFail("\(imagePath): reader does not report \(path)")
                    continue
                }
                for key in row.keys.sorted() {
                    XCTAssertEqual(normalized(mine[key] as Any), normalized(row[key] as Any), "\(imagePath) \(path) field \(key)")
                }
            }
            // Every path resolves by lookup, also upper-cased unit by unit (as Windows compares).
            for row in expected {
                guard let path = row["path"] as? String, let id = row["file_id"] as? Int else { continue }
                XCTAssertEqual(try image.lookup(path: path), CimFileID(id), "\(imagePath): lookup \(path)")
                let upper = String(decoding: path.utf16.map { unit -> UInt16 in
                    guard let scalar = Unicode.Scalar(unit) else { return unit }
                    let mapped = Array(scalar.properties.uppercaseMapping.utf16)
                    return mapped.count == 1 ? mapped[0] : unit
                }, as: UTF16.self)
                XCTAssertEqual(try image.lookup(path: upper), CimFileID(id), "\(imagePath): lookup upper-cased \(upper)")
            }
        }
    }
}
