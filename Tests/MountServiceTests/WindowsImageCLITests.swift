import Foundation
import TestFixtures
import XCTest
@testable import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// The image made by Windows (`Tests/Fixtures/real/putty`, format 1.0)
/// through every path of the real `cimnbd` binary: `cim verify/ls/stat/cat`,
/// `cim extract`, `export` (e2fsck, kernel loop mount) and `serve` + nbdcopy.
/// Trees are compared with `putty.expected.json`, the report of Microsoft's
/// published reader.
final class WindowsImageCLITests: XCTestCase {
    let guid = "51583be2-e14f-4c93-9b51-6f2245ebd339"
    static let package = "\\msix\\putty_1.0.1.0_x64__ynj0a7qyfqv8c"

    struct ManifestRow {
        var path: String
        var isDirectory: Bool
        var size: Int
        var sha256: String?
        var creation, lastWrite, change, lastAccess: UInt64
        var securityDescriptor: String?

        /// The Linux path below `root`.
        func linuxPath(_ root: String) -> String {
            path == "\\" ? root : root + path.replacingOccurrences(of: "\\", with: "/")
        }
    }

    func manifest() throws -> [ManifestRow] {
        let data = try Data(contentsOf: URL(fileURLWithPath: try FixtureLocator.image("real/putty/putty.expected.json")))
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        return try rows.map { row in
            func time(_ key: String) throws -> UInt64 { UInt64(try XCTUnwrap(row[key] as? Int, key)) }
            return ManifestRow(path: try XCTUnwrap(row["path"] as? String), isDirectory: row["type"] as? String == "dir",
                               size: try XCTUnwrap(row["size"] as? Int), sha256: row["sha256"] as? String,
                               creation: try time("creation_time"), lastWrite: try time("last_write_time"),
                               change: try time("change_time"), lastAccess: try time("last_access_time"),
                               securityDescriptor: row["sd"] as? String)
        }
    }

