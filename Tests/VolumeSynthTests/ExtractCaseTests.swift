import Foundation
import XCTest
@testable import CimFS
@testable import VolumeSynth

/// The five things `cim extract` once stopped at, each as an image of its
/// own: extracted into a real (loop-mounted) ext4 filesystem, and exported
/// through the translator (e2fsck, kernel mount, compared with the mapping).
/// Both must show the same tree, because both use `CimLinuxMapping`.
final class ExtractCaseTests: XCTestCase {
    var work = ""
    var scratch: ScratchExt4?

    override func setUpWithError() throws {
        work = try MountedVolumeChecker.temporaryDirectory("extract-case")
    }

    override func tearDownWithError() throws {
        scratch?.unmount()
        _ = try? MountedVolumeChecker.run("/bin/rm", ["-rf", work])
    }

    /// Writes `tree` with `options`, extracts it onto a scratch ext4 and checks the translator's volume.
    func extractAndTranslate(_ tree: TranslatorTreeBuilder, options: CimWriterOptions = CimWriterOptions(),
                             file: StaticString = #filePath, line: UInt = #line) throws -> (image: CimImage, out: String, summary: CimExtractSummary, source: CimTreeSource) {
        let image = try tree.write(to: work + "/images", options: options)
        let scratch = try ScratchExt4(in: work)
        self.scratch = scratch
        let out = scratch.mountPoint + "/out"
        let summary = try CimExtractor().extract(imagePath: image.path, to: out)
        try MountedVolumeChecker.check(image: image, file: file, line: line)
        let source = try CimTreeSource(image: image)
        try assertSameTree(extracted: out, source: source, file: file, line: line)
        return (image, out, summary, source)
    }

    /// The extracted tree has the translator's names, kinds, relative symlink targets and
    /// xattrs (except those the extraction reports as left out).
    func assertSameTree(extracted root: String, source: CimTreeSource, file: StaticString, line: UInt) throws {
        var queue: [(UInt32, String)] = [(source.rootNode, root)]
        while let (node, path) = queue.popLast() {
            let attributes = try source.attributes(of: node)
            let st = try WriterLinux.stat(path)
            switch attributes.kind {
            case .directory:
                XCTAssertTrue(st.isDirectory, "\(path) should be a directory", file: file, line: line)
                let children = try source.children(of: node)
                let names = Set(try FileManager.default.contentsOfDirectory(atPath: path))
                XCTAssertEqual(names, Set(children.map { String(decoding: $0.name, as: UTF8.self) }), "\(path): entries", file: file, line: line)
                for child in children { queue.append((child.node, path + "/" + String(decoding: child.name, as: UTF8.self))) }
            case .regularFile:
                XCTAssertTrue(st.isRegular, "\(path) should be a file", file: file, line: line)
                XCTAssertEqual(st.size, attributes.size, "\(path): size", file: file, line: line)
            case .symbolicLink:
                XCTAssertTrue(st.isSymlink, "\(path) should be a symlink", file: file, line: line)
                let target = try WriterSourceTree.readLink(path)
                let volumeTarget = String(decoding: try source.symlinkTarget(of: node), as: UTF8.self)
                // Absolute Windows targets: /x in the tree, x relative to the link in the volume.
                if !target.hasPrefix("/") { XCTAssertEqual(target, volumeTarget, "\(path): target", file: file, line: line) }
            }
            let present = Set(try WriterLinux.listXattrs(path).filter { $0.hasPrefix("user.") || $0.hasPrefix("trusted.") })
            let expected = try source.extendedAttributes(of: node)
            XCTAssertTrue(present.isSubset(of: Set(expected.map(\.name))), "\(path): xattrs \(present) beyond \(expected.map(\.name))", file: file, line: line)
            for attribute in expected where present.contains(attribute.name) {
                XCTAssertEqual(try WriterLinux.getXattr(path, name: attribute.name), attribute.value, "\(path): \(attribute.name)", file: file, line: line)
            }
        }
    }

