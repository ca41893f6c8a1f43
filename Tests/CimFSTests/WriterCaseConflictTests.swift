import XCTest
@testable import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// `cim create --case-conflicts`: names of one directory that differ only in case.
final class WriterCaseConflictTests: XCTestCase {
    var work = ""

    override func setUpWithError() throws { work = try WriterTestSupport.makeTemporaryDirectory("case") }
    override func tearDown() { WriterTestSupport.removeTree(work) }

    /// Three directories with conflicts, one of them a group of three names and one
    /// where `NAME~2` is already taken; the conflicts nest (perl/Sys inside a conflict-free perl).
    func makeTree() throws -> String {
        let src = work + "/src"
        for dir in ["", "/perl", "/perl/Sys", "/perl/sys", "/man2", "/mixed"] { try WriterTestSupport.mkdir(src + dir) }
        try WriterTestSupport.write(src + "/perl/Sys/Hostname.pm", Array("upper".utf8))
        try WriterTestSupport.write(src + "/perl/sys/lower.pm", Array("lower".utf8))
        try WriterTestSupport.write(src + "/man2/_exit.2.gz", Array("exit".utf8))
        try WriterTestSupport.write(src + "/man2/_Exit.2.gz", Array("Exit".utf8))
        for name in ["readme", "README", "ReadMe", "readme~2"] {
            try WriterTestSupport.write(src + "/mixed/" + name, Array(name.utf8))
        }
        return src
    }

