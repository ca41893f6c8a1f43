import XCTest
@testable import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// Failures give typed errors and leave neither temporary nor final files.
final class WriterFailureTests: XCTestCase {
    var work = ""
    var src = ""
    var out = ""

    override func setUpWithError() throws {
        work = try WriterTestSupport.makeTemporaryDirectory("failure")
        src = work + "/src"
        out = work + "/out"
        try WriterTestSupport.mkdir(src)
        try WriterTestSupport.mkdir(out)
        try WriterTestSupport.write(src + "/file", Array(repeating: 1, count: 20_000))
        try WriterTestSupport.write(src + "/small", Array("x".utf8))
    }

    override func tearDown() {
        WriterTestSupport.runProcess("/usr/bin/chattr", ["-i", out])
        WriterTestSupport.removeTree(work)
    }

    func testMissingSource() throws {
        XCTAssertThrowsError(try CimWriter().createImage(from: work + "/nope", imagePath: out + "/a.cim")) { error in
            XCTAssertEqual(error as? CimError, .missingDirectory(path: self.work + "/nope"))
        }
        XCTAssertEqual(try WriterTestSupport.listDirectory(out), [])
    }

    func testSourceIsAFile() throws {
        XCTAssertThrowsError(try CimWriter().createImage(from: src + "/file", imagePath: out + "/a.cim")) { error in
            XCTAssertEqual(error as? CimError, .notADirectory(path: self.src + "/file"))
        }
        XCTAssertEqual(try WriterTestSupport.listDirectory(out), [])
    }

    func testMissingTargetDirectory() throws {
        XCTAssertThrowsError(try CimWriter().createImage(from: src, imagePath: work + "/missing/a.cim")) { error in
            XCTAssertEqual(error as? CimError, .missingDirectory(path: self.work + "/missing"))
        }
    }

    func testUnwritableTargetDirectory() throws {
        // Root ignores mode bits, so the directory is made immutable instead.
        guard WriterTestSupport.runProcess("/usr/bin/chattr", ["+i", out]) == 0 else {
            throw XCTSkip("chattr +i is not supported here")
        }
        XCTAssertThrowsError(try CimWriter().createImage(from: src, imagePath: out + "/a.cim")) { error in
            guard case CimError.accessDenied(let path) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(path.hasPrefix(self.out + "/"), path)
        }
        WriterTestSupport.runProcess("/usr/bin/chattr", ["-i", out])
        XCTAssertEqual(try WriterTestSupport.listDirectory(out), [])
    }

    func testFailureAfterTemporariesRemovesThem() throws {
        var options = CimWriterOptions()
        options.dataRegions = 2
        options.failAfterCreatingTemporaries = true
        XCTAssertThrowsError(try CimWriter().createImage(from: src, imagePath: out + "/a.cim", options: options)) { error in
            guard case CimError.io(_, _, let code, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(code, EIO)
        }
        XCTAssertEqual(try WriterTestSupport.listDirectory(out), [])
    }

    func testFailureWhileCopyingRemovesEverything() throws {
        // A source file that vanishes between scan and copy fails the write phase.
        try WriterTestSupport.write(src + "/zz-late", Array(repeating: 2, count: 50_000))
        var options = CimWriterOptions()
        let late = src + "/zz-late"
        options.progress = { progress in
            if progress.phase == "write" { unlink(late) }
        }
        // Progress fires every 1024 files; make sure there are enough before zz-late.
        for i in 0..<1100 { try WriterTestSupport.write(src + "/f\(i)", Array("\(i)".utf8)) }
        XCTAssertThrowsError(try CimWriter().createImage(from: src, imagePath: out + "/a.cim", options: options)) { error in
            XCTAssertEqual(error as? CimError, .missingFile(path: late))
        }
        XCTAssertEqual(try WriterTestSupport.listDirectory(out), [])
    }

    func testExistingImageIsNotReplaced() throws {
        try CimWriter().createImage(from: src, imagePath: out + "/a.cim")
        let before = try WriterTestSupport.listDirectory(out)
        let header = try WriterTestSupport.readFile(out + "/a.cim")
        XCTAssertThrowsError(try CimWriter().createImage(from: src, imagePath: out + "/a.cim")) { error in
            guard case CimError.invalidInput = error else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try WriterTestSupport.listDirectory(out), before)
        XCTAssertEqual(try WriterTestSupport.readFile(out + "/a.cim"), header)
    }

    func testBadOptionsAndNames() throws {
        for configure: (inout CimWriterOptions) -> Void in [{ $0.dataRegions = 0 }, { $0.entrySize = 95 }, { $0.formatVersion = 4 }] {
            var options = CimWriterOptions()
            configure(&options)
            XCTAssertThrowsError(try CimWriter().createImage(from: src, imagePath: out + "/a.cim", options: options)) { error in
                guard case CimError.invalidInput = error else { return XCTFail("\(error)") }
            }
        }
        XCTAssertThrowsError(try CimWriter().createImage(from: src, imagePath: out + "/noextension"))
        try WriterTestSupport.write(src + "/SMALL", [])
        XCTAssertThrowsError(try CimWriter().createImage(from: src, imagePath: out + "/a.cim")) { error in
            guard case CimError.invalidInput(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("SMALL") && message.contains("small"), message)
        }
        XCTAssertEqual(try WriterTestSupport.listDirectory(out), [])
    }

    func testExtractFailures() throws {
        try CimWriter().createImage(from: src, imagePath: out + "/a.cim")
        XCTAssertThrowsError(try CimExtractor().extract(imagePath: out + "/missing.cim", to: work + "/x")) { error in
            XCTAssertEqual(error as? CimError, .missingFile(path: self.out + "/missing.cim"))
        }
        XCTAssertThrowsError(try CimExtractor().extract(imagePath: out + "/a.cim", to: src)) { error in
            guard case CimError.invalidInput(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("not empty"), message)
        }
    }

    func testNameAndPathLimits() throws {
        XCTAssertNoThrow(try WriterSourceTree.checkName(Array(repeating: 0x61, count: 255), path: "ok"))
        XCTAssertThrowsError(try WriterSourceTree.checkName(Array(repeating: 0x61, count: 256), path: "/src/long")) { error in
            guard case CimError.invalidInput(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("/src/long") && message.contains("256"), message)
        }
        XCTAssertNoThrow(try WriterSourceTree.checkPathLength(32767, path: "ok"))
        XCTAssertThrowsError(try WriterSourceTree.checkPathLength(32768, path: "/src/deep")) { error in
            guard case CimError.invalidInput(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("/src/deep") && message.contains("32768"), message)
        }
        // A real 255-byte name (the Linux maximum) is accepted.
        let name = String(repeating: "n", count: 255)
        try WriterTestSupport.write(src + "/" + name, Array("long".utf8))
        try CimWriter().createImage(from: src, imagePath: out + "/long.cim")
        let image = try CimImage(path: out + "/long.cim")
        XCTAssertEqual(try WriterTestSupport.content(image, try image.entry(try image.lookup(path: name)).defaultStream, fileID: 0), Array("long".utf8))
    }
}
