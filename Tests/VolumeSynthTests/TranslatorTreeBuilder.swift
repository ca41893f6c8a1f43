import Foundation
@testable import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// Builds Linux trees for the translator tests and writes them as CIM images.
struct TranslatorTreeBuilder {
    let root: String

    init(_ root: String) throws {
        self.root = root
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    func directory(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: root + "/" + path, withIntermediateDirectories: true)
    }

    func file(_ path: String, _ bytes: [UInt8]) throws {
        // FileManager.createFile syncs each file; thousands of them would take minutes.
        let fd = open(root + "/" + path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "open") }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress.map { $0 + done }, bytes.count - done, off_t(done)) }
            guard n > 0 else { throw CimError.io(path: path, offset: UInt64(done), errno: errno, what: "write") }
            done += n
        }
    }

    func pattern(_ count: Int, seed: UInt32) -> [UInt8] {
        var state = seed | 1
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 17; state ^= state << 5
            return UInt8(truncatingIfNeeded: state)
        }
    }

    func sparse(_ path: String, size: Int64) throws {
        let fd = open(root + "/" + path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "open") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "ftruncate") }
    }

    func symlink(_ target: String, _ path: String) throws {
        try FileManager.default.createSymbolicLink(atPath: root + "/" + path, withDestinationPath: target)
    }

    func hardlink(_ existing: String, _ path: String) throws {
        try FileManager.default.linkItem(atPath: root + "/" + existing, toPath: root + "/" + path)
    }

    func xattr(_ path: String, _ name: String, _ value: [UInt8]) throws {
        try WriterLinux.setXattr(root + "/" + path, name: name, value: value)
    }

    func times(_ path: String, access: (Int, Int), modification: (Int, Int)) {
        var times = [timespec(tv_sec: access.0, tv_nsec: access.1), timespec(tv_sec: modification.0, tv_nsec: modification.1)]
        utimensat(AT_FDCWD, root + "/" + path, &times, AT_SYMLINK_NOFOLLOW)
    }

    /// A tree with every kind of thing the mapping handles.
    func mixed() throws {
        try directory("Windows/System32/drivers")
        try directory("Users/Public/Desktop")
        try directory("empty")
        try file("empty.txt", [])
        try file("one", [0x41])
        for size in [4095, 4096, 4097, 65537, 1 << 20] {
            try file("Windows/System32/size\(size).bin", pattern(size, seed: UInt32(size)))
        }
        try file("Windows/System32/drivers/a.sys", pattern(10_000, seed: 7))
        try file("Windows/System32/drivers/same-as-a.sys", pattern(10_000, seed: 7))
        try sparse("Users/Public/hole.vhd", size: 64 << 20)
        try symlink("../Windows/System32/size4096.bin", "Users/link-rel")
        try symlink("/Windows/System32", "Users/link-abs")
        try hardlink("Windows/System32/size4097.bin", "Users/Public/Desktop/hard")
        try hardlink("Windows/System32/size4097.bin", "hard-at-root")
        try file("Users/Public/Desktop/with-streams.txt", Array("main".utf8))
        try xattr("Users/Public/Desktop/with-streams.txt", "user.Zone.Identifier", Array("[ZoneTransfer]\r\nZoneId=3\r\n".utf8))
        try xattr("Users/Public/Desktop/with-streams.txt", "user.empty", [])
        try xattr("Users/Public/Desktop/with-streams.txt", "trusted.ntfs_attrib", [0x21, 0, 0, 0])
        let sd: [UInt8] = [1, 0, 4, 0x80, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        try xattr("Users/Public/Desktop/with-streams.txt", "trusted.ntfs_acl", sd)
        try file("readonly.txt", Array("ro".utf8))
        try xattr("readonly.txt", "trusted.ntfs_attrib", [0x01, 0, 0, 0])
        for name in ["日本語.txt", "кириллица", "emoji_😀", "𝄞music", "naïve", "Ελληνικά", "עברית", "ﾌﾙ"] {
            try file(name, Array(name.utf8))
        }
        times("one", access: (-86_400 * 365, 123_456_789), modification: (2_000_000_000, 999_999_900))
        times("empty.txt", access: (4_102_444_800, 100), modification: (1, 0))
    }

    /// Writes the tree as an image named `name` in `directory`.
    func write(to directory: String, name: String = "layer", options: CimWriterOptions = CimWriterOptions()) throws -> CimImage {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/" + name + ".cim"
        _ = try CimWriter().createImage(from: root, imagePath: path, options: options)
        return try CimImage(path: path)
    }
}
