import CimFS
import Foundation
import XCTest
@testable import VolumeSynth

final class Ext4ReadTests: XCTestCase {
    typealias S = Ext4TestSupport

    func makeVolume() throws -> (MemoryTree, Ext4Volume) {
        let t = try MemoryTree()
        let d = t.dir(1, "d")
        for i in 0..<2000 {
            try t.file(d, "f\(i)", i % 3 == 0 ? [.data([UInt8](repeating: UInt8(i % 256), count: i * 7)), .hole(5000), .data([9])] : [.data([UInt8(i % 256)])])
        }
        let x = try t.file(1, "x", [.data([1])])
        t.setXattrs(x, [ExtendedAttribute(name: "user.big", value: [UInt8](repeating: 3, count: 2000))])
        try t.finish()
        return (t, try Ext4Volume(source: t, options: S.options))
    }

    /// Random offsets and odd sizes give the same bytes as one sequential pass;
    /// segments tile the range exactly and `.file` segments hold what `read` returns.
    func testRandomReadsMatchSequential() throws {
        let (_, volume) = try makeVolume()
        let whole = try volume.read(offset: 0, length: Int(volume.size))
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<400 {
            let offset = UInt64.random(in: 0..<volume.size, using: &generator)
            let length = Int.random(in: 0...min(70_000, Int(volume.size - offset)), using: &generator)
            let part = try volume.read(offset: offset, length: length)
            XCTAssertEqual(part[...], whole[Int(offset)..<(Int(offset) + length)], "read \(offset)+\(length)")
            let segments = try volume.segments(offset: offset, length: UInt64(length))
            XCTAssertEqual(segments.reduce(UInt64(0)) { $0 + $1.length }, UInt64(length))
            var p = Int(offset)
            for s in segments {
                switch s {
                case .zeros(let l):
                    XCTAssertTrue(whole[p..<(p + Int(l))].allSatisfy { $0 == 0 }, "zeros at \(p)")
                case .file(let f, let o, let l):
                    XCTAssertEqual(try f.read(at: o, length: Int(l))[...], whole[p..<(p + Int(l))])
                case .metadata: break
                }
                p += Int(s.length)
            }
        }
        XCTAssertThrowsError(try volume.segments(offset: volume.size, length: 1))
        XCTAssertThrowsError(try volume.read(offset: volume.size - 10, length: 11))
        XCTAssertEqual(volume.format, "ext4")
        XCTAssertEqual(volume.size % 4096, 0)
    }

