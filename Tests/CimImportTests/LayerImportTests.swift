import Foundation
import XCTest
@testable import CimImport
import CimFS
import VolumeSynth
#if canImport(Glibc)
import Glibc
#endif

/// Layer tars and OCI layouts built by Python's tarfile (PAX records as
/// go-winio writes them), gzip and zstd, imported into forked CIMs; each
/// layer read back through the reader, verified, exported with `--root
/// '\Files'`, fscked, kernel-mounted and compared with what the layers say.
final class LayerImportTests: XCTestCase {
    static func fileTime(_ seconds: Int64, _ ticks: UInt64 = 0) -> UInt64 {
        UInt64(seconds + CimFileTime.epochDifference) * 10_000_000 + ticks
    }

    static let sdA: [UInt8] = [1, 0, 4, 0x80, 20] + [UInt8](repeating: 0, count: 15) + [1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]
    static let nullSD: [UInt8] = [1, 0, 4, 0x80] + [UInt8](repeating: 0, count: 16)

    struct Reparse {
        var tag: UInt32
        var substitute: String
        var printName: String
        var flags: UInt32?

        init?(_ bytes: [UInt8]) {
            func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
            func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
            guard bytes.count >= 16 else { return nil }
            tag = u32(0)
            let pathStart = tag == CimFormat.ReparseTag.symlink ? 20 : 16
            flags = tag == CimFormat.ReparseTag.symlink ? u32(16) : nil
            func name(_ offset: Int, _ length: Int) -> String {
                let raw = Array(bytes[(pathStart + offset)..<(pathStart + offset + length)])
                return String(decoding: stride(from: 0, to: raw.count, by: 2).map { UInt16(raw[$0]) | UInt16(raw[$0 + 1]) << 8 }, as: UTF16.self)
            }
            substitute = name(u16(8), u16(10))
            printName = name(u16(12), u16(14))
        }
    }

