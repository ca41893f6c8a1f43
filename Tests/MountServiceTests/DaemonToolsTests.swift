import Foundation
import XCTest
@testable import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// Real NBD clients against a running `cimnbd serve`: libnbd's tools, qemu,
/// and the kernel (nbdfuse → loop mount).
final class DaemonToolsTests: XCTestCase {
    let guid = "2b7e1516-28ae-4d2a-8f7b-0a1b2c3d4e5f"
    let other = "3c8f2627-39bf-4e3b-9a8c-1b2c3d4e5f60"

    func require(_ name: String) throws -> String {
        guard let path = DaemonHarness.tool(name) else { throw XCTSkip("\(name) is not installed") }
        return path
    }

    func testToolsReadTheSameVolumeAsExport() throws {
        let nbdinfo = try require("nbdinfo"), nbdcopy = try require("nbdcopy")
        let qemuImg = try require("qemu-img"), qemuIO = try require("qemu-io")
        let d = try DaemonHarness(label: "tools")
        let images = try d.makeImage(name: "layer")
        try d.start()
        XCTAssertEqual(try d.control(["mount", images, "layer.cim", "--volume-id", guid]).status, 0)
        XCTAssertEqual(try d.control(["mount", images, "layer.cim", "--volume-id", other]).status, 0)
        let exported = d.work + "/exported.ext4"
        var r = try d.cli(["export", images + "/layer.cim", "-o", exported, "--volume-id", guid])
        XCTAssertEqual(r.status, 0, r.stderr)

        // nbdinfo --list names both exports with their description.
        r = try DaemonHarness.run(nbdinfo, ["--list", "nbd://\(d.authority)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("export=\"\(guid)\""), r.stdout)
        XCTAssertTrue(r.stdout.contains("export=\"\(other)\""), r.stdout)
        XCTAssertTrue(r.stdout.contains("layer.cim (CIM as ext4)"), r.stdout)
        // Names are case-insensitive, braces allowed.
        r = try DaemonHarness.run(nbdinfo, ["--size", "nbd://\(d.authority)/%7B\(guid.uppercased())%7D"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let size = UInt64(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        XCTAssertEqual(size, UInt64((try FileManager.default.attributesOfItem(atPath: exported)[.size] as? NSNumber)?.uint64Value ?? 1))

        // nbdinfo --map: data and zero runs that cover the volume.
        r = try DaemonHarness.run(nbdinfo, ["--map", d.uri(guid)])
        XCTAssertEqual(r.status, 0, r.stderr)
        var covered: UInt64 = 0
        var kinds = Set<String>()
        for line in r.stdout.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 4, let length = UInt64(fields[1]) else { continue }
            covered += length
            kinds.insert(String(fields[3]))
        }
        XCTAssertEqual(covered, size)
        XCTAssertTrue(kinds.contains("data"), r.stdout)
        XCTAssertTrue(kinds.contains("hole,zero"), r.stdout)

        // nbdcopy: the copy is e2fsck-clean and identical to `cimnbd export`.
        let copy = d.work + "/copy.ext4"
        r = try DaemonHarness.run(nbdcopy, [d.uri(guid), copy])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try DaemonHarness.run("/usr/sbin/e2fsck", ["-fn", copy])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertEqual(try DaemonHarness.run("/usr/bin/cmp", [copy, exported]).status, 0, "nbdcopy's bytes differ from cimnbd export's")

        // qemu-img info / compare, qemu-io reads.
        r = try DaemonHarness.run(qemuImg, ["info", "--output=json", d.uri(guid)])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("\"virtual-size\": \(size)"), r.stdout)
        r = try DaemonHarness.run(qemuImg, ["compare", "-f", "raw", "-F", "raw", d.uri(guid), exported])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("Images are identical"), r.stdout)
        r = try DaemonHarness.run(qemuIO, ["-r", "-f", "raw", "-c", "read -v 1024 16", d.uri(guid)])
        XCTAssertEqual(r.status, 0, r.stderr)
        // Bytes 1024.. are the superblock: its magic 0xEF53 sits at offset 56 (1080), so read there too.
        r = try DaemonHarness.run(qemuIO, ["-r", "-f", "raw", "-c", "read -v 1080 2", d.uri(guid)])
        XCTAssertTrue(r.stdout.contains("53 ef"), r.stdout)
        // Opening read-write is refused: the export is read-only.
        r = try DaemonHarness.run(qemuIO, ["-f", "raw", "-c", "write 0 512", d.uri(guid)])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("Permission denied"), r.stderr)
    }

    func testKernelMountsTheExportThroughNBDFuse() throws {
        let nbdfuse = try require("nbdfuse")
        guard getuid() == 0, FileManager.default.fileExists(atPath: "/dev/fuse"), FileManager.default.fileExists(atPath: "/dev/loop-control") else {
            throw XCTSkip("needs root, /dev/fuse and loop devices")
        }
        let d = try DaemonHarness(label: "kernel")
        let images = try d.makeImage(name: "layer", files: 200)
        try d.start()
        XCTAssertEqual(try d.control(["mount", images, "layer.cim", "--volume-id", guid]).status, 0)
        let fuse = d.work + "/fuse", mnt = d.work + "/mnt"
        let fuseProcess = try d.startNBDFuse(nbdfuse, uri: d.uri(guid), mountPoint: fuse)
        defer { d.unmountFuse(fuse, fuseProcess) }
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        var r = try DaemonHarness.run("/bin/mount", ["-t", "ext4", "-o", "loop,ro", fuse + "/nbd", mnt])
        XCTAssertEqual(r.status, 0, r.stderr)
        defer { _ = try? DaemonHarness.run("/bin/umount", [mnt]) }
        // The mounted tree is the source tree: same names, bytes and symlinks.
        r = try DaemonHarness.run("/usr/bin/diff", ["-r", "--no-dereference", d.work + "/tree-layer", mnt])
        let differences = r.stdout.split(separator: "\n").filter { !$0.hasPrefix("Only in \(mnt): lost+found") }
        XCTAssertEqual(differences, [], r.stdout)
        r = try DaemonHarness.run("/usr/bin/findmnt", ["-n", "-o", "UUID,OPTIONS", mnt])
        XCTAssertTrue(r.stdout.contains(guid), r.stdout)
        XCTAssertTrue(r.stdout.contains("ro"), r.stdout)
    }

    /// Both ways file data leaves the daemon: copied (the default over
    /// loopback) and by sendfile (`--sendfile always`).
    func testTruncatedRegionFileGivesEIOAndOtherExportsKeepServing() throws {
        for mode in ["remote", "always"] {
            try checkTruncatedRegionFileGivesEIO(sendfile: mode)
        }
    }

    private func checkTruncatedRegionFileGivesEIO(sendfile mode: String) throws {
        let nbdfuse = try require("nbdfuse"), nbdcopy = try require("nbdcopy")
        guard FileManager.default.fileExists(atPath: "/dev/fuse") else { throw XCTSkip("needs /dev/fuse") }
        let d = try DaemonHarness(label: "truncate-\(mode)")
        let damaged = try d.makeImage(name: "damaged")
        let healthy = try d.makeImage(name: "healthy")
        try d.start(extra: ["--sendfile", mode])
        XCTAssertEqual(try d.control(["mount", damaged, "damaged.cim", "--volume-id", guid]).status, 0)
        XCTAssertEqual(try d.control(["mount", healthy, "healthy.cim", "--volume-id", other]).status, 0)
        // A client reading the export before and after the damage.
        let fuse = d.work + "/fuse"
        let fuseProcess = try d.startNBDFuse(nbdfuse, uri: d.uri(guid), mountPoint: fuse)
        defer { d.unmountFuse(fuse, fuseProcess) }
        var r = try DaemonHarness.run("/bin/dd", ["if=\(fuse)/nbd", "of=/dev/null", "bs=1M", "iflag=direct"])
        XCTAssertEqual(r.status, 0, "reading the intact export: \(r.stderr)")
        // Truncate the data region that holds big.bin.
        let image = try CimImage(path: damaged + "/damaged.cim")
        let big = try image.entry(try image.lookup(path: "\\big.bin")).defaultStream
        let (region, _) = CimFormat.split(regionOffset: big.dataOffset)
        XCTAssertEqual(truncate(image.regions[Int(region)].path, 4096), 0)
        r = try DaemonHarness.run("/bin/dd", ["if=\(fuse)/nbd", "of=/dev/null", "bs=1M", "iflag=direct"])
        XCTAssertNotEqual(r.status, 0, "--sendfile \(mode): reads of changed data must fail")
        XCTAssertTrue(r.stderr.contains("Input/output error"), "--sendfile \(mode): \(r.stderr)")
        // The daemon is up and the other export is intact.
        r = try DaemonHarness.run(nbdcopy, [d.uri(other), d.work + "/healthy.ext4"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try DaemonHarness.run("/usr/sbin/e2fsck", ["-fn", d.work + "/healthy.ext4"]).status, 0)
        XCTAssertEqual(try d.control(["list"]).status, 0)
        let log = (try? String(contentsOfFile: d.logPath, encoding: .utf8)) ?? ""
        XCTAssertTrue(log.contains("changed while in use"), "--sendfile \(mode): the daemon logs the failed read")
    }
}
