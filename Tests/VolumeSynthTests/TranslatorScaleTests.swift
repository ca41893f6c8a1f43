import Foundation
import XCTest
@testable import CimFS
@testable import VolumeSynth

/// A 100,000-file image, all in one directory (a multi-level htree), through
/// the translator: e2fsck clean, mounted tree identical, lookups by name work.
final class TranslatorScaleTests: XCTestCase {
    func testHundredThousandFilesInOneDirectory() throws {
        let work = try MountedVolumeChecker.temporaryDirectory("scale")
        defer { _ = try? MountedVolumeChecker.run("/bin/rm", ["-rf", work]) }
        let tree = try TranslatorTreeBuilder(work + "/tree")
        try tree.directory("dir")
        for i in 0..<100_000 { try tree.file("dir/entry-\(i)", Array(String(i, radix: 36).utf8)) }
        let image = try tree.write(to: work + "/images", name: "scale")
        XCTAssertGreaterThanOrEqual(image.maxFileID, 100_002)
        let compared = try MountedVolumeChecker.check(image: image)
        if MountedVolumeChecker.canMount { XCTAssertEqual(compared, 100_002) }
    }
}