    func testThreeLayerImageFromAnOCILayout() throws {
        let fixtures = try ImportTestSupport.makeFixtures()
        defer { try? FileManager.default.removeItem(atPath: fixtures) }
        let destination = fixtures + "/images"
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        let big = try XCTUnwrap(ImportTestSupport.contents(fixtures + "/big.bin"))
        let readme = try XCTUnwrap(ImportTestSupport.contents(fixtures + "/readme.bin"))
        let new = try XCTUnwrap(ImportTestSupport.contents(fixtures + "/new.bin"))

        let importer = OCIImageImporter(argument: fixtures + "/oci:ltsc2022")
        XCTAssertEqual(importer.reference, "ltsc2022")
        let layers = try importer.importImage(into: destination)
        XCTAssertEqual(layers.count, 3)
        XCTAssertEqual(layers.map(\.imported), [true, true, true])
        XCTAssertEqual(layers.compactMap(\.summary?.compression), ["gzip", "zstd", "none"])
        XCTAssertTrue(layers[1].summary?.warnings.contains { $0.contains("SOFTWARE_DELTA") && $0.contains("not merged") } ?? false,
                      "\(layers[1].summary?.warnings ?? [])")
        XCTAssertEqual(layers[0].summary?.warnings ?? ["?"], [])

        // Each layer: reader, verify, ext4 with --root '\Files'.
        let images = try layers.map { try CimImage(path: $0.imagePath) }
        for image in images {
            let report = image.verify()
            XCTAssertTrue(report.isClean, "\(image.path): \(report.problems)")
        }
        XCTAssertEqual(images[1].parentRegionSets, [images[0].regionSet])
        XCTAssertEqual(images[2].parentRegionSets, [images[0].regionSet, images[1].regionSet])

        // Base layer: metadata from the PAX records.
        let base = images[0]
        let readmeID = try base.lookup(path: "\\Files\\readme.txt")
        let readmeEntry = try base.entry(readmeID)
        XCTAssertEqual(try base.data("\\Files\\readme.txt"), readme)
        XCTAssertEqual(readmeEntry.attributes, CimFormat.Attribute.readOnly | CimFormat.Attribute.archive)
        XCTAssertEqual(readmeEntry.lastWriteTime, Self.fileTime(1_700_000_000, 1_234_567))
        XCTAssertEqual(readmeEntry.lastAccessTime, Self.fileTime(1_700_000_100, 5_000_000))
        XCTAssertEqual(readmeEntry.changeTime, Self.fileTime(1_700_000_200, 2_500_000))
        XCTAssertEqual(readmeEntry.creationTime, Self.fileTime(1_600_000_000, 5_000_000))
        XCTAssertEqual(try base.securityDescriptor(of: readmeID), Self.sdA)
        let nosd = try base.lookup(path: "\\Files\\nosd.txt")
        XCTAssertEqual(try base.securityDescriptor(of: nosd), Self.nullSD)
        XCTAssertEqual(try base.entry(nosd).creationTime, Self.fileTime(1_700_000_000), "no creation time: the modification time")
        // EAs: sorted by record name, each entry padded to 4, the last with next offset 0.
        let ea: [UInt8] = [16, 0, 0, 0, 0, 1, 3, 0] + Array("B".utf8) + [0, 1, 2, 3, 0, 0, 0]
            + [0, 0, 0, 0, 0, 8, 5, 0] + Array("USER.EA1".utf8) + [0] + Array("hello".utf8) + [0, 0]
        XCTAssertEqual(try base.extendedAttributes(of: try base.lookup(path: "\\Files\\ea.txt")), ea)
        // Alternate streams in both name forms.
        XCTAssertEqual(try base.streamData("\\Files\\ads.txt", stream: "Zone.Identifier"), Array("[ZoneTransfer]\r\nZoneId=3\r\n".utf8))
        XCTAssertEqual(try base.streamData("\\Files\\ads.txt", stream: "second"), Array("second stream".utf8))
        XCTAssertEqual(try base.data("\\Files\\ads.txt"), Array("main stream".utf8))
        // Reparse-point attribute only where there is a reparse point.
        let hidden = try base.entry(try base.lookup(path: "\\Files\\hidden.sys"))
        XCTAssertEqual(hidden.attributes, CimFormat.Attribute.hidden | CimFormat.Attribute.system)
        // Symlinks and mount points.
        let relative = try XCTUnwrap(Reparse(try XCTUnwrap(try base.reparseData(of: try base.lookup(path: "\\Files\\link_rel")))))
        XCTAssertEqual(relative.tag, CimFormat.ReparseTag.symlink)
        XCTAssertEqual(relative.flags, 1)
        XCTAssertEqual(relative.substitute, "readme.txt")
        let absoluteID = try base.lookup(path: "\\Files\\link_abs")
        let absolute = try XCTUnwrap(Reparse(try XCTUnwrap(try base.reparseData(of: absoluteID))))
        XCTAssertEqual(absolute.flags, 0)
        XCTAssertEqual(absolute.substitute, "\\??\\C:\\Windows\\System32")
        XCTAssertEqual(absolute.printName, "C:\\Windows\\System32")
        XCTAssertTrue(try base.entry(absoluteID).isDirectory, "a directory symlink (FILE_ATTRIBUTE_DIRECTORY) is a directory")
        XCTAssertNotEqual(try base.entry(absoluteID).attributes & CimFormat.Attribute.reparsePoint, 0)
        let junctionID = try base.lookup(path: "\\Files\\junction")
        let junction = try XCTUnwrap(Reparse(try XCTUnwrap(try base.reparseData(of: junctionID))))
        XCTAssertEqual(junction.tag, CimFormat.ReparseTag.mountPoint)
        XCTAssertEqual(junction.substitute, "\\??\\C:\\Windows")
        XCTAssertEqual(try base.entry(junctionID).reparseTag, CimFormat.ReparseTag.mountPoint)
        // Hard links, the base-layer layout file and hive links (case-insensitive hive names).
        XCTAssertEqual(try base.lookup(path: "\\Files\\hard.txt"), readmeID)
        XCTAssertEqual(try base.data("\\layout"), Array("vhd-with-hives\n".utf8))
        for (config, hive) in [("SYSTEM", "SYSTEM_BASE"), ("Software", "SOFTWARE_BASE"), ("SAM", "SAM_BASE"),
                               ("SECURITY", "SECURITY_BASE"), ("DEFAULT", "DEFAULTUSER_BASE")] {
            XCTAssertEqual(try base.lookup(path: "\\Hives\\\(hive)"), try base.lookup(path: "\\Files\\Windows\\System32\\config\\\(config)"), hive)
        }
        XCTAssertEqual(try base.data("\\UtilityVM\\Files\\uvm.txt"), Array("utility vm".utf8))
        // Zero runs of a file become holes in the region file.
        XCTAssertEqual(try base.data("\\Files\\sparse.bin"), [UInt8](repeating: 0, count: 2 << 20) + Array("end".utf8))
        XCTAssertEqual(try base.entry(try base.lookup(path: "\\Files\\sparse.bin")).attributes, CimFormat.Attribute.archive | CimFormat.Attribute.sparseFile)
        let baseRegions = try FileManager.default.contentsOfDirectory(atPath: destination).filter { $0.hasPrefix("region_\(base.regionSet)_") }
        let allocated = baseRegions.compactMap { ImportTestSupport.lstat(destination + "/" + $0) }.reduce(0) { $0 + Int($1.st_blocks) * 512 }
        let apparent = baseRegions.compactMap { ImportTestSupport.lstat(destination + "/" + $0) }.reduce(0) { $0 + Int($1.st_size) }
        XCTAssertLessThan(allocated, apparent - (1 << 20), "the 2 MiB of zeros take no disk space")

        // Layer 2: whiteouts, a new file, a hard link into the parent, a delta hive.
        let second = images[1]
        XCTAssertFalse(second.exists("\\Files\\gone.txt"))
        XCTAssertFalse(second.exists("\\Files\\olddir"))
        XCTAssertFalse(second.exists("\\Files\\olddir\\sub\\b.txt"))
        XCTAssertEqual(try second.data("\\Files\\new.txt"), new)
        XCTAssertEqual(try second.lookup(path: "\\Files\\crosslink.bin"), try second.lookup(path: "\\Files\\big.bin"))
        XCTAssertEqual(try second.data("\\Files\\crosslink.bin"), big)
        XCTAssertEqual(try second.data("\\Hives\\SOFTWARE_DELTA"), Array("delta hive".utf8))
        XCTAssertEqual(try second.lookup(path: "\\Hives\\SYSTEM_BASE"), try second.lookup(path: "\\Files\\Windows\\System32\\config\\SYSTEM"),
                       "the parent's base hives stay")
        XCTAssertEqual(try second.data("\\layout"), Array("vhd-with-hives\n".utf8))

        // Layer 3: re-creation after a whiteout, a replaced file (its old hard link keeps the old data).
        let third = images[2]
        XCTAssertEqual(try third.data("\\Files\\olddir\\c.txt"), Array("c again".utf8))
        XCTAssertFalse(third.exists("\\Files\\olddir\\a.txt"))
        XCTAssertEqual(try third.data("\\Files\\readme.txt"), Array("readme of layer 3\n".utf8))
        XCTAssertEqual(try third.data("\\Files\\hard.txt"), readme)

        // The forks reference the parents' data: big.bin's bytes live only in the base's regions.
        let baseRegionCount = base.regions.count
        for image in [second, third] {
            let stream = try image.entry(try image.lookup(path: "\\Files\\big.bin")).defaultStream
            XCTAssertLessThan(Int(stream.dataOffset >> 48), baseRegionCount, "\(image.path): big.bin is read from the base's regions")
        }
        func ownRegionBytes(_ image: CimImage) throws -> [[UInt8]] {
            let prefix = "region_\(image.regionSet)_"
            return try FileManager.default.contentsOfDirectory(atPath: destination).filter { $0.hasPrefix(prefix) }
                .map { try XCTUnwrap(ImportTestSupport.contents(destination + "/" + $0)) }
        }
        func contains(_ haystack: [UInt8], _ needle: ArraySlice<UInt8>) -> Bool {
            Data(haystack).range(of: Data(needle)) != nil
        }
        let probes = [big[0..<64], big[150_000..<150_064], big[(big.count - 64)...]]
        for image in [second, third] {
            let regions = try ownRegionBytes(image)
            XCTAssertFalse(regions.isEmpty)
            for probe in probes { XCTAssertFalse(regions.contains { contains($0, probe) }, "\(image.path): the parent's data was copied") }
        }
        XCTAssertTrue(try ownRegionBytes(second).contains { contains($0, new[100..<164]) }, "layer 2's own data is in its own regions")
        XCTAssertTrue(try ownRegionBytes(images[0]).contains { contains($0, big[150_000..<150_064]) })

        // The container filesystem as ext4: --root '\Files'.
        let baseTree = ["Windows", "Windows/System32", "Windows/System32/config", "Windows/System32/config/DEFAULT",
                        "Windows/System32/config/SAM", "Windows/System32/config/SECURITY", "Windows/System32/config/SYSTEM",
                        "Windows/System32/config/Software", "ads.txt", "big.bin", "ea.txt", "gone.txt", "hard.txt", "hidden.sys",
                        "junction", "link_abs", "link_rel", "nosd.txt", "olddir", "olddir/a.txt", "olddir/sub", "olddir/sub/b.txt", "readme.txt",
                        "sparse.bin"]
        let secondTree = (baseTree.filter { $0 != "gone.txt" && !$0.hasPrefix("olddir") } + ["new.txt", "crosslink.bin"]).sorted()
        let thirdTree = (secondTree + ["olddir", "olddir/c.txt"]).sorted()
        for (image, expected) in zip(images, [baseTree, secondTree, thirdTree]) {
            try ImportTestSupport.withVolume(image, root: "\\Files") { mount in
                guard let mount else { return }
                XCTAssertEqual(try ImportTestSupport.tree(mount), expected, image.path)
                XCTAssertEqual(ImportTestSupport.contents(mount + "/big.bin"), big)
                XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: mount + "/link_rel"), "readme.txt")
                XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: mount + "/link_abs"), "Windows/System32",
                               "absolute targets resolve inside the volume whose root is \\Files")
                XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: mount + "/junction"), "Windows")
                // Link counts count only names inside the root: config\SYSTEM's Hives name is outside.
                XCTAssertEqual(ImportTestSupport.lstat(mount + "/Windows/System32/config/SYSTEM")?.st_nlink, 1)
                XCTAssertEqual(try Self.xattr(mount + "/ads.txt", "trusted.ntfs_attrib"), [0x20, 0, 0, 0])
                XCTAssertEqual(try Self.xattr(mount + "/ads.txt", "user.Zone.Identifier"), Array("[ZoneTransfer]\r\nZoneId=3\r\n".utf8))
            }
        }
        try ImportTestSupport.withVolume(base, root: "\\Files") { mount in
            guard let mount else { return }
            XCTAssertEqual(ImportTestSupport.lstat(mount + "/readme.txt")?.st_nlink, 2)
            XCTAssertEqual(ImportTestSupport.contents(mount + "/hard.txt"), readme)
            XCTAssertEqual(ImportTestSupport.lstat(mount + "/readme.txt").map { $0.st_mode & 0o777 }, 0o444, "read-only attribute")
        }
        try ImportTestSupport.withVolume(second, root: "\\Files") { mount in
            guard let mount else { return }
            XCTAssertEqual(ImportTestSupport.lstat(mount + "/big.bin")?.st_nlink, 2)
            XCTAssertEqual(ImportTestSupport.contents(mount + "/new.txt"), new)
        }
        try ImportTestSupport.withVolume(third, root: "\\Files") { mount in
            guard let mount else { return }
            XCTAssertEqual(ImportTestSupport.lstat(mount + "/readme.txt")?.st_nlink, 1)
            XCTAssertEqual(ImportTestSupport.lstat(mount + "/hard.txt")?.st_nlink, 1)
            XCTAssertEqual(ImportTestSupport.contents(mount + "/hard.txt"), readme)
            XCTAssertEqual(ImportTestSupport.contents(mount + "/olddir/c.txt"), Array("c again".utf8))
        }
        // The whole image (no --root) is a clean volume too.
        try ImportTestSupport.withVolume(third, root: nil) { mount in
            guard let mount else { return }
            XCTAssertEqual(ImportTestSupport.contents(mount + "/layout"), Array("vhd-with-hives\n".utf8))
            XCTAssertEqual(ImportTestSupport.lstat(mount + "/Files/Windows/System32/config/SYSTEM")?.st_nlink, 2)
        }

        // Docker media types, a foreign base layer whose blob is present, a manifest list: the same chain.
        let dockerDestination = fixtures + "/docker-images"
        try FileManager.default.createDirectory(atPath: dockerDestination, withIntermediateDirectories: true)
        let docker = try OCIImageImporter(argument: fixtures + "/docker").importImage(into: dockerDestination)
        XCTAssertEqual(docker.map { ($0.imagePath as NSString).lastPathComponent }, layers.map { ($0.imagePath as NSString).lastPathComponent })
        XCTAssertEqual(docker.map(\.imported), [true, true, true])
        XCTAssertTrue(try CimImage(path: docker[2].imagePath).verify().isClean)

        // Importing again reuses every layer; nothing new is written.
        let before = ImportTestSupport.listing(destination)
        let again = try importer.importImage(into: destination)
        XCTAssertEqual(again.map(\.imported), [false, false, false])
        XCTAssertEqual(again.map(\.imagePath), layers.map(\.imagePath))
        XCTAssertEqual(ImportTestSupport.listing(destination), before)
        // One warning for the image naming its unmerged hives, also when every layer was reused.
        for result in [layers, again] {
            let warning = try XCTUnwrap(try OCIImageImporter.unmergedHivesWarning(layers: result))
            XCTAssertTrue(warning.contains("SOFTWARE_DELTA") && warning.contains("not merged") && warning.hasPrefix(layers[2].imagePath), warning)
        }
        XCTAssertNil(try OCIImageImporter.unmergedHivesWarning(layers: Array(layers.prefix(1))))
    }

    func testImportLayerCommandFromStdinAndVerify() throws {
        let fixtures = try ImportTestSupport.makeFixtures()
        defer { try? FileManager.default.removeItem(atPath: fixtures) }
        let binary = Self.binary
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw XCTSkip("cimnbd binary not built") }
        let out = fixtures + "/cli"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let base = try ImportTestSupport.run("/bin/sh", ["-c", "'\(binary)' cim import-layer - '\(out)/base.cim' < '\(fixtures)/base.tar.gz'"])
        XCTAssertEqual(base.status, 0, base.output)
        XCTAssertTrue(base.output.contains("gzip input"), base.output)
        let child = try ImportTestSupport.run(binary, ["cim", "import-layer", fixtures + "/layer2.tar.zst", out + "/child.cim", "--parent", out + "/base.cim"])
        XCTAssertEqual(child.status, 0, child.output)
        XCTAssertTrue(child.output.contains("warning: ") && child.output.contains("SOFTWARE_DELTA"), child.output)
        for name in ["base.cim", "child.cim"] {
            let verify = try ImportTestSupport.run(binary, ["cim", "verify", out + "/" + name])
            XCTAssertEqual(verify.status, 0, verify.output)
        }
        let export = try ImportTestSupport.run(binary, ["export", out + "/child.cim", "-o", out + "/child.ext4", "--root", "\\Files"])
        XCTAssertEqual(export.status, 0, export.output)
        let fsck = try ImportTestSupport.run("/usr/sbin/e2fsck", ["-fn", out + "/child.ext4"])
        XCTAssertEqual(fsck.status, 0, fsck.output)
        let listing = try ImportTestSupport.run("/usr/sbin/debugfs", ["-R", "ls /", out + "/child.ext4"])
        XCTAssertTrue(listing.output.contains("new.txt") && !listing.output.contains("Hives"), listing.output)
        let missing = try ImportTestSupport.run(binary, ["export", out + "/child.cim", "-o", out + "/x.ext4", "--root", "\\Nope"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.output.contains("--root \\Nope: no such directory"), missing.output)
        let image = try ImportTestSupport.run(binary, ["image", "import", fixtures + "/oci", out])
        XCTAssertEqual(image.status, 0, image.output)
        let paths = image.output.split(separator: "\n").filter { $0.hasPrefix(out + "/") && $0.hasSuffix(".cim") }
        XCTAssertEqual(paths.count, 3, image.output)
        XCTAssertEqual(image.output.split(separator: "\n").filter { $0.contains("warning: ") && $0.contains("registry deltas SOFTWARE_DELTA") }.count, 1, image.output)
        XCTAssertTrue(image.output.contains("3 layers: 3 imported, 0 already in"), image.output)
        let again = try ImportTestSupport.run(binary, ["image", "import", fixtures + "/oci", out])
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssertTrue(again.output.contains("3 layers: 0 imported, 3 already in"), again.output)
        XCTAssertEqual(again.output.split(separator: "\n").filter { $0.contains("warning: ") && $0.contains("SOFTWARE_DELTA") }.count, 1, again.output)
        XCTAssertFalse(again.output.contains("\r"), "no progress when not on a terminal: \(again.output)")

        // Progress on a terminal (script gives the command one), none otherwise; a summary line either way.
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else { return }
        let tty = try ImportTestSupport.run("/usr/bin/script", ["-qec", "'\(binary)' cim import-msix '\(fixtures)/package.msix' '\(out)/tty.cim'", "/dev/null"])
        XCTAssertEqual(tty.status, 0, tty.output)
        XCTAssertTrue(tty.output.contains("\r\u{1B}[Kimport-msix: ") && tty.output.contains(" entries"), tty.output)
        XCTAssertTrue(tty.output.contains("\\msix\\putty_1.0.1.0_x64__ynj0a7qyfqv8c (7 files, "), tty.output)
        let plain = try ImportTestSupport.run(binary, ["cim", "import-msix", fixtures + "/package.msix", out + "/plain.cim"])
        XCTAssertEqual(plain.status, 0, plain.output)
        XCTAssertFalse(plain.output.contains("\r"), plain.output)
        XCTAssertTrue(plain.output.hasPrefix(out + "/plain.cim: \\msix\\putty_1.0.1.0_x64__ynj0a7qyfqv8c (7 files, "), plain.output)
    }

    /// One xattr value through getfattr (attr package), hex-decoded.
    static func xattr(_ path: String, _ name: String) throws -> [UInt8] {
        let result = try ImportTestSupport.run("/usr/bin/getfattr", ["--absolute-names", "-e", "hex", "-n", name, path])
        guard let line = result.output.split(separator: "\n").first(where: { $0.hasPrefix(name + "=0x") }) else { return [] }
        let hex = Array(line.dropFirst(name.count + 3))
        return stride(from: 0, to: hex.count - 1, by: 2).compactMap { UInt8(String(hex[$0...$0 + 1]), radix: 16) }
    }

    static var binary: String {
        let products = Bundle.allBundles.first { $0.bundlePath.hasSuffix(".xctest") }?.bundleURL.deletingLastPathComponent()
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return products.appendingPathComponent("cimnbd").path
    }

    /// Every bad input: one clear error naming the entry, and nothing left in the destination.
    func testBadInputsFailCleanly() throws {
        let fixtures = try ImportTestSupport.makeFixtures()
        defer { try? FileManager.default.removeItem(atPath: fixtures) }
        let destination = fixtures + "/bad"
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        func expectFailure(_ layer: String, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
            do {
                try LayerImporter.importLayer(from: try FileByteSource(path: fixtures + "/" + layer), to: destination + "/out.cim")
                XCTFail("\(layer) was imported", file: file, line: line)
            } catch {
                let text = "\(error)"
                for fragment in fragments { XCTAssertTrue(text.contains(fragment), "\(layer): \(text)", file: file, line: line) }
                XCTAssertFalse(text.contains("\n"), file: file, line: line)
            }
            XCTAssertEqual(ImportTestSupport.listing(destination), [], "\(layer) left files behind", file: file, line: line)
        }
        expectFailure("truncated.tar.gz", ["truncated", "gzip"])
        expectFailure("dotdot.tar", ["Files/../../evil.txt", "\"..\""])
        expectFailure("absolute.tar", ["/Files/abs.txt", "absolute"])
        expectFailure("missinglink.tar", ["Files/link.txt", "Files/nothere.txt", "does not exist"])
        expectFailure("case.tar", ["Files/report.TXT", "differs only in case", "Report.txt"])
        expectFailure("opaque.tar", ["Files/.wh..wh..opq", "opaque"])
        expectFailure("badsddl.tar", ["Files/bad.txt", "MSWINDOWS.sd", "DU", "domain"])

        do {
            _ = try OCIImageImporter(argument: fixtures + "/oci-corrupt").importImage(into: destination)
            XCTFail("a corrupt blob was imported")
        } catch {
            let text = "\(error)"
            XCTAssertTrue(text.contains("digest mismatch"), text)
            XCTAssertTrue(text.contains("blobs/sha256/"), text)
        }
        // The layers below the corrupt one are complete and stay (they are reused next time); nothing partial.
        let left = ImportTestSupport.listing(destination)
        XCTAssertEqual(left.filter { $0.hasSuffix(".cim") }.count, 2, "\(left)")
        XCTAssertTrue(left.allSatisfy { !$0.hasPrefix(".") }, "temporary files left: \(left)")
    }
}
