import Foundation
import XCTest
@testable import CimFS

/// A small, freshly made ext4 filesystem, loop-mounted read-write, to extract
/// into: the xattr limits are then ext4's (one 4 KiB block per inode, no
/// `ea_inode`), wherever /tmp lives.
final class ScratchExt4 {
    let imagePath: String
    let mountPoint: String

    init(in directory: String, megabytes: Int = 64) throws {
        guard MountedVolumeChecker.canMount else { throw XCTSkip("needs root and /dev/loop-control to loop-mount ext4") }
        imagePath = directory + "/scratch.ext4"
        mountPoint = directory + "/scratch"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let make = try MountedVolumeChecker.run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-b", "4096", "-I", "256", "-O", "^ea_inode",
                                                                        imagePath, "\(megabytes)M"])
        guard make.status == 0 else { throw CimError.invalidInput("mkfs.ext4 failed: \(make.output)") }
        let mount = try MountedVolumeChecker.run("/bin/mount", ["-t", "ext4", "-o", "loop", imagePath, mountPoint])
        guard mount.status == 0 else { throw CimError.invalidInput("mount -o loop \(imagePath) failed: \(mount.output)") }
    }

    func unmount() {
        _ = try? MountedVolumeChecker.run("/bin/umount", [mountPoint])
    }
}
