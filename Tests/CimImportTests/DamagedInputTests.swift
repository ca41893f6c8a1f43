import Foundation
import XCTest
@testable import CimImport
import CimFS

/// Damaged layers and packages (bytes flipped, cut short) must give an error
/// or a valid image, never a crash, a hang or files left behind.
final class DamagedInputTests: XCTestCase {
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 17
        }
    }

    func mutations(of bytes: [UInt8], count: Int, seed: UInt64) -> [[UInt8]] {
        var random = Generator(state: seed)
        return (0..<count).map { round in
            var copy = bytes
            if round % 5 == 4 {
                copy.removeLast(Int(random.next() % UInt64(copy.count)))
            } else {
                for _ in 0...(round % 3) {
                    copy[Int(random.next() % UInt64(copy.count))] ^= UInt8(truncatingIfNeeded: random.next() | 1)
                }
            }
            return copy
        }
    }

    func testDamagedLayersNeverCrash() throws {
        let fixtures = try ImportTestSupport.makeFixtures()
        defer { try? FileManager.default.removeItem(atPath: fixtures) }
        let out = fixtures + "/damaged"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var failures = 0, successes = 0
        for name in ["layer3.tar", "base.tar.gz", "layer2.tar.zst"] {
            let original = try XCTUnwrap(ImportTestSupport.contents(fixtures + "/" + name))
            for (index, bytes) in mutations(of: original, count: 60, seed: UInt64(name.count)).enumerated() {
                let input = out + "/input"
                try Data(bytes).write(to: URL(fileURLWithPath: input))
                let image = out + "/m\(index).cim"
                do {
                    try LayerImporter.importLayer(from: try FileByteSource(path: input), to: image)
                    successes += 1
                    XCTAssertTrue(try CimImage(path: image).verify().isClean, "\(name) mutation \(index)")
                    for file in ImportTestSupport.listing(out) where file != "input" { unlink(out + "/" + file) }
                } catch is ImportError {
                    failures += 1
                } catch is CimError {
                    failures += 1
                }
                XCTAssertEqual(ImportTestSupport.listing(out), ["input"], "\(name) mutation \(index) left files")
            }
        }
        XCTAssertGreaterThan(failures, 0)
        print("damaged layers: \(failures) rejected, \(successes) imported")
    }

    func testDamagedPackagesNeverCrash() throws {
        let fixtures = try ImportTestSupport.makeFixtures()
        defer { try? FileManager.default.removeItem(atPath: fixtures) }
        let out = fixtures + "/damaged"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let original = try XCTUnwrap(ImportTestSupport.contents(fixtures + "/package.msix"))
        var failures = 0
        for (index, bytes) in mutations(of: original, count: 120, seed: 7).enumerated() {
            let input = out + "/input"
            try Data(bytes).write(to: URL(fileURLWithPath: input))
            do {
                try MSIXImporter.importPackage(at: input, to: out + "/m.cim")
                XCTAssertTrue(try CimImage(path: out + "/m.cim").verify().isClean, "mutation \(index)")
                for file in ImportTestSupport.listing(out) where file != "input" { unlink(out + "/" + file) }
            } catch is ImportError {
                failures += 1
            }
            XCTAssertEqual(ImportTestSupport.listing(out), ["input"], "mutation \(index) left files")
        }
        XCTAssertGreaterThan(failures, 0)
    }
}
