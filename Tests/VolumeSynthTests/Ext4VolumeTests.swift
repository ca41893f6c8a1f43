import CimFS
import Foundation
import XCTest
@testable import VolumeSynth

final class Ext4VolumeTests: XCTestCase {
    typealias S = Ext4TestSupport

    func bytes(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
    }

    /// A tree with a bit of everything except scale.
    func makeSmallTree() throws -> MemoryTree {
        let t = try MemoryTree()
        let docs = t.dir(1, "docs")
        let sub = t.dir(docs, "sub", perms: 0o750)
        try t.file(1, "empty", [])
        try t.file(1, "one", [.data([0x41])])
        try t.file(docs, "block", [.data(bytes(4096, seed: 1))])
        try t.file(docs, "block+1", [.data(bytes(4097, seed: 2))])
        try t.file(sub, "medium", [.data(bytes(100_000, seed: 3))])
        try t.file(sub, "holes", [.hole(10_000), .data(bytes(5000, seed: 4)), .hole(20_000), .data(bytes(3, seed: 5)), .hole(4096 * 3)])
        try t.file(sub, "unaligned-runs", [.data(bytes(1000, seed: 6)), .data(bytes(5000, seed: 7)), .hole(100), .data(bytes(10, seed: 8))])
        let shared = try t.file(docs, "shared", [.data(bytes(300, seed: 9))])
        t.link(1, "shared-link", to: shared)
        t.link(sub, "shared-link2", to: shared)
        t.symlink(1, "short-link", "docs/block")
        t.symlink(docs, "long-link", String(repeating: "a/", count: 100) + "target")
        t.symlink(1, "edge-59", String(repeating: "x", count: 59))
        t.symlink(1, "edge-60", String(repeating: "y", count: 60))
        t.dir(1, "Ünïcödé ☃ 日本語")
        try t.file(1, "émoji-😀.txt", [.data(Array("hello\n".utf8))])
        // Times: nanoseconds, before 1970, after 2038, far future (clamped).
        let timed = try t.file(1, "times", [.data([1, 2, 3])])
        t.setAttributes(timed, NodeAttributes(kind: .regularFile, permissions: 0o4755, uid: 70000, gid: 80000, size: 3,
                                              accessTime: Timestamp(seconds: -1_000_000_000, nanoseconds: 999_999_999),
                                              modificationTime: Timestamp(seconds: 4_102_444_800, nanoseconds: 1),
                                              changeTime: Timestamp(seconds: -5, nanoseconds: 500),
                                              creationTime: Timestamp(seconds: 1_234_567_890, nanoseconds: 987_654_321)))
        let clamped = try t.file(1, "clamped", [])
        t.setAttributes(clamped, NodeAttributes(kind: .regularFile, permissions: 0o600, uid: 0, gid: 0, size: 0,
                                                accessTime: Timestamp(seconds: Int64.min / 2, nanoseconds: 3),
                                                modificationTime: Timestamp(seconds: 1 << 40, nanoseconds: 0),
                                                changeTime: Timestamp(seconds: 0, nanoseconds: 0),
                                                creationTime: Timestamp(seconds: 2_147_483_648, nanoseconds: 42)))
        // Extended attributes: inline, block, empty, ACL, too large.
        let x1 = try t.file(1, "xattr-small", [.data([7])])
        t.setXattrs(x1, [ExtendedAttribute(name: "user.a", value: Array("b".utf8))])
        let x2 = try t.file(1, "xattr-big", [.data([8])])
        t.setXattrs(x2, [
            ExtendedAttribute(name: "user.stream", value: bytes(3000, seed: 10)),
            ExtendedAttribute(name: "trusted.ntfs_sd", value: bytes(120, seed: 11)),
            ExtendedAttribute(name: "security.selinux", value: Array("system_u:object_r:unlabeled_t:s0\0".utf8)),
            ExtendedAttribute(name: "user.empty", value: []),
            ExtendedAttribute(name: "user.z", value: [1]),
        ])
        t.setXattrs(docs, [ExtendedAttribute(name: "user.dir", value: Array("on a directory".utf8))])
        t.setXattrs(sub, [ExtendedAttribute(name: "system.posix_acl_access",
                                            value: [2, 0, 0, 0, 1, 0, 7, 0, 0xFF, 0xFF, 0xFF, 0xFF,
                                                    2, 0, 5, 0, 0xE8, 0x03, 0, 0,
                                                    4, 0, 5, 0, 0xFF, 0xFF, 0xFF, 0xFF,
                                                    0x10, 0, 5, 0, 0xFF, 0xFF, 0xFF, 0xFF,
                                                    0x20, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF])])
        let link = t.symlink(sub, "link-with-xattr", "../one")
        t.setXattrs(link, [ExtendedAttribute(name: "trusted.reparse", value: bytes(40, seed: 12))])
        let longLink = t.symlink(sub, "long-link-with-xattr-block", String(repeating: "b", count: 300))
        t.setXattrs(longLink, [ExtendedAttribute(name: "trusted.reparse", value: bytes(400, seed: 15))])
        let fastLink = t.symlink(sub, "fast-link-with-xattr-block", "x")
        // Linux hides user.* on symlinks, so symlink attributes use trusted.*.
        t.setXattrs(fastLink, [ExtendedAttribute(name: "trusted.big", value: bytes(300, seed: 16))])
        let bigDir = t.dir(sub, "dir-with-xattr-block")
        t.setXattrs(bigDir, [ExtendedAttribute(name: "user.big", value: bytes(1000, seed: 17)),
                             ExtendedAttribute(name: "user.\u{e9}t\u{e9}", value: bytes(10, seed: 18))])
        return t
    }

