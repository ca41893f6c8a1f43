import Foundation
import TestFixtures
import XCTest
@testable import CimFS
@testable import VolumeSynth

/// The translator's bar: every image becomes a volume that `e2fsck -fn`
/// passes and that the kernel mounts showing exactly the image's tree.
final class CimExt4MountTests: XCTestCase {
    func testEveryFixtureExportsCleanAndMountsIdentical() throws {
        var images = 0
        for fixture in try FixtureLocator.cases() {
            let image = try CimImage(path: fixture.image)
            let compared = try MountedVolumeChecker.check(image: image)
            if MountedVolumeChecker.canMount { XCTAssertGreaterThan(compared, 1, fixture.image) }
            images += 1
        }
        XCTAssertGreaterThanOrEqual(images, 10)
    }

    func testMappingOptionsApply() throws {
        let image = try CimImage(path: try FixtureLocator.image("cim/small/small.cim"))
        try MountedVolumeChecker.check(image: image, mapping: MappingOptions(uid: 1000, gid: 100, directoryMask: 0o027, fileMask: 0o137))
    }

    func testSymlinkTargetsFromReparsePoints() throws {
        let image = try CimImage(path: try FixtureLocator.image("cim/sd_ea_reparse/meta.cim"))
        let source = try CimTreeSource(image: image)
        func target(_ path: String) throws -> String {
            String(decoding: try source.symlinkTarget(of: try image.lookup(path: path)), as: UTF8.self)
        }
        XCTAssertEqual(try target("\\link_rel"), "sd_admin.txt")
        XCTAssertEqual(try target("\\link_up"), "../outside/file")
        // C:\Windows\System32\notepad.exe from the root resolves inside the volume.
        XCTAssertEqual(try target("\\link_abs"), "Windows/System32/notepad.exe")
        XCTAssertEqual(try source.attributes(of: try image.lookup(path: "\\dirlink")).kind, .symbolicLink)
        // Other reparse tags stay files and keep their buffer.
        let custom = try image.lookup(path: "\\custom_tag")
        XCTAssertEqual(try source.attributes(of: custom).kind, .regularFile)
        XCTAssertTrue(try source.extendedAttributes(of: custom).contains { $0.name == "trusted.ntfs_reparse_data" })
    }

    func testAbsoluteTargetsBecomeVolumeRelative() {
        func buffer(_ target: String, tag: UInt32, relative: Bool) -> [UInt8] {
            let units = Array(target.utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
            let isSymlink = tag == CimFormat.ReparseTag.symlink
            var body: [UInt8] = []
            func u16(_ v: Int) { body += [UInt8(v & 0xFF), UInt8(v >> 8)] }
            u16(0); u16(units.count); u16(units.count); u16(units.count)
            if isSymlink { body += [relative ? 1 : 0, 0, 0, 0] }
            body += units + units
            return withUnsafeBytes(of: tag.littleEndian, Array.init) + [UInt8(body.count & 0xFF), UInt8(body.count >> 8), 0, 0] + body
        }
        let symlink = CimFormat.ReparseTag.symlink, junction = CimFormat.ReparseTag.mountPoint
        func t(_ target: String, _ tag: UInt32, relative: Bool = false, depth: Int) -> String? {
            ReparseLink.target(buffer: buffer(target, tag: tag, relative: relative), tag: tag, anchor: .linkDirectory(depth: depth)).map { String(decoding: $0, as: UTF8.self) }
        }
        XCTAssertEqual(t("\\??\\C:\\Program Files\\app.exe", symlink, depth: 2), "../../Program Files/app.exe")
        XCTAssertEqual(t("C:\\x", symlink, depth: 0), "x")
        XCTAssertEqual(t("\\x\\y", symlink, depth: 1), "../x/y")
        XCTAssertEqual(t("..\\a\\b", symlink, relative: true, depth: 3), "../a/b")
        XCTAssertEqual(t("\\??\\C:\\Users", junction, depth: 1), "../Users")
        XCTAssertEqual(t("\\??\\Volume{0e3c8a4a-1111-2222-3333-444455556666}\\data", junction, depth: 0), "data")
        XCTAssertEqual(t("\\??\\UNC\\server\\share\\f", symlink, depth: 1), "//server/share/f")
        XCTAssertEqual(t("\\??\\C:\\", junction, depth: 2), "../..")
        XCTAssertNil(ReparseLink.target(buffer: [1, 2, 3], tag: symlink, anchor: .linkDirectory(depth: 0)))
    }

    func testNamesThatLinuxCannotHoldGetStableReplacements() throws {
        let lone: [UInt16] = [0x61, 0xD800, 0x62]
        XCTAssertNil(WindowsName.direct(lone))
        let replaced = WindowsName.replacement(lone)
        XCTAssertEqual(replaced, WindowsName.replacement(lone), "deterministic")
        XCTAssertNotNil(String(validating: replaced, as: UTF8.self))
        XCTAssertLessThanOrEqual(replaced.count, 255)
        // 255 UTF-16 units of a 3-byte character: 765 bytes in UTF-8, too long for ext4.
        let long = [UInt16](repeating: 0x4E2D, count: 255)
        XCTAssertNil(WindowsName.direct(long))
        XCTAssertLessThanOrEqual(WindowsName.replacement(long).count, 255)
        XCTAssertNotEqual(WindowsName.replacement(long), WindowsName.replacement(Array(long.dropLast())))
        XCTAssertEqual(WindowsName.direct(Array("ok.txt".utf16)), Array("ok.txt".utf8))
        XCTAssertNil(WindowsName.direct(Array("a/b".utf16)))
        XCTAssertNil(WindowsName.direct(Array("..".utf16)))
    }

    func testFileTimeConversion() {
        XCTAssertEqual(WindowsTime.timestamp(116_444_736_000_000_000), Timestamp(seconds: 0, nanoseconds: 0))
        XCTAssertEqual(WindowsTime.timestamp(116_444_736_000_000_001), Timestamp(seconds: 0, nanoseconds: 100))
        XCTAssertEqual(WindowsTime.timestamp(116_444_735_999_999_999), Timestamp(seconds: -1, nanoseconds: 999_999_900))
        XCTAssertEqual(WindowsTime.timestamp(0), Timestamp(seconds: -11_644_473_600, nanoseconds: 0))
    }
}
