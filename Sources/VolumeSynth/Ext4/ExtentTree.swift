/// One extent: `length` blocks from logical block `logical` at physical `physical`.
struct Extent: Equatable {
    var logical: UInt32
    var physical: UInt64
    var length: UInt32
}

/// A run of allocated logical blocks of a file (data present somewhere in each block).
struct LogicalSpan: Equatable {
    var start: UInt64
    var count: UInt64
}

/// The extent tree of one inode. Up to 4 extents live in `i_block`; beyond
/// that, full leaves of 340 extents, then (if more than 4 leaves) full index
/// blocks of 340 entries, and so on, so the tree is as shallow and narrow as
/// possible (e2fsck offers to "optimize" anything else). Tree blocks are
/// numbered leaves first, then each higher level.
struct ExtentTree {
    static let perBlock = (4096 - 12 - 4) / 12  // 340
    static let inInode = 4
    static let maxLength: UInt64 = 32768

    /// Number of blocks on each level, leaves first.
    let levels: [Int]

    init(extentCount: Int) {
        var levels: [Int] = []
        var count = extentCount
        while count > Self.inInode {
            count = (count + Self.perBlock - 1) / Self.perBlock
            levels.append(count)
        }
        self.levels = levels
    }

    var blockCount: Int { levels.reduce(0, +) }
    var depth: Int { levels.count }

    /// Splits `spans` laid out consecutively from virtual block `contentStart`
    /// into extents (physically contiguous, at most 32768 blocks).
    static func extents(spans: [LogicalSpan], contentStart: UInt64, geometry: Ext4Geometry) -> [Extent] {
        var result: [Extent] = []
        var k: UInt64 = 0
        for span in spans {
            var logical = span.start
            var remaining = span.count
            while remaining > 0 {
                let (p, contiguous) = geometry.physical(virtual: contentStart + k)
                let n = min(remaining, contiguous, maxLength)
                result.append(Extent(logical: UInt32(truncatingIfNeeded: logical), physical: p, length: UInt32(n)))
                logical += n
                k += n
                remaining -= n
            }
        }
        return result
    }

    /// Like `extents` but only counts them.
    static func count(spans: [LogicalSpan], contentStart: UInt64, geometry: Ext4Geometry) -> Int {
        var total = 0
        var k: UInt64 = 0
        for span in spans {
            var remaining = span.count
            while remaining > 0 {
                let (_, contiguous) = geometry.physical(virtual: contentStart + k)
                let n = min(remaining, contiguous, maxLength)
                total += 1
                k += n
                remaining -= n
            }
        }
        return total
    }

    /// Start index (in tree-block numbering) of level `h`.
    private func levelBase(_ h: Int) -> Int { levels[0..<h].reduce(0, +) }

    /// Number of extents covered by one block at level `h`.
    private func span(_ h: Int) -> Int {
        var s = Self.perBlock
        for _ in 0..<h { s *= Self.perBlock }
        return s
    }

    /// The 60-byte `i_block` contents.
    func rootBytes(extents: [Extent], treeBlockPhysical: (Int) -> UInt64) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 60)
        if levels.isEmpty {
            Self.header(&out, 0, entries: extents.count, max: Self.inInode, depth: 0)
            for (i, e) in extents.enumerated() { Self.leafEntry(&out, 12 + 12 * i, e) }
        } else {
            let top = levels.count - 1
            let count = levels[top]
            Self.header(&out, 0, entries: count, max: Self.inInode, depth: levels.count)
            for j in 0..<count {
                let first = extents[j * span(top)].logical
                Self.indexEntry(&out, 12 + 12 * j, logical: first, child: treeBlockPhysical(levelBase(top) + j))
            }
        }
        return out
    }

    /// Tree block `k` (leaves first), checksummed with the inode's seed.
    func block(_ k: Int, extents: [Extent], treeBlockPhysical: (Int) -> UInt64, checksumSeed: UInt32) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 4096)
        var h = 0
        var j = k
        while h < levels.count, j >= levels[h] { j -= levels[h]; h += 1 }
        if h == 0 {
            let first = j * Self.perBlock
            let last = min(first + Self.perBlock, extents.count)
            Self.header(&out, 0, entries: last - first, max: Self.perBlock, depth: 0)
            for i in first..<last { Self.leafEntry(&out, 12 + 12 * (i - first), extents[i]) }
        } else if h < levels.count {
            let first = j * Self.perBlock
            let last = min(first + Self.perBlock, levels[h - 1])
            Self.header(&out, 0, entries: last - first, max: Self.perBlock, depth: h)
            for c in first..<last {
                let logical = extents[c * span(h - 1)].logical
                Self.indexEntry(&out, 12 + 12 * (c - first), logical: logical, child: treeBlockPhysical(levelBase(h - 1) + c))
            }
        }
        let tailOffset = 12 + 12 * Self.perBlock
        out.put32(tailOffset, CRC32C.update(checksumSeed, out, from: 0, count: tailOffset))
        return out
    }

    private static func header(_ out: inout [UInt8], _ o: Int, entries: Int, max: Int, depth: Int) {
        out.put16(o, 0xF30A)
        out.put16(o + 2, UInt16(entries))
        out.put16(o + 4, UInt16(max))
        out.put16(o + 6, UInt16(depth))
        out.put32(o + 8, 0)
    }

    private static func leafEntry(_ out: inout [UInt8], _ o: Int, _ e: Extent) {
        out.put32(o, e.logical)
        out.put16(o + 4, UInt16(e.length))
        out.put16(o + 6, UInt16(truncatingIfNeeded: e.physical >> 32))
        out.put32(o + 8, UInt32(truncatingIfNeeded: e.physical))
    }

    private static func indexEntry(_ out: inout [UInt8], _ o: Int, logical: UInt32, child: UInt64) {
        out.put32(o, logical)
        out.put32(o + 4, UInt32(truncatingIfNeeded: child))
        out.put16(o + 8, UInt16(truncatingIfNeeded: child >> 32))
        out.put16(o + 10, 0)
    }
}
