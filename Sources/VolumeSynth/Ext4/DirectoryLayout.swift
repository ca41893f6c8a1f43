/// One entry to store in a directory block.
struct DirectoryEntryRecord {
    var name: [UInt8]
    var inode: UInt32
    /// ext4 dirent file type (1 file, 2 directory, 7 symlink).
    var fileType: UInt8

    var recordLength: Int { (8 + name.count + 3) & ~3 }
}

/// How a directory's entries are laid out in blocks: one linear block when
/// everything fits, otherwise an htree (dx_root in block 0, optional interior
/// dx_nodes, then leaves filled in hash order).
///
/// The plan is a pure function of the names and the hash seed, so the build
/// pass (which needs only the block count) and on-demand rendering agree.
struct DirectoryLayout {
    static let blockSize = 4096
    static let tailSize = 12
    static let leafCapacity = blockSize - tailSize
    static let rootLimit = (blockSize - 0x20 - 8) / 8   // 507
    static let nodeLimit = (blockSize - 0x08 - 8) / 8   // 510

    let isIndexed: Bool
    /// Entry indices in storage order.
    let order: [Int]
    /// For each leaf, the index into `order` of its first entry.
    let leafStarts: [Int]
    /// The hash key of each leaf (bit 0 set when it continues a hash run).
    let leafHashes: [UInt32]
    let nodeCount: Int

    var blockCount: Int { isIndexed ? 1 + nodeCount + leafStarts.count : 1 }
    var leafCount: Int { leafStarts.count }

    init(names: [[UInt8]], hasher: DirectoryHash) throws {
        var linearSize = 24 + Self.tailSize
        for name in names { linearSize += (8 + name.count + 3) & ~3 }
        if linearSize <= Self.blockSize {
            isIndexed = false
            order = Array(names.indices)
            leafStarts = [0]
            leafHashes = [0]
            nodeCount = 0
            return
        }
        isIndexed = true
        var keyed: [(UInt32, UInt32, Int)] = []
        keyed.reserveCapacity(names.count)
        for (i, name) in names.enumerated() {
            let (major, minor) = hasher.hash(name)
            keyed.append((major, minor, i))
        }
        keyed.sort { l, r in
            if l.0 != r.0 { return l.0 < r.0 }
            if l.1 != r.1 { return l.1 < r.1 }
            return l.2 < r.2
        }
        var starts: [Int] = []
        var hashes: [UInt32] = []
        var used = Self.leafCapacity
        for (position, key) in keyed.enumerated() {
            let length = (8 + names[key.2].count + 3) & ~3
            if used + length > Self.leafCapacity {
                var h = key.0
                if position > 0, keyed[position - 1].0 == key.0 { h |= 1 }
                starts.append(position)
                hashes.append(starts.count == 1 ? 0 : h)
                used = 0
            }
            used += length
        }
        order = keyed.map { $0.2 }
        leafStarts = starts
        leafHashes = hashes
        if starts.count <= Self.rootLimit {
            nodeCount = 0
        } else {
            nodeCount = (starts.count + Self.nodeLimit - 1) / Self.nodeLimit
            if nodeCount > Self.rootLimit {
                throw VolumeError.unrepresentable("a directory with \(names.count) entries needs more than two htree levels")
            }
        }
    }

