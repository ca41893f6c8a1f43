import Foundation
import XCTest
@testable import CimFS

/// Random damage never crashes or hangs the reader: every call either
/// answers or throws.
final class MutationTests: XCTestCase {
    /// A small deterministic generator, so a failure can be reproduced.
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Reads everything reachable, swallowing (but counting) typed errors.
    func exercise(_ path: String) -> (opened: Bool, errors: Int) {
        var errors = 0
        guard let image = try? CimImage(path: path) else { return (false, 1) }
        _ = image.verify()
        do {
            try image.walk { _, child, _ in
                do {
                    _ = try image.stat(child.fileID)
                    _ = try image.securityDescriptor(of: child.fileID)
                    _ = try image.extendedAttributes(of: child.fileID)
                    _ = try image.reparseData(of: child.fileID)
                    let entry = try image.entry(child.fileID)
                    if !entry.isDirectory { _ = try image.read(entry.defaultStream, at: 0, length: 4096, fileID: child.fileID) }
                    for stream in try image.alternateStreams(of: child.fileID) {
                        _ = try image.read(stream.stream, at: 0, length: 4096, fileID: child.fileID)
                    }
                    _ = try? image.lookup(child.name, in: image.rootID)
                } catch { errors += 1 }
            }
        } catch { errors += 1 }
        return (true, errors)
    }

    func testRandomByteFlipsNeverCrash() throws {
        for (folder, name) in [("small", "small"), ("ads", "ads"), ("pe", "pe"), ("fork", "child")] {
            let f = try ImageFixture(folder: folder, image: name)
            let image = try CimImage(path: f.cimPath)
            // Metadata lives in region 0 after the upcase table; bias the flips towards it and the header.
            let targets = [f.cimPath] + image.regions.map(\.path)
            var originals: [String: [UInt8]] = [:]
            for target in targets { originals[target] = try f.bytes(target) }
            var rng = SplitMix64(state: 0xC1F5_0000 + UInt64(folder.count))
            var opened = 0, failures = 0
            let rounds = 1500
            for _ in 0..<rounds {
                let target = targets[Int(rng.next() % UInt64(targets.count))]
                guard var bytes = originals[target], !bytes.isEmpty else { continue }
                let flips = 1 + Int(rng.next() % 4)
                for _ in 0..<flips {
                    let position = Int(rng.next() % UInt64(bytes.count))
                    bytes[position] ^= UInt8(truncatingIfNeeded: 1 + rng.next() % 255)
                }
                try f.write(target, bytes)
                let result = exercise(f.cimPath)
                if result.opened { opened += 1 }
                failures += result.errors
                try f.write(target, originals[target] ?? [])
            }
            // Some damage must have been both tolerated and detected; above all, no crash or hang.
            XCTAssertGreaterThan(opened, rounds / 10, folder)
            XCTAssertGreaterThan(failures, 0, folder)
        }
    }

    func testTruncationAtEveryHeaderLength() throws {
        let f = try ImageFixture(folder: "small", image: "small")
        let original = try f.bytes(f.cimPath)
        for length in 0..<original.count {
            try f.write(f.cimPath, Array(original[0..<length]))
            XCTAssertThrowsError(try CimImage(path: f.cimPath), "length \(length)")
        }
    }
}
