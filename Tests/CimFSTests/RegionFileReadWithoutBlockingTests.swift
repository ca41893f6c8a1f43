import Foundation
import XCTest
@testable import CimFS

/// `RegionFile.readWithoutBlocking`: the event loop's read of page-cached
/// file data must give the same bytes as `read`, and the same errors.
final class RegionFileReadWithoutBlockingTests: XCTestCase {
    private func makeFile(_ bytes: [UInt8]) throws -> String {
        let path = NSTemporaryDirectory() + "region-nowait-\(UUID().uuidString)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testCachedBytesAreTheFileBytes() throws {
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let path = try makeFile(bytes)
        let file = try RegionFile(path: path)
        // Just written, so in the page cache: the read must succeed.
        var buffer = [UInt8](repeating: 0, count: 8192)
        let done = try buffer.withUnsafeMutableBytes { try file.readWithoutBlocking(into: $0, at: 12_345) }
        XCTAssertTrue(done, "freshly written data should be read from the page cache")
        XCTAssertEqual(buffer, Array(bytes[12_345..<(12_345 + 8192)]))
    }

    func testOutOfBoundsAndChangedFilesThrow() throws {
        let path = try makeFile([UInt8](repeating: 7, count: 4096))
        let file = try RegionFile(path: path)
        var buffer = [UInt8](repeating: 0, count: 4096)
        XCTAssertThrowsError(try buffer.withUnsafeMutableBytes { try file.readWithoutBlocking(into: $0, at: 1) })
        // A file that changed after it was opened fails the read: never mixed bytes.
        XCTAssertEqual(truncate(path, 1024), 0)
        XCTAssertThrowsError(try buffer.withUnsafeMutableBytes { try file.readWithoutBlocking(into: $0, at: 0) }) { error in
            guard case CimError.fileChanged = error else { return XCTFail("expected fileChanged, got \(error)") }
        }
    }
}