    func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// SHA-256 of files, by coreutils' sha256sum (one call for all).
    func sha256sums(_ paths: [String]) throws -> [String: String] {
        guard !paths.isEmpty else { return [:] }
        let r = try DaemonHarness.run("/usr/bin/sha256sum", paths)
        XCTAssertEqual(r.status, 0, r.stderr)
        var sums: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            // "HASH  PATH"
            guard let space = line.firstIndex(of: " ") else { continue }
            sums[String(line[line.index(space, offsetBy: 2)...])] = String(line[..<space])
        }
        return sums
    }

    /// What ext4 stores for a FILETIME: Unix time, clamped to 1901-12-13T20:45:52Z at the low end.
    func ext4Time(_ ticks: UInt64) -> WriterTimespec {
        let (seconds, nanoseconds) = CimFileTime.unixTime(ticks)
        return seconds < -(1 << 31) ? WriterTimespec(seconds: -(1 << 31), nanoseconds: 0) : WriterTimespec(seconds: seconds, nanoseconds: nanoseconds)
    }

    /// Compares a Linux tree with the manifest: every path, type, size, bytes,
    /// the security descriptor (trusted.ntfs_acl) and the times given.
    func assertTree(_ root: String, equals rows: [ManifestRow], allFourTimes: Bool, what: String,
                    file: StaticString = #filePath, line: UInt = #line) throws {
        var expectedNames = Set(rows.map { $0.linuxPath(root) })
        expectedNames.insert(root + "/lost+found")
        // Times first: reading the files would move their access times.
        let stats = try rows.map { try WriterLinux.stat($0.linuxPath(root)) }
        let sums = try sha256sums(rows.filter { !$0.isDirectory }.map { $0.linuxPath(root) })
        for (row, st) in zip(rows, stats) {
            let path = row.linuxPath(root)
            XCTAssertEqual(st.isDirectory, row.isDirectory, "\(what) \(row.path): type", file: file, line: line)
            if !row.isDirectory {
                XCTAssertEqual(st.size, UInt64(row.size), "\(what) \(row.path): size", file: file, line: line)
                XCTAssertEqual(sums[path], row.sha256, "\(what) \(row.path): bytes", file: file, line: line)
            }
            let acl = try? WriterLinux.getXattr(path, name: "trusted.ntfs_acl")
            XCTAssertEqual(acl.map(hex), row.securityDescriptor, "\(what) \(row.path): security descriptor", file: file, line: line)
            var times: [(String, WriterTimespec?, UInt64)] = [("mtime", st.modificationTime, row.lastWrite), ("atime", st.accessTime, row.lastAccess)]
            if allFourTimes { times += [("ctime", st.changeTime, row.change), ("btime", st.birthTime, row.creation)] }
            // The root's times are 0 (1601): a Linux directory cannot hold that, ext4 clamps it.
            if row.path == "\\" && !allFourTimes { times = [] }
            for (name, actual, ticks) in times {
                XCTAssertEqual(actual, ext4Time(ticks), "\(what) \(row.path): \(name)", file: file, line: line)
            }
            if row.isDirectory {
                for child in try FileManager.default.contentsOfDirectory(atPath: path) {
                    XCTAssertTrue(expectedNames.contains(path + "/" + child), "\(what): unexpected \(path)/\(child)", file: file, line: line)
                }
            }
        }
    }

    func testPuttyThroughEveryPath() throws {
        let image = try FixtureLocator.image("real/putty/putty.cim")
        let rows = try manifest()
        XCTAssertGreaterThan(rows.count, 20)
        let d = try DaemonHarness(label: "putty")

        // cim verify: clean, every object proven against its digest.
        var r = try d.cli(["cim", "verify", image])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "")
        XCTAssertTrue(r.stdout.hasSuffix("39 objects checked against their digests, 0 problems\n"), r.stdout)

        // cim ls: the package directory's names, as the manifest has them.
        r = try d.cli(["cim", "ls", image, Self.package])
        XCTAssertEqual(r.status, 0, r.stderr)
        let children = rows.filter { $0.path.hasPrefix(Self.package + "\\") && !$0.path.dropFirst(Self.package.count + 1).contains("\\") }
            .map { String($0.path.dropFirst(Self.package.count + 1)) + ($0.isDirectory ? "\\" : "") }
        XCTAssertEqual(Set(r.stdout.split(separator: "\n").map(String.init)), Set(children))
        r = try d.cli(["cim", "ls", "-l", image, "\\msix"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("putty_1.0.1.0_x64__ynj0a7qyfqv8c"), r.stdout)

        // cim stat and cim cat of putty.exe.
        let exe = try XCTUnwrap(rows.first { $0.path == Self.package + "\\putty.exe" })
        r = try d.cli(["cim", "stat", image, exe.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("Size:        \(exe.size)\n"), r.stdout)
        XCTAssertTrue(r.stdout.contains("Last write:  ") && r.stdout.contains("(\(exe.lastWrite))"), r.stdout)
        XCTAssertTrue(r.stdout.contains("Security:    \(exe.securityDescriptor ?? "?")"), r.stdout)
        let catPath = d.work + "/putty.exe"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DaemonHarness.binary)
        process.arguments = ["cim", "cat", image, exe.path]
        _ = FileManager.default.createFile(atPath: catPath, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: catPath))
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertEqual(try sha256sums([catPath])[catPath], exe.sha256)

        // cim extract: the tree, bytes, security descriptors, last write and last access times.
        let tree = d.work + "/tree"
        r = try d.cli(["cim", "extract", image, tree])
        XCTAssertEqual(r.status, 0, r.stderr)
        try assertTree(tree, equals: rows, allFourTimes: false, what: "extract")

        // Round trip: a fresh extract (reading a tree moves its access times) written
        // as format 1.0 reads back as the same tree.
        let source = d.work + "/tree-for-create", again = d.work + "/again"
        r = try d.cli(["cim", "extract", image, source])
        XCTAssertEqual(r.status, 0, r.stderr)
        try FileManager.default.createDirectory(atPath: again, withIntermediateDirectories: true)
        r = try d.cli(["cim", "create", "--format-version", "1", source, again + "/putty1.cim"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: again + "/putty1.cim"))[16..<24]), [1, 0, 0, 0, 0, 0, 0, 0])
        r = try d.cli(["cim", "verify", again + "/putty1.cim"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasSuffix(" 0 problems\n"), r.stdout)
        r = try d.cli(["cim", "extract", again + "/putty1.cim", d.work + "/tree-again"])
        XCTAssertEqual(r.status, 0, r.stderr)
        try assertTree(d.work + "/tree-again", equals: rows, allFourTimes: false, what: "extract of the format 1.0 copy")

        // export: e2fsck -fn clean; the kernel's ext4 shows the manifest with all four times.
        let exported = d.work + "/putty.ext4"
        r = try d.cli(["export", image, "-o", exported, "--volume-id", guid])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try DaemonHarness.run("/usr/sbin/e2fsck", ["-fn", exported])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)

        // serve + nbdcopy: the same bytes as export.
        if let nbdcopy = DaemonHarness.tool("nbdcopy") {
            try d.start()
            let directory = URL(fileURLWithPath: image).deletingLastPathComponent().path
            r = try d.control(["mount", directory, "putty.cim", "--volume-id", guid])
            XCTAssertEqual(r.status, 0, r.stderr)
            let copy = d.work + "/copy.ext4"
            r = try DaemonHarness.run(nbdcopy, [d.uri(guid), copy])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try DaemonHarness.run("/usr/bin/cmp", [copy, exported]).status, 0, "nbdcopy's bytes differ from cimnbd export's")
            d.stop()
        } else {
            XCTFail("nbdcopy is not installed (apt-get install libnbd-bin; .ci/run installs it)")
        }

        guard getuid() == 0, FileManager.default.fileExists(atPath: "/dev/loop-control") else {
            throw XCTSkip("the kernel mount needs root and loop devices")
        }
        let mnt = d.work + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        r = try DaemonHarness.run("/bin/mount", ["-t", "ext4", "-o", "loop,ro", exported, mnt])
        XCTAssertEqual(r.status, 0, r.stderr)
        guard r.status == 0 else { return }
        defer { _ = try? DaemonHarness.run("/bin/umount", [mnt]) }
        try assertTree(mnt, equals: rows, allFourTimes: true, what: "mounted export")
    }

    /// `cim verify` exits non-zero for a flipped byte in file data and for a damaged object-id entry.
    func testVerifyExitCodeForDamagedBytes() throws {
        let d = try DaemonHarness(label: "putty-damage")
        let source = try FixtureLocator.folder("real/putty")
        for damage in ["file data", "object-id entry"] {
            let copy = d.work + "/" + damage.replacingOccurrences(of: " ", with: "-")
            try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
            for name in try FileManager.default.contentsOfDirectory(atPath: source.path) {
                try FileManager.default.copyItem(atPath: source.path + "/" + name, toPath: copy + "/" + name)
                chmod(copy + "/" + name, 0o644)
            }
            let image = try CimImage(path: copy + "/putty.cim")
            let target: String, position: Int
            if damage == "file data" {
                let id = try image.lookup(path: Self.package + "\\putty.exe")
                let (region, offset) = CimFormat.split(regionOffset: try image.entry(id).defaultStream.dataOffset)
                target = image.regions[Int(region)].path
                position = Int(offset) + 1000
            } else {
                target = image.objectIDPath(of: image.regions[0])
                position = 48 + 2 * 40 + 8
            }
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: target)))
            bytes[position] ^= 0x04
            try Data(bytes).write(to: URL(fileURLWithPath: target))
            let r = try d.cli(["cim", "verify", copy + "/putty.cim"])
            XCTAssertEqual(r.status, 1, "\(damage): \(r.stdout)")
            XCTAssertTrue(r.stderr.contains("digest does not match the object's bytes"), "\(damage): \(r.stderr)")
            XCTAssertTrue(r.stdout.hasSuffix(" 1 problems\n"), "\(damage): \(r.stdout)")
        }
    }
}