    func testErrorListsEveryConflictAndNamesTheOption() throws {
        let src = try makeTree()
        let image = work + "/out.cim"
        XCTAssertThrowsError(try CimWriter().createImage(from: src, imagePath: image)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("--case-conflicts"), text)
            XCTAssertTrue(text.contains("3 groups"), text)
            XCTAssertTrue(text.contains("\(src)/perl: \"Sys\", \"sys\""), text)
            XCTAssertTrue(text.contains("\(src)/man2: \"_Exit.2.gz\", \"_exit.2.gz\""), text)
            XCTAssertTrue(text.contains("\(src)/mixed: \"README\", \"ReadMe\", \"readme\""), text)
        }
        XCTAssertEqual(access(image, F_OK), -1, "nothing written")
        XCTAssertEqual(try WriterTestSupport.listDirectory(work), ["src"])
    }

    func testSkipKeepsTheFirstNameInCodeUnitOrder() throws {
        let src = try makeTree()
        var options = CimWriterOptions()
        options.caseConflicts = .skip
        let summary = try CimWriter().createImage(from: src, imagePath: work + "/out.cim", options: options)
        let image = try CimImage(path: work + "/out.cim")
        XCTAssertTrue(image.verify().isClean)
        func names(_ path: String) throws -> [String] { try image.children(of: try image.lookup(path: path)).map(\.name) }
        XCTAssertEqual(try names("perl"), ["Sys"])
        XCTAssertEqual(try names("perl/Sys"), ["Hostname.pm"])
        XCTAssertEqual(try names("man2"), ["_Exit.2.gz"])
        XCTAssertEqual(try names("mixed"), ["README", "readme~2"])
        let skipped = summary.skipped.filter { $0.contains("--case-conflicts skip") }
        XCTAssertEqual(skipped.count, 4, "\(summary.skipped)")
        XCTAssertTrue(skipped.contains("\(src)/perl/sys: left out, its name differs only in case from \"Sys\" (--case-conflicts skip)"), "\(skipped)")
        XCTAssertTrue(skipped.contains { $0.hasPrefix("\(src)/mixed/ReadMe:") })
        XCTAssertTrue(skipped.contains { $0.hasPrefix("\(src)/mixed/readme:") })
    }

    func testRenameStoresFreeNumberedNamesAndRecordsTheOriginals() throws {
        let src = try makeTree()
        let ea: [UInt8] = [0, 0, 0, 0, 0, 3, 2, 0] + Array("KEY".utf8) + [0, 0xAB, 0xCD]
        try WriterLinux.setXattr(src + "/mixed/readme", name: "trusted.ntfs_ea", value: ea)
        var options = CimWriterOptions()
        options.caseConflicts = .rename
        let summary = try CimWriter().createImage(from: src, imagePath: work + "/out.cim", options: options)
        let image = try CimImage(path: work + "/out.cim")
        XCTAssertTrue(image.verify().isClean)
        func names(_ path: String) throws -> [String] { try image.children(of: try image.lookup(path: path)).map(\.name) }
        XCTAssertEqual(try names("perl"), ["Sys", "sys~2"])
        XCTAssertEqual(try names("perl/sys~2"), ["lower.pm"])
        XCTAssertEqual(try names("man2"), ["_Exit.2.gz", "_exit.2.gz~2"])
        // readme~2 exists, so README keeps its name, ReadMe and readme become ~3 and ~4.
        XCTAssertEqual(try names("mixed"), ["README", "readme~2", "ReadMe~3", "readme~4"])
        XCTAssertEqual(summary.renamed.count, 4)
        XCTAssertTrue(summary.renamed.contains("\(src)/perl/sys: stored as \"sys~2\", its name differs only in case from \"Sys\" (--case-conflicts rename; cim extract restores it)"), "\(summary.renamed)")

        let sys = try image.lookup(path: "perl/sys~2")
        let chain = try XCTUnwrap(try image.extendedAttributes(of: sys))
        XCTAssertEqual(OriginalNameEA.records(chain), [OriginalNameEA.Record(flags: 0, name: Array("CIMNBD.LINUXNAME".utf8), value: Array("sys~2/sys".utf8))])
        XCTAssertEqual(Int(try image.entry(sys).eaLength), chain.count)
        // An existing EA chain keeps its record; the name record is appended.
        let readme = try XCTUnwrap(try image.extendedAttributes(of: try image.lookup(path: "mixed/readme~4")))
        let records = try XCTUnwrap(OriginalNameEA.records(readme))
        XCTAssertEqual(records.map { String(decoding: $0.name, as: UTF8.self) }, ["KEY", "CIMNBD.LINUXNAME"])
        XCTAssertEqual(records[0].value, [0xAB, 0xCD])
        XCTAssertEqual(OriginalNameEA.removing(from: readme), ea)
        XCTAssertNil(try image.extendedAttributes(of: try image.lookup(path: "mixed/README")), "names kept get no record")
    }

    func testRenameThenExtractRestoresTheOriginalTree() throws {
        let src = try makeTree()
        let ea: [UInt8] = [0, 0, 0, 0, 0, 3, 2, 0] + Array("KEY".utf8) + [0, 0xAB, 0xCD]
        try WriterLinux.setXattr(src + "/mixed/readme", name: "trusted.ntfs_ea", value: ea)
        // A hard link renamed in one directory and not in the other.
        try WriterTestSupport.hardlink(src + "/man2/_exit.2.gz", src + "/perl/_exit.2.gz")
        var options = CimWriterOptions()
        options.caseConflicts = .rename
        try CimWriter().createImage(from: src, imagePath: work + "/out.cim", options: options)
        let dst = work + "/dst"
        let summary = try CimExtractor().extract(imagePath: work + "/out.cim", to: dst)
        XCTAssertTrue(summary.isComplete, "\(summary.warnings)")
        XCTAssertEqual(summary.namesRestored, 4)
        for dir in ["", "/perl", "/perl/Sys", "/perl/sys", "/man2", "/mixed"] {
            XCTAssertEqual(try WriterTestSupport.listDirectory(dst + dir), try WriterTestSupport.listDirectory(src + dir), dir)
        }
        for file in ["perl/Sys/Hostname.pm", "perl/sys/lower.pm", "man2/_exit.2.gz", "man2/_Exit.2.gz", "mixed/readme", "mixed/ReadMe", "mixed/readme~2"] {
            XCTAssertEqual(try WriterTestSupport.readFile(dst + "/" + file), try WriterTestSupport.readFile(src + "/" + file), file)
        }
        XCTAssertEqual(try WriterLinux.stat(dst + "/perl/_exit.2.gz").inode, try WriterLinux.stat(dst + "/man2/_exit.2.gz").inode)
        XCTAssertEqual(try WriterLinux.getXattr(dst + "/mixed/readme", name: "trusted.ntfs_ea"), ea, "the source's EA, without the name record")
        XCTAssertFalse(try WriterLinux.listXattrs(dst + "/perl/sys").contains("trusted.ntfs_ea"))
        // And the extracted tree makes the same image again.
        try CimWriter().createImage(from: dst, imagePath: work + "/again.cim", options: options)
        let first = try CimImage(path: work + "/out.cim"), again = try CimImage(path: work + "/again.cim")
        for path in ["perl/sys~2", "mixed/readme~4", "mixed/ReadMe~3", "man2/_exit.2.gz~2"] {
            XCTAssertEqual(try again.extendedAttributes(of: try again.lookup(path: path)),
                           try first.extendedAttributes(of: try first.lookup(path: path)), path)
        }
    }

    func testOriginalNameRecordsParseAndRejectBadChains() {
        let records = [OriginalNameEA.Record(flags: 0x80, name: Array("A".utf8), value: [1, 2, 3]),
                       OriginalNameEA.Record(flags: 0, name: OriginalNameEA.name, value: Array("x~2/x/y~2/y".utf8))]
        let chain = OriginalNameEA.chain(records)
        XCTAssertEqual(chain.count, 16 + (8 + 16 + 1 + 11), "first record padded to 4 bytes, the last not")
        XCTAssertEqual(OriginalNameEA.records(chain), records)
        XCTAssertEqual(OriginalNameEA.renamedLinks(in: chain).map { String(decoding: $0.original, as: UTF16.self) }, ["x", "y"])
        XCTAssertNil(OriginalNameEA.records(Array(chain.dropLast())), "value past the end")
        var loop = chain
        loop[0] = 0xFF  // next record past the end
        XCTAssertNil(OriginalNameEA.records(loop))
        XCTAssertEqual(OriginalNameEA.renamedLinks(in: [1, 2, 3]), [])
        XCTAssertThrowsError(try OriginalNameEA.adding([], to: [1, 2, 3], path: "/x"))
    }
}