    /// Many threads reading at once see the same bytes.
    func testConcurrentReads() throws {
        let (_, volume) = try makeVolume()
        let whole = try volume.read(offset: 0, length: Int(volume.size))
        let blocks = Int(volume.size / 4096)
        final class Counter: @unchecked Sendable {
            let lock = NSLock()
            var failures = 0
            func fail() { lock.lock(); failures += 1; lock.unlock() }
        }
        let counter = Counter()
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            var g = SystemRandomNumberGenerator()
            for _ in 0..<300 {
                let b = Int.random(in: 0..<blocks, using: &g)
                let n = min(Int.random(in: 1...8, using: &g), blocks - b)
                guard let part = try? volume.read(offset: UInt64(b * 4096), length: n * 4096),
                      part[...] == whole[(b * 4096)..<((b + n) * 4096)] else {
                    counter.fail()
                    continue
                }
            }
        }
        XCTAssertEqual(counter.failures, 0)
    }

    /// The same tree and options always give the same bytes; the sparse writer
    /// leaves zero ranges as holes.
    func testDeterministicAndSparse() throws {
        let (t, a) = try makeVolume()
        let b = try Ext4Volume(source: t, options: S.options)
        XCTAssertEqual(try a.read(offset: 0, length: Int(a.size)), try b.read(offset: 0, length: Int(b.size)))
        let image = try S.writeImage(a, name: "sparse")
        defer { try? FileManager.default.removeItem(atPath: image) }
        var st = stat()
        XCTAssertEqual(stat(image, &st), 0)
        XCTAssertEqual(UInt64(st.st_size), a.size)
        // Only 4 KiB blocks touched by non-zero segments take disk space.
        var touched = Set<UInt64>()
        var p: UInt64 = 0
        for e in try a.blockStatus(offset: 0, length: a.size) {
            if !e.isZero { for blk in (p / 4096)...((p + e.length - 1) / 4096) { touched.insert(blk) } }
            p += e.length
        }
        XCTAssertLessThan(UInt64(touched.count) * 4096, a.size)
        XCTAssertLessThanOrEqual(UInt64(st.st_blocks) * 512, UInt64(touched.count) * 4096 + (256 << 10), "image should be sparse")
        try S.assertClean(image)
    }

    /// Trees ext4 cannot hold are refused with a typed error.
    func testUnrepresentableTrees() throws {
        let t = try MemoryTree()
        let d = t.dir(1, "d")
        t.link(1, "d-again", to: d)
        try t.finish()
        XCTAssertThrowsError(try Ext4Volume(source: t, options: S.options)) { error in
            guard case VolumeError.unrepresentable = error else { return XCTFail("\(error)") }
        }
        let u = try MemoryTree()
        u.symlink(1, "empty-target", "")
        try u.finish()
        XCTAssertThrowsError(try Ext4Volume(source: u, options: S.options))
        let v = try MemoryTree()
        try v.finish()
        XCTAssertThrowsError(try Ext4Volume(source: v, options: Ext4Options(volumeUUID: [1, 2], label: "", creationTime: Timestamp(seconds: 0, nanoseconds: 0))))
    }

    /// A source root that already has lost+found keeps it (inode 11).
    func testSourceLostAndFoundIsKept() throws {
        let t = try MemoryTree()
        try t.file(1, "a", [.data([1])])
        let lf = t.dir(1, "lost+found", perms: 0o711)
        try t.file(lf, "recovered", [.data([2])])
        try t.finish()
        let volume = try Ext4Volume(source: t, options: S.options)
        let image = try S.writeImage(volume, name: "lf")
        defer { try? FileManager.default.removeItem(atPath: image) }
        try S.assertClean(image)
        let (_, out) = try S.run(["debugfs", "-R", "ls -l /lost+found", image])
        XCTAssertTrue(out.contains("recovered"), out)
        let (_, st) = try S.run(["debugfs", "-R", "stat <11>", image])
        XCTAssertTrue(st.contains("Mode:  0711"), st)
    }

    func testCRC32CAndHashKnownValues() {
        // Standard CRC-32C check value.
        XCTAssertEqual(~CRC32C.update(~0, Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(Ext4Volume.labelBytes("cimnbd-test-volume-long-label").count, 16)
        XCTAssertEqual(Ext4Volume.labelBytes("123456789012345é"), Array("123456789012345".utf8))
    }

    /// Our half-MD4 agrees with debugfs's `dx_hash` (which computes the
    /// signed-character variant) for short, multi-chunk and non-ASCII names;
    /// for ASCII names both variants are equal. (The unsigned variant on
    /// non-ASCII names is checked by kernel lookups in the scale test.)
    func testDirectoryHashMatchesDebugfs() throws {
        let seedText = "4cf5aa72-757c-8810-cdd6-cdcde10d8922"
        let hex = seedText.replacingOccurrences(of: "-", with: "")
        var bytes: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            bytes.append(UInt8(hex[i..<j], radix: 16) ?? 0)
            i = j
        }
        let seed = (0..<4).map { k in (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[4 * k + $1]) << (8 * UInt32($1)) } }
        let hasher = DirectoryHash(seed: seed, signedCharacters: true)
        let unsignedHasher = DirectoryHash(seed: seed)
        for name in ["lost+found", "a", "été☃-a-name-longer-than-thirty-two-bytes-for-sure", String(repeating: "z", count: 255)] {
            let (status, output) = try S.run(["debugfs", "-R", "dx_hash -h half_md4 -s \(seedText) \(name)"])
            XCTAssertEqual(status, 0)
            let expected = output.split(separator: "\n").last.flatMap { line in
                line.split(separator: " ").first { $0.hasPrefix("0x") }.flatMap { UInt32($0.dropFirst(2), radix: 16) }
            }
            let (major, minor) = hasher.hash(Array(name.utf8))
            XCTAssertEqual(major, expected, name)
            XCTAssertTrue(output.contains(String(format: "(minor 0x%x)", minor)), output)
            if name.utf8.allSatisfy({ $0 < 0x80 }) {
                XCTAssertEqual(unsignedHasher.hash(Array(name.utf8)).0, expected, name)
            }
        }
    }
}

final class Ext4DirectoryEdgeTests: XCTestCase {
    typealias S = Ext4TestSupport

    /// Directories at the linear/htree boundary: a full linear block, the
    /// smallest htree (one leaf), an empty directory, 255-byte names.
    func testDirectoryBoundaries() throws {
        let t = try MemoryTree()
        let full = t.dir(1, "full-linear")
        for i in 0..<203 { try t.file(full, String(format: "n%010d", i), []) }    // 203 * 20 = 4060 bytes
        let oneLeaf = t.dir(1, "one-leaf-htree")
        for i in 0..<204 { try t.file(oneLeaf, String(format: "n%010d", i), []) } // 4080 bytes
        t.dir(1, "empty")
        let long = t.dir(1, "long-names")
        for i in 0..<40 { try t.file(long, String(format: "%03d", i) + String(repeating: "L", count: 252), [.data([UInt8(i)])]) }
        try t.finish()
        let volume = try Ext4Volume(source: t, options: S.options)
        let image = try S.writeImage(volume, name: "dirs")
        defer { try? FileManager.default.removeItem(atPath: image) }
        try S.assertClean(image)
        let (_, linear) = try S.run(["debugfs", "-R", "stat /full-linear", image])
        XCTAssertFalse(linear.contains("Flags: 0x81000"), linear)
        XCTAssertTrue(linear.contains("Size: 4096"), linear)
        let (_, indexed) = try S.run(["debugfs", "-R", "stat /one-leaf-htree", image])
        XCTAssertTrue(indexed.contains("Flags: 0x81000"), indexed)
        XCTAssertTrue(indexed.contains("Size: 8192"), indexed)
        if S.canMount {
            try S.withMount(image) { try S.compare(tree: t, mount: $0) }
        }
    }
}