    func testHundredKilobyteStreamIsLeftOutTheRestRestored() throws {
        let tree = try TranslatorTreeBuilder(work + "/tree")
        try tree.file("download.zip", Array("zip".utf8))
        let zone = Array("[ZoneTransfer]\r\nZoneId=3\r\n".utf8)
        var options = CimWriterOptions()
        options.sourceOverrides.streams["download.zip"] = [(Array("Zone.Identifier".utf16), zone),
                                                           (Array("thumbnail".utf16), tree.pattern(100_000, seed: 3))]
        let (_, out, summary, source) = try extractAndTranslate(tree, options: options)
        XCTAssertEqual(try WriterLinux.getXattr(out + "/download.zip", name: "user.Zone.Identifier"), zone)
        XCTAssertEqual(try WriterTestRead.file(out + "/download.zip"), Array("zip".utf8))
        XCTAssertFalse(try WriterLinux.listXattrs(out + "/download.zip").contains("user.thumbnail"))
        XCTAssertEqual(summary.attributesLeftOut, 1)
        XCTAssertEqual(summary.warnings, [out + "/download.zip: extended attributes left out: user.thumbnail (100000 bytes, over Linux's 64 KiB limit)"])
        XCTAssertFalse(summary.isComplete)
        XCTAssertTrue(source.warnings.contains { $0.contains("left out: user.thumbnail (100000 bytes") }, "\(source.warnings)")
    }

    func testStreamPastTheXattrSpaceIsLeftOutTheRestRestored() throws {
        let tree = try TranslatorTreeBuilder(work + "/tree")
        try tree.file("report.docx", Array("docx".utf8))
        var options = CimWriterOptions()
        let small = tree.pattern(1000, seed: 5), full = tree.pattern(65536, seed: 6), after = Array("after".utf8)
        options.sourceOverrides.streams["report.docx"] = [(Array("a-small".utf16), small), (Array("b-full".utf16), full),
                                                          (Array("c-after".utf16), after)]
        let (_, out, summary, source) = try extractAndTranslate(tree, options: options)
        let path = out + "/report.docx"
        XCTAssertEqual(try WriterLinux.getXattr(path, name: "user.a-small"), small)
        XCTAssertEqual(try WriterLinux.getXattr(path, name: "user.c-after"), after)
        XCTAssertFalse(try WriterLinux.listXattrs(path).contains("user.b-full"))
        XCTAssertEqual(summary.attributesLeftOut, 1)
        XCTAssertEqual(summary.warnings.count, 1)
        XCTAssertTrue(summary.warnings[0].hasPrefix(path + ": extended attributes left out: user.b-full (65536 bytes, refused by the filesystem: "), summary.warnings[0])
        // The translator's volume has ea_inode, so it holds the value (and the mounted check compared it).
        let (_, warnings) = try CimVolumeBuilder.ext4(image: source.image, guid: .zero, mapping: MappingOptions())
        XCTAssertEqual(warnings, [])
        XCTAssertEqual(try source.extendedAttributes(of: try source.image.lookup(path: "report.docx")).map(\.name),
                       ["user.a-small", "user.b-full", "user.c-after"])
    }

