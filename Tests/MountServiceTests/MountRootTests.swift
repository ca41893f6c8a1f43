import Foundation
import XCTest
@testable import MountService
import VolumeSynth

/// `mount --root`: the daemon exports the image directory as the volume's
/// root, keeps it across restarts, and still loads state files written
/// before the field existed.
final class MountRootTests: XCTestCase {
    let guid = "3d6c2b1a-9e8f-4a7b-8c6d-5e4f3a2b1c0d"

    func testStateFileWithoutRootStillLoads() throws {
        let directory = NSTemporaryDirectory() + "cimnbd-state-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/mounts.json"
        // A record as written before --root existed.
        try Data("""
            {"mounts":[{"directoryMask":18,"fileMask":18,"flags":0,"gid":0,"guid":"\(guid)","imageDirectory":"/images","imageName":"layer.cim","uid":0}],"version":1}
            """.utf8).write(to: URL(fileURLWithPath: path))
        let store = MountStateStore(path: path)
        let old = try store.load()
        XCTAssertEqual(old.count, 1)
        XCTAssertNil(old.first?.root)
        XCTAssertEqual(old.first?.mapping, MappingOptions())
        var record = try XCTUnwrap(old.first)
        record.root = "\\Files"
        try store.save([record])
        XCTAssertEqual(try store.load().first?.mapping.root, "\\Files")
    }

    func testMountWithRootExportsThatDirectoryAndSurvivesARestart() throws {
        guard let nbdcopy = DaemonHarness.tool("nbdcopy") else { throw XCTSkip("nbdcopy (libnbd-bin) is not installed") }
        let d = try DaemonHarness(label: "root")
        let images = try d.makeImage(name: "layer", files: 5, bigFileBytes: 1 << 16)
        try d.start()
        var r = try d.control(["mount", images, "layer.cim", "--volume-id", guid, "--root", "\\sub"])
        XCTAssertEqual(r.status, 0, r.stderr)
        func checkExport() throws {
            let copy = d.work + "/copy-\(UUID().uuidString.prefix(4)).ext4"
            let copied = try DaemonHarness.run(nbdcopy, [d.uri(guid), copy])
            XCTAssertEqual(copied.status, 0, copied.stderr)
            let fsck = try DaemonHarness.run("/usr/sbin/e2fsck", ["-fn", copy])
            XCTAssertEqual(fsck.status, 0, fsck.stdout + fsck.stderr)
            let listing = try DaemonHarness.run("/usr/sbin/debugfs", ["-R", "ls /", copy])
            XCTAssertTrue(listing.stdout.contains("f0.txt") && listing.stdout.contains("f4.txt"), listing.stdout)
            XCTAssertFalse(listing.stdout.contains("big.bin"), "the image root is not the volume root: \(listing.stdout)")
        }
        try checkExport()
        // A --root that is not a directory of the image fails and mounts nothing.
        r = try d.control(["mount", images, "layer.cim", "--root", "\\nope"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--root \\nope"), r.stderr)
        d.stop()
        try d.start()
        try checkExport()
        d.stop()
    }
}
