import Foundation
import TestFixtures
import XCTest
@testable import CimFS

/// A writable copy of one fixture image in a temporary directory, with
/// helpers to patch bytes of its files.
final class ImageFixture {
    let directory: URL
    let cimPath: String
    let regionSet: CimGUID

    /// Copies `Tests/Fixtures/<folder>` (`folder` is below `cim/` unless it names `real/…`).
    init(folder: String, image: String) throws {
        let source = try FixtureLocator.folder(folder.hasPrefix("real/") ? folder : "cim/" + folder)
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("cimfs-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for file in try FileManager.default.contentsOfDirectory(atPath: source.path) {
            let target = directory.appendingPathComponent(file)
            try FileManager.default.copyItem(at: source.appendingPathComponent(file), to: target)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: target.path)
        }
        cimPath = directory.appendingPathComponent(image + ".cim").path
        regionSet = try CimImage(path: cimPath).regionSet
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    func regionPath(_ index: Int) -> String {
        directory.appendingPathComponent(CimFormat.regionFileName(set: regionSet, index: index)).path
    }

    func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    func write(_ path: String, _ bytes: [UInt8]) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

    /// Overwrites bytes at `offset` of `path`.
    func patch(_ path: String, at offset: Int, with newBytes: [UInt8]) throws {
        var all = try bytes(path)
        all.replaceSubrange(offset..<(offset + newBytes.count), with: newBytes)
        try write(path, all)
    }

    func patch(_ path: String, at offset: Int, u16 value: UInt16) throws {
        try patch(path, at: offset, with: withUnsafeBytes(of: value.littleEndian, Array.init))
    }

    func patch(_ path: String, at offset: Int, u32 value: UInt32) throws {
        try patch(path, at: offset, with: withUnsafeBytes(of: value.littleEndian, Array.init))
    }

    func patch(_ path: String, at offset: Int, u64 value: UInt64) throws {
        try patch(path, at: offset, with: withUnsafeBytes(of: value.littleEndian, Array.init))
    }

    func truncate(_ path: String, to size: Int) throws {
        XCTAssertEqual(Foundation.truncate(path, off_t(size)), 0)
    }

    /// Byte position of a RegionOffset in region 0 of this image (the tests only patch region 0).
    func position(_ regionOffset: UInt64) -> Int { Int(CimFormat.split(regionOffset: regionOffset).offset) }
}
