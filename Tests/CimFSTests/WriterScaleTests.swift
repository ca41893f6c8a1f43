import XCTest
@testable import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// Large inputs: 100,000 files and a 4 GiB sparse file, built and read back.
final class WriterScaleTests: XCTestCase {
    var work = ""

    override func setUpWithError() throws { work = try WriterTestSupport.makeTemporaryDirectory("scale") }
    override func tearDown() { WriterTestSupport.removeTree(work) }

    func testHundredThousandFiles() throws {
        let src = work + "/src", out = work + "/out"
        try WriterTestSupport.mkdir(src)
        try WriterTestSupport.mkdir(out)
        let directories = 100, perDirectory = 1000
        for d in 0..<directories {
            let dir = src + "/d\(d)"
            try WriterTestSupport.mkdir(dir)
            for f in 0..<perDirectory {
                // Every 10th file repeats earlier content so deduplication is exercised at scale.
                let text = f % 10 == 0 ? "shared \(f)" : "file \(d)/\(f)"
                try WriterTestSupport.write(dir + "/f\(f).txt", Array(text.utf8))
            }
        }
        let started = DispatchTime.now().uptimeNanoseconds
        let summary = try CimWriter().createImage(from: src, imagePath: out + "/many.cim")
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        XCTAssertEqual(summary.fileCount, 1 + directories + directories * perDirectory)
        XCTAssertLessThan(seconds, 120, "writing 100,000 files took \(seconds) s")

        let image = try CimImage(path: out + "/many.cim")
        XCTAssertEqual(Int(image.maxFileID), summary.fileCount)
        XCTAssertEqual(image.tables.count, (summary.fileCount + 1023) / 1024)
        var seen = 0
        try image.walk { _, entry, components in
            seen += 1
            guard components.count == 2, let d = Int(components[0].dropFirst()),
                  let f = Int(components[1].dropFirst().dropLast(4)) else { return }
            // Check a sample of contents through the reader (all of them would only repeat the same path).
            if (d * perDirectory + f) % 37 == 0 {
                let text = f % 10 == 0 ? "shared \(f)" : "file \(d)/\(f)"
                let data = try WriterTestSupport.content(image, try image.entry(entry.fileID).defaultStream, fileID: entry.fileID)
                XCTAssertEqual(data, Array(text.utf8), components.joined(separator: "/"))
            }
        }
        XCTAssertEqual(seen, directories + directories * perDirectory)
        XCTAssertEqual(try image.lookup(path: "D99/F999.TXT"), try image.lookup(path: "d99/f999.txt"))
        // "shared 0" … "shared 990" appear in every directory: 99 of 100 copies are deduplicated.
        XCTAssertEqual(summary.deduplicatedBytes, UInt64((0..<perDirectory).filter { $0 % 10 == 0 }.map { "shared \($0)".utf8.count }.reduce(0, +) * (directories - 1)))
    }

    func testFourGiBSparseFile() throws {
        let src = work + "/src", out = work + "/out", dst = work + "/dst"
        try WriterTestSupport.mkdir(src)
        try WriterTestSupport.mkdir(out)
        let size: Int64 = 4 << 30
        try WriterTestSupport.makeSparse(src + "/huge.img", size: size)
        // A large file with data only at both ends: stored with the hole kept as a hole.
        try WriterTestSupport.makeSparse(src + "/ends.img", size: 1 << 30)
        let fd = open(src + "/ends.img", O_WRONLY)
        _ = [UInt8](repeating: 0xEE, count: 8192).withUnsafeBytes { pwrite(fd, $0.baseAddress, 8192, 0) }
        _ = [UInt8](repeating: 0xFF, count: 8192).withUnsafeBytes { pwrite(fd, $0.baseAddress, 8192, off_t((1 << 30) - 8192)) }
        close(fd)

        let summary = try CimWriter().createImage(from: src, imagePath: out + "/sparse.cim")
        XCTAssertEqual(summary.sparseFiles, 1)
        let image = try CimImage(path: out + "/sparse.cim")
        let id = try image.lookup(path: "huge.img")
        let stream = try image.entry(id).defaultStream
        XCTAssertTrue(stream.isSparse)
        XCTAssertEqual(stream.length, UInt64(size))
        XCTAssertEqual(try image.stat(id).size, UInt64(size))
        XCTAssertEqual(try image.read(stream, at: UInt64(size) - 100, length: 200, fileID: id), [UInt8](repeating: 0, count: 100))

        let ends = try image.lookup(path: "ends.img")
        let endsStream = try image.entry(ends).defaultStream
        XCTAssertFalse(endsStream.isSparse)
        XCTAssertEqual(try image.read(endsStream, at: 8190, length: 4, fileID: ends), [0xEE, 0xEE, 0, 0])
        XCTAssertEqual(try image.read(endsStream, at: (1 << 30) - 8194, length: 4, fileID: ends), [0, 0, 0xFF, 0xFF])
        XCTAssertEqual(try image.read(endsStream, at: 500 << 20, length: 4096, fileID: ends), [UInt8](repeating: 0, count: 4096))
        // The data region keeps the hole: far less than 1 GiB allocated.
        let dataRegion = try WriterLinux.stat(summary.regionFiles[1])
        XCTAssertLessThan(dataRegion.blocks * 512, 1 << 20)

        // Extract keeps both sparse.
        try CimExtractor().extract(imagePath: out + "/sparse.cim", to: dst)
        let huge = try WriterLinux.stat(dst + "/huge.img")
        XCTAssertEqual(huge.size, UInt64(size))
        XCTAssertEqual(huge.blocks, 0)
        let extractedEnds = try WriterLinux.stat(dst + "/ends.img")
        XCTAssertEqual(extractedEnds.size, 1 << 30)
        XCTAssertLessThan(extractedEnds.blocks * 512, 1 << 20)
    }
}
