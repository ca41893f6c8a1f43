import XCTest
@testable import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// Basic writer behaviour, read back through the reader.
final class WriterBasicTests: XCTestCase {
    var work = ""

    override func setUpWithError() throws { work = try WriterTestSupport.makeTemporaryDirectory("basic") }
    override func tearDown() { WriterTestSupport.removeTree(work) }

    func testSmallTreeReadsBack() throws {
        let src = work + "/src", out = work + "/out"
        try WriterTestSupport.mkdir(src)
        try WriterTestSupport.mkdir(out)
        try WriterTestSupport.mkdir(src + "/dir")
        try WriterTestSupport.mkdir(src + "/dir/empty")
        try WriterTestSupport.write(src + "/hello.txt", Array("hello world\n".utf8))
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try WriterTestSupport.write(src + "/dir/big.bin", big)
        try WriterTestSupport.write(src + "/empty", [])
        try WriterTestSupport.symlink("dir/big.bin", src + "/rel")
        try WriterTestSupport.symlink("/etc/passwd", src + "/abs")
        try WriterTestSupport.hardlink(src + "/hello.txt", src + "/dir/hello-link")
        let t = WriterTimespec(seconds: 1_600_000_000, nanoseconds: 123_456_700)
        try WriterTestSupport.setTimes(src + "/hello.txt", access: WriterTimespec(seconds: 1_500_000_000, nanoseconds: 100), modification: t)

        let summary = try CimWriter().createImage(from: src, imagePath: out + "/test.cim")
        XCTAssertEqual(summary.fileCount, 8)  // root, dir, abs, empty, hello, rel, big, empty-dir (hello-link shares)
        let image = try CimImage(path: out + "/test.cim")
        let report = image.verify()
        XCTAssertTrue(report.isClean, "\(report.problems)")
        XCTAssertEqual(image.versionMajor, 2)

        let hello = try image.lookup(path: "hello.txt")
        XCTAssertEqual(try image.lookup(path: "dir\\hello-link"), hello)
        XCTAssertEqual(try image.lookup(path: "HELLO.TXT"), hello)
        XCTAssertEqual(try image.linkCount(of: hello), 2)
        let helloEntry = try image.entry(hello)
        XCTAssertEqual(try WriterTestSupport.content(image, helloEntry.defaultStream, fileID: hello), Array("hello world\n".utf8))
        XCTAssertEqual(helloEntry.lastWriteTime, WriterFileTime.ticks(t))
        XCTAssertEqual(helloEntry.lastAccessTime, 116_444_736_000_000_000 + 1_500_000_000 * 10_000_000 + 1)
        XCTAssertNil(try image.securityDescriptor(of: hello))

        let bigID = try image.lookup(path: "dir/big.bin")
        XCTAssertEqual(try WriterTestSupport.content(image, try image.entry(bigID).defaultStream, fileID: bigID), big)
        XCTAssertEqual(try image.entry(try image.lookup(path: "empty")).defaultStream.length, 0)
        XCTAssertTrue(try image.entry(try image.lookup(path: "dir/empty")).isDirectory)
        XCTAssertEqual(try image.children(of: try image.lookup(path: "dir/empty")).count, 0)

        let rel = try image.lookup(path: "rel")
        XCTAssertEqual(try image.entry(rel).reparseTag, CimFormat.ReparseTag.symlink)
        let relBuffer = try XCTUnwrap(try image.reparseData(of: rel))
        XCTAssertEqual(ReparseLink.target(buffer: relBuffer, tag: CimFormat.ReparseTag.symlink, anchor: .treeRoot), Array("dir/big.bin".utf8))
        XCTAssertEqual(try WriterByteReader(bytes: relBuffer, path: "").u32(16), 1)  // relative flag
        let abs = try image.lookup(path: "abs")
        let absBuffer = try XCTUnwrap(try image.reparseData(of: abs))
        XCTAssertEqual(ReparseLink.target(buffer: absBuffer, tag: CimFormat.ReparseTag.symlink, anchor: .treeRoot), Array("/etc/passwd".utf8))
        XCTAssertEqual(try WriterByteReader(bytes: absBuffer, path: "").u32(16), 0)
        let substitute = Array("\\??\\C:\\etc\\passwd".utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        XCTAssertEqual(Array(absBuffer[20..<(20 + substitute.count)]), substitute)

        // Names sorted by upcased code units in the root.
        let names = try image.children(of: image.rootID).map(\.name)
        XCTAssertEqual(names, ["abs", "dir", "empty", "hello.txt", "rel"])
        // No temporaries left.
        XCTAssertFalse(try WriterTestSupport.listDirectory(out).contains { $0.hasPrefix(".") })
    }
}