    /// Renders all blocks of the directory (checksums included).
    func render(entries: [DirectoryEntryRecord], selfInode: UInt32, parentInode: UInt32, checksumSeed: UInt32) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: blockCount * Self.blockSize)
        if !isIndexed {
            var offset = 0
            offset = Self.putEntry(&out, offset, inode: selfInode, name: [0x2E], type: 2, recordLength: 12)
            var last = offset
            offset = Self.putEntry(&out, offset, inode: parentInode, name: [0x2E, 0x2E], type: 2, recordLength: 12)
            for i in order {
                let e = entries[i]
                last = offset
                offset = Self.putEntry(&out, offset, inode: e.inode, name: e.name, type: e.fileType, recordLength: e.recordLength)
            }
            if order.isEmpty { last = 12 }
            out.put16(last + 4, UInt16(Self.leafCapacity - last))
            Self.sealLeaf(&out, base: 0, checksumSeed: checksumSeed)
            return out
        }
        // Leaves come after the root and interior nodes.
        let firstLeafBlock = 1 + nodeCount
        for leaf in 0..<leafStarts.count {
            let base = (firstLeafBlock + leaf) * Self.blockSize
            let begin = leafStarts[leaf]
            let end = leaf + 1 < leafStarts.count ? leafStarts[leaf + 1] : order.count
            var offset = base
            var last = base
            for position in begin..<end {
                let e = entries[order[position]]
                last = offset
                offset = Self.putEntry(&out, offset, inode: e.inode, name: e.name, type: e.fileType, recordLength: e.recordLength)
            }
            out.put16(last + 4, UInt16(base + Self.leafCapacity - last))
            Self.sealLeaf(&out, base: base, checksumSeed: checksumSeed)
        }
        // Root: fake "." and ".." then dx_root_info and the entries.
        _ = Self.putEntry(&out, 0, inode: selfInode, name: [0x2E], type: 2, recordLength: 12)
        _ = Self.putEntry(&out, 12, inode: parentInode, name: [0x2E, 0x2E], type: 2, recordLength: Self.blockSize - 12)
        out.put32(0x18, 0)
        out.put8(0x1C, 1)  // half MD4 (unsigned through the superblock flag)
        out.put8(0x1D, 8)
        out.put8(0x1E, nodeCount > 0 ? 1 : 0)
        if nodeCount == 0 {
            let targets = (0..<leafStarts.count).map { (leafHashes[$0], UInt32(firstLeafBlock + $0)) }
            Self.putIndex(&out, base: 0, countOffset: 0x20, limit: Self.rootLimit, targets: targets, checksumSeed: checksumSeed)
        } else {
            var rootTargets: [(UInt32, UInt32)] = []
            for node in 0..<nodeCount {
                let first = node * Self.nodeLimit
                let last = min(first + Self.nodeLimit, leafStarts.count)
                rootTargets.append((leafHashes[first], UInt32(1 + node)))
                let base = (1 + node) * Self.blockSize
                out.put32(base, 0)
                out.put16(base + 4, UInt16(Self.blockSize))
                let targets = (first..<last).map { (leafHashes[$0], UInt32(firstLeafBlock + $0)) }
                Self.putIndex(&out, base: base, countOffset: 8, limit: Self.nodeLimit, targets: targets, checksumSeed: checksumSeed)
            }
            Self.putIndex(&out, base: 0, countOffset: 0x20, limit: Self.rootLimit, targets: rootTargets, checksumSeed: checksumSeed)
        }
        return out
    }

    private static func putEntry(_ out: inout [UInt8], _ offset: Int, inode: UInt32, name: [UInt8], type: UInt8, recordLength: Int) -> Int {
        out.put32(offset, inode)
        out.put16(offset + 4, UInt16(recordLength))
        out.put8(offset + 6, UInt8(name.count))
        out.put8(offset + 7, type)
        out.putBytes(offset + 8, name)
        return offset + recordLength
    }

    /// Writes the 12-byte checksum tail of a leaf block.
    private static func sealLeaf(_ out: inout [UInt8], base: Int, checksumSeed: UInt32) {
        let tail = base + leafCapacity
        out.put32(tail, 0)
        out.put16(tail + 4, 12)
        out.put8(tail + 6, 0)
        out.put8(tail + 7, 0xDE)
        out.put32(tail + 8, CRC32C.update(checksumSeed, out, from: base, count: leafCapacity))
    }

    /// Writes count/limit, the dx entries and the dx tail of an index block.
    /// The first target's hash is implicit (it covers everything below the second).
    private static func putIndex(_ out: inout [UInt8], base: Int, countOffset: Int, limit: Int, targets: [(UInt32, UInt32)], checksumSeed: UInt32) {
        let c = base + countOffset
        out.put16(c, UInt16(limit))
        out.put16(c + 2, UInt16(targets.count))
        out.put32(c + 4, targets[0].1)
        for i in 1..<max(1, targets.count) {
            out.put32(c + 8 * i, targets[i].0)
            out.put32(c + 8 * i + 4, targets[i].1)
        }
        let tail = c + 8 * limit
        out.put32(tail, 0)
        var crc = CRC32C.update(checksumSeed, out, from: base, count: countOffset + 8 * targets.count)
        crc = CRC32C.update(crc, out, from: tail, count: 4)
        crc = CRC32C.update(crc, le32: 0)
        out.put32(tail + 4, crc)
    }
}
