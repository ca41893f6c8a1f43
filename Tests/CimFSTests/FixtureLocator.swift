import Foundation
import XCTest

/// Finds the shared fixtures: `$CIMNBD_FIXTURES`, or `shared/fixtures/cim` beside the repository.
enum FixtureLocator {
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static func cimFixtures() throws -> URL {
        if let override = ProcessInfo.processInfo.environment["CIMNBD_FIXTURES"] {
            return URL(fileURLWithPath: override)
        }
        let candidate = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures/cim")
        guard FileManager.default.fileExists(atPath: candidate.path) else {
            throw XCTSkip("fixtures not found at \(candidate.path); set CIMNBD_FIXTURES")
        }
        return candidate
    }

    /// Every `(image .cim path, manifest path)` pair below the fixtures folder.
    static func cases() throws -> [(image: String, manifest: String)] {
        let root = try cimFixtures()
        var result: [(String, String)] = []
        let folders = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
        for folder in folders {
            let dir = root.appendingPathComponent(folder)
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { continue }
            for file in files.sorted() where file.hasSuffix(".expected.json") {
                let name = String(file.dropLast(".expected.json".count))
                result.append((dir.appendingPathComponent(name + ".cim").path, dir.appendingPathComponent(file).path))
            }
        }
        return result
    }
}