    func testSmallTreeIsCleanAndMatches() throws {
        let t = try makeSmallTree()
        let tooBig = try t.file(1, "xattr-too-big", [.data([9])])
        t.setXattrs(tooBig, [ExtendedAttribute(name: "user.toolarge", value: bytes(70_000, seed: 13)),
                             ExtendedAttribute(name: "user.toolarge2", value: bytes(5000, seed: 14)),
                             ExtendedAttribute(name: "bogus.namespace", value: [1])])
        // A nested one: the warning must name the full path.
        let sub = try XCTUnwrap(t.lookup("/docs/sub"))
        let nested = try t.file(sub, "nested-bogus", [])
        t.setXattrs(nested, [ExtendedAttribute(name: "bogus.ns", value: [1])])
        try t.finish()
        let volume = try Ext4Volume(source: t, options: S.options)
        // 70 000 bytes (over Linux's 64 KiB) and the unknown namespace are left
        // out; the 5000-byte value goes to an EA inode. One warning per file names every attribute left out.
        XCTAssertEqual(volume.warnings.count, 2, "\(volume.warnings)")
        let tooBigWarnings = volume.warnings.filter { $0.hasPrefix("/xattr-too-big: ") }
        XCTAssertEqual(tooBigWarnings.count, 1, "\(volume.warnings)")
        XCTAssertTrue(tooBigWarnings.first?.contains("user.toolarge (") == true, "\(volume.warnings)")
        XCTAssertTrue(tooBigWarnings.first?.contains("bogus.namespace (") == true, "\(volume.warnings)")
        XCTAssertFalse(tooBigWarnings.first?.contains("user.toolarge2") == true, "the 5000-byte value is stored")
        XCTAssertEqual(volume.warnings.filter { $0.hasPrefix("/docs/sub/nested-bogus: ") }.count, 1, "\(volume.warnings)")
        let image = try S.writeImage(volume, name: "small")
        defer { try? FileManager.default.removeItem(atPath: image) }
        try S.assertClean(image)

        let (_, stat) = try S.run(["debugfs", "-R", "stat <11>", image])
        XCTAssertTrue(stat.contains("Type: directory"), stat)
        let (_, ls) = try S.run(["debugfs", "-R", "ls -l /", image])
        XCTAssertTrue(ls.contains("lost+found") && ls.contains("shared-link"), ls)
        for path in ["/docs/sub/holes", "/docs/block+1", "/docs/sub/unaligned-runs"] {
            let out = S.temporaryPath("dump")
            defer { try? FileManager.default.removeItem(atPath: out) }
            let (status, output) = try S.run(["debugfs", "-R", "dump \(path) \(out)", image])
            XCTAssertEqual(status, 0, output)
            let expected = try XCTUnwrap(t.lookup(path).flatMap { t.node($0).expected })
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), Data(expected), path)
        }

        if S.canMount {
            try S.withMount(image) { mount in
                try S.compare(tree: t, mount: mount)
                // The clamped and far-future times.
                let (_, out) = try S.run(["stat", "--printf", "%.9X %.9Y %.9W", mount + "/clamped"])
                XCTAssertEqual(out, "-2147483648.000000000 \(Ext4Time.maximumSeconds).999999999 2147483648.000000042")
                let xs = try S.xattrs([mount + "/xattr-too-big"])
                XCTAssertEqual(xs[mount + "/xattr-too-big"]?.keys.sorted(), ["user.toolarge2"])
            }
            // RO_COMPAT_READONLY: even an explicit read-write mount ends up read-only.
            let dir = S.temporaryPath("rw")
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (status, _) = try S.run(["mount", "-w", "-o", "loop,rw", "-t", "ext4", image, dir])
            if status == 0 {
                let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
                let line = mounts.split(separator: "\n").first { $0.contains(" \(dir) ") }
                _ = try S.run(["umount", dir])
                XCTAssertNotNil(line)
                XCTAssertTrue(line?.contains(" ro,") ?? false, String(line ?? ""))
            }
        }
    }
}