    func testNameOf255UnitsGetsTheTranslatorsReplacement() throws {
        let tree = try TranslatorTreeBuilder(work + "/tree")
        try tree.file("long", Array("long name".utf8))
        let units = [UInt16](repeating: 0x00E9, count: 255)  // é: 510 bytes in UTF-8
        var options = CimWriterOptions()
        options.sourceOverrides.names["long"] = units
        let (image, out, summary, source) = try extractAndTranslate(tree, options: options)
        XCTAssertEqual(try image.children(of: image.rootID).map(\.nameUnits), [units])
        let replacement = String(decoding: WindowsName.replacement(units), as: UTF8.self)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out), [replacement])
        XCTAssertEqual(try WriterTestRead.file(out + "/" + replacement), Array("long name".utf8))
        XCTAssertEqual(try WriterLinux.getXattr(out + "/" + replacement, name: "trusted.cimnbd.name"),
                       units.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })
        XCTAssertEqual(summary.namesChanged, 1)
        XCTAssertEqual(summary.attributesLeftOut, 0)
        XCTAssertEqual(summary.warnings.count, 1)
        // `cim create` takes the original name back from trusted.cimnbd.name.
        try CimWriter().createImage(from: out, imagePath: work + "/images/again.cim")
        let recreated = try CimImage(path: work + "/images/again.cim")
        XCTAssertEqual(try recreated.children(of: recreated.rootID).map(\.nameUnits), [units])
        XCTAssertEqual(try source.children(of: image.rootID).map(\.name), [Array(replacement.utf8)])
    }

    func testDirectorySymlinksBecomeSymlinks() throws {
        let tree = try TranslatorTreeBuilder(work + "/tree")
        try tree.directory("Program Files/App")
        try tree.file("Program Files/App/app.exe", Array("MZ".utf8))
        for (name, target) in [("relative-link", "Program Files/App"), ("absolute-link", "/Program Files"), ("link-with-stream", "Program Files")] {
            try tree.directory(name)
            try tree.xattr(name, "trusted.ntfs_reparse_data", WriterSymlinkReparse.buffer(target: target))
        }
        try tree.xattr("link-with-stream", "user.note", Array("a stream on a directory link".utf8))
        let (image, out, summary, source) = try extractAndTranslate(tree)
        XCTAssertTrue(try image.entry(try image.lookup(path: "relative-link")).isDirectory, "Windows' mklink /D: a directory")
        XCTAssertEqual(try WriterSourceTree.readLink(out + "/relative-link"), "Program Files/App")
        XCTAssertEqual(try WriterSourceTree.readLink(out + "/absolute-link"), "/Program Files")
        XCTAssertEqual(try WriterTestRead.file(out + "/relative-link/app.exe"), Array("MZ".utf8))
        // A plain link needs no copy of its buffer; the attribute word says it is a directory link.
        XCTAssertEqual(try WriterLinux.listXattrs(out + "/relative-link"), ["trusted.ntfs_attrib"])
        XCTAssertEqual(try WriterLinux.getXattr(out + "/relative-link", name: "trusted.ntfs_attrib"), [0x10, 0, 0, 0])
        // And `cim create` makes directory links of them again, buffers unchanged.
        let again = try CimWriter().createImage(from: out, imagePath: work + "/images/again.cim")
        XCTAssertEqual(again.skipped, [])
        let recreated = try CimImage(path: work + "/images/again.cim")
        for name in ["relative-link", "absolute-link", "link-with-stream"] {
            let before = try image.lookup(path: name), after = try recreated.lookup(path: name)
            XCTAssertTrue(try recreated.entry(after).isDirectory, name)
            XCTAssertEqual(try recreated.reparseData(of: after), try image.reparseData(of: before), name)
            XCTAssertEqual(try recreated.entry(after).attributes, try image.entry(before).attributes, name)
        }
        XCTAssertEqual(summary.symlinks, 3)
        XCTAssertEqual(summary.directories, 2)
        // Linux symlinks take no user.* xattrs: the stream is left out, and said so.
        XCTAssertEqual(summary.attributesLeftOut, 1)
        XCTAssertEqual(summary.warnings, [out + "/link-with-stream: extended attributes left out: user.note "
                                          + "(Linux allows user.* xattrs on files and directories only, this is a symlink)"])
        XCTAssertTrue(source.warnings.contains { $0.hasSuffix("left out: user.note (Linux allows user.* xattrs on files and directories only, this is a symlink)") },
                      "\(source.warnings)")
        for name in ["relative-link", "absolute-link", "link-with-stream"] {
            XCTAssertEqual(try source.attributes(of: try image.lookup(path: name)).kind, .symbolicLink, name)
        }
        XCTAssertEqual(String(decoding: try source.symlinkTarget(of: try image.lookup(path: "absolute-link")), as: UTF8.self), "Program Files")
    }

    func testDirectoryJunctionsBecomeSymlinks() throws {
        let tree = try TranslatorTreeBuilder(work + "/tree")
        try tree.directory("Users/Default")
        try tree.directory("Users/All Users")
        try tree.directory("Documents and Settings")
        let junction = Self.mountPointBuffer(substitute: "\\??\\C:\\Users", print: "C:\\Users")
        try tree.xattr("Documents and Settings", "trusted.ntfs_reparse_data", junction)
        let deeper = Self.mountPointBuffer(substitute: "\\??\\C:\\Users\\Default", print: "C:\\Users\\Default")
        try tree.xattr("Users/All Users", "trusted.ntfs_reparse_data", deeper)
        let (image, out, summary, source) = try extractAndTranslate(tree)
        XCTAssertEqual(try image.entry(try image.lookup(path: "Documents and Settings")).reparseTag, CimFormat.ReparseTag.mountPoint)
        XCTAssertEqual(try WriterSourceTree.readLink(out + "/Documents and Settings"), "/Users")
        XCTAssertEqual(try WriterSourceTree.readLink(out + "/Users/All Users"), "/Users/Default")
        // A junction is not what `cim create` makes of a symlink, so its buffer is kept for the way back.
        XCTAssertEqual(try WriterLinux.getXattr(out + "/Documents and Settings", name: "trusted.ntfs_reparse_data"), junction)
        XCTAssertEqual(summary.symlinks, 2)
        XCTAssertTrue(summary.isComplete, "\(summary.warnings)")
        try CimWriter().createImage(from: out, imagePath: work + "/images/again.cim")
        let recreated = try CimImage(path: work + "/images/again.cim")
        let after = try recreated.lookup(path: "Documents and Settings")
        XCTAssertTrue(try recreated.entry(after).isDirectory)
        XCTAssertEqual(try recreated.entry(after).reparseTag, CimFormat.ReparseTag.mountPoint)
        XCTAssertEqual(try recreated.reparseData(of: after), junction)
        XCTAssertEqual(String(decoding: try source.symlinkTarget(of: try image.lookup(path: "Users/All Users")), as: UTF8.self), "../Users/Default")
    }

    /// Case-conflict renames are undone by the translator as by `cim extract`.
    func testCaseConflictRenamesShowOriginalNamesInBoth() throws {
        let tree = try TranslatorTreeBuilder(work + "/tree")
        try tree.directory("man2")
        try tree.directory("perl/Sys")
        try tree.directory("perl/sys")
        try tree.file("perl/Sys/Hostname.pm", Array("upper".utf8))
        try tree.file("perl/sys/lower.pm", Array("lower".utf8))
        try tree.file("man2/_exit.2.gz", Array("exit".utf8))
        try tree.file("man2/_Exit.2.gz", Array("Exit".utf8))
        var options = CimWriterOptions()
        options.caseConflicts = .rename
        let (image, out, summary, _) = try extractAndTranslate(tree, options: options)
        XCTAssertNotNil(try image.lookup("sys~2", in: try image.lookup(path: "perl")))
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: out + "/perl")), ["Sys", "sys"])
        XCTAssertEqual(try WriterTestRead.file(out + "/perl/sys/lower.pm"), Array("lower".utf8))
        XCTAssertEqual(try WriterTestRead.file(out + "/man2/_exit.2.gz"), Array("exit".utf8))
        XCTAssertEqual(summary.namesRestored, 2)
        XCTAssertTrue(summary.isComplete, "\(summary.warnings)")
        XCTAssertFalse(try WriterLinux.listXattrs(out + "/perl/sys").contains("trusted.ntfs_ea"), "the name record is not a Linux xattr")
    }

    static func mountPointBuffer(substitute: String, print: String) -> [UInt8] {
        func utf16le(_ text: String) -> [UInt8] { Array(text.utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] } }
        func u16(_ value: Int) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }
        let sub = utf16le(substitute), printed = utf16le(print)
        let body = u16(0) + u16(sub.count) + u16(sub.count + 2) + u16(printed.count) + sub + [0, 0] + printed + [0, 0]
        return [0x03, 0, 0, 0xA0] + u16(body.count) + [0, 0] + body
    }
}

enum WriterTestRead {
    static func file(_ path: String) throws -> [UInt8] {
        let handle = try RegionFile(path: path)
        return try handle.read(at: 0, length: Int(handle.size))
    }
}