final class Ext4ExtendedAttributeTests: XCTestCase {
    typealias S = Ext4TestSupport

    func value(_ count: Int, _ seed: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 * 7 + seed) } }

    /// Values too large for the inode and the attribute block live in EA
    /// inodes: several per file, on the root, on directories, up to 64 KiB.
    func testLargeValuesUseEAInodes() throws {
        let t = try MemoryTree()
        t.setXattrs(1, [ExtendedAttribute(name: "user.root-big", value: value(10_000, 1))])
        let f = try t.file(1, "streams", [.data([1, 2, 3])])
        t.setXattrs(f, [
            ExtendedAttribute(name: "user.small", value: [1, 2]),
            ExtendedAttribute(name: "user.a-20k", value: value(20_000, 2)),
            ExtendedAttribute(name: "user.b-64k", value: value(65_536, 3)),
            ExtendedAttribute(name: "user.c-3k", value: value(3000, 4)),
            ExtendedAttribute(name: "user.d-3k", value: value(3000, 5)),
            ExtendedAttribute(name: "trusted.e-5k", value: value(5000, 6)),
        ])
        let d = t.dir(1, "dir")
        t.setXattrs(d, [ExtendedAttribute(name: "user.dir-big", value: value(9000, 7))])
        try t.file(d, "after", [.data([4])])
        try t.finish()
        let volume = try Ext4Volume(source: t, options: S.options)
        XCTAssertEqual(volume.warnings, [])
        let image = try S.writeImage(volume, name: "eainode")
        defer { try? FileManager.default.removeItem(atPath: image) }
        try S.assertClean(image)
        let (_, features) = try S.run(["dumpe2fs", "-h", image])
        XCTAssertTrue(features.contains("ea_inode"), features)
        let (_, lf) = try S.run(["debugfs", "-R", "ncheck 11", image])
        XCTAssertTrue(lf.contains("/lost+found"), lf)
        if S.canMount {
            try S.withMount(image) { try S.compare(tree: t, mount: $0) }
        }
    }

    /// Volumes without large values do not carry the ea_inode feature.
    func testNoEAInodeFeatureWhenUnneeded() throws {
        let t = try MemoryTree()
        let f = try t.file(1, "f", [.data([1])])
        t.setXattrs(f, [ExtendedAttribute(name: "user.x", value: value(3000, 1))])
        try t.finish()
        let volume = try Ext4Volume(source: t, options: S.options)
        let image = try S.writeImage(volume, name: "noeainode")
        defer { try? FileManager.default.removeItem(atPath: image) }
        try S.assertClean(image)
        let (_, features) = try S.run(["dumpe2fs", "-h", image])
        XCTAssertFalse(features.contains("ea_inode"), features)
    }
}
