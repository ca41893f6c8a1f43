/// Block-level layout of a synthesized ext4 volume: group count, where the
/// superblock copies, group descriptors, bitmaps and inode tables sit, and the
/// mapping between the "virtual" data block space (every block after the
/// fixed metadata, numbered without the superblock backups that interrupt it)
/// and physical block numbers.
struct Ext4Geometry: Sendable {
    static let blockSize = 4096
    static let blocksPerGroup: UInt64 = 32768
    static let inodesPerBlock = 16
    static let descriptorSize = 64

    let groupCount: Int
    let inodesPerGroup: UInt32
    let inodeTableBlocks: Int
    let gdtBlocks: Int
    /// Start of each group's block bitmap / inode bitmap / inode table.
    let blockBitmap: [UInt64]
    let inodeBitmap: [UInt64]
    let inodeTable: [UInt64]
    /// Groups that carry a superblock + descriptor copy (group 0 included).
    let backupGroups: [Int]
    /// Blocks left free in the metadata area (an inode table must not straddle a backup).
    let metadataGaps: [Range<UInt64>]
    /// First block after the fixed metadata; data blocks start here.
    let dataStart: UInt64
    /// Maximal non-reserved physical ranges from `dataStart` to the end of the
    /// last group, with the virtual number of their first block.
    let dataSegments: [(physical: UInt64, virtual: UInt64, count: UInt64)]

    var capacityBlocks: UInt64 { UInt64(groupCount) * Self.blocksPerGroup }
    var virtualCapacity: UInt64 {
        guard let last = dataSegments.last else { return 0 }
        return last.virtual + last.count
    }

    static func hasBackup(_ group: Int) -> Bool {
        if group <= 1 { return true }
        for base in [3, 5, 7] {
            var p = base
            while p < group { p *= base }
            if p == group { return true }
        }
        return false
    }

    init(groupCount: Int, inodesPerGroup: UInt32) {
        self.groupCount = groupCount
        self.inodesPerGroup = inodesPerGroup
        inodeTableBlocks = Int(inodesPerGroup) / Self.inodesPerBlock
        gdtBlocks = (groupCount * Self.descriptorSize + Self.blockSize - 1) / Self.blockSize
        let gdt = UInt64((groupCount * Self.descriptorSize + Self.blockSize - 1) / Self.blockSize)
        let backups = (0..<groupCount).filter(Self.hasBackup)
        backupGroups = backups
        let reserved = backups.map { UInt64($0) * Self.blocksPerGroup ..< UInt64($0) * Self.blocksPerGroup + 1 + gdt }

        let placed = Self.placeMetadata(groupCount: groupCount, inodeTableBlocks: Int(inodesPerGroup) / Self.inodesPerBlock, gdtBlocks: Int(gdt), reserved: reserved)
        let (bb, ib, it, gaps, cursor) = placed
        blockBitmap = bb
        inodeBitmap = ib
        inodeTable = it
        metadataGaps = gaps
        dataStart = cursor

        var segments: [(physical: UInt64, virtual: UInt64, count: UInt64)] = []
        var position = cursor
        var virtualPosition: UInt64 = 0
        let end = UInt64(groupCount) * Self.blocksPerGroup
        for r in reserved where r.upperBound > position {
            if r.lowerBound > position {
                segments.append((position, virtualPosition, r.lowerBound - position))
                virtualPosition += r.lowerBound - position
            }
            position = r.upperBound
        }
        if end > position { segments.append((position, virtualPosition, end - position)) }
        dataSegments = segments
    }

    /// Places bitmaps and inode tables after group 0's descriptors with a
    /// cursor that jumps over superblock backups (an inode table is never
    /// split, so a jump may leave a gap of free blocks).
    private static func placeMetadata(groupCount: Int, inodeTableBlocks: Int, gdtBlocks: Int, reserved: [Range<UInt64>])
        -> ([UInt64], [UInt64], [UInt64], [Range<UInt64>], UInt64) {
        var cursor: UInt64 = 1 + UInt64(gdtBlocks)
        var reservedIndex = 1
        var gaps: [Range<UInt64>] = []
        func take(_ count: UInt64) -> UInt64 {
            while reservedIndex < reserved.count {
                let r = reserved[reservedIndex]
                if cursor >= r.upperBound { reservedIndex += 1; continue }
                if cursor + count <= r.lowerBound { break }
                if cursor < r.lowerBound { gaps.append(cursor..<r.lowerBound) }
                cursor = r.upperBound
                reservedIndex += 1
            }
            let start = cursor
            cursor += count
            return start
        }
        var bb: [UInt64] = [], ib: [UInt64] = [], it: [UInt64] = []
        bb.reserveCapacity(groupCount)
        for _ in 0..<groupCount { bb.append(take(1)) }
        for _ in 0..<groupCount { ib.append(take(1)) }
        for _ in 0..<groupCount { it.append(take(UInt64(inodeTableBlocks))) }
        return (bb, ib, it, gaps, cursor)
    }

    /// Ranges holding a superblock copy and descriptor copy.
    var reservedRanges: [Range<UInt64>] {
        backupGroups.map { UInt64($0) * Self.blocksPerGroup ..< UInt64($0) * Self.blocksPerGroup + 1 + UInt64(gdtBlocks) }
    }

    /// Index of the data segment holding virtual block `v` (which must be < virtualCapacity).
    func segmentIndex(virtual v: UInt64) -> Int {
        var lo = 0, hi = dataSegments.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if dataSegments[mid].virtual <= v { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// Physical block of virtual data block `v`, and how many blocks are
    /// physically contiguous from there.
    func physical(virtual v: UInt64) -> (block: UInt64, contiguous: UInt64) {
        guard !dataSegments.isEmpty else { return (dataStart + v, UInt64.max) }
        let s = dataSegments[segmentIndex(virtual: v)]
        let delta = v - s.virtual
        if delta >= s.count { return (s.physical + delta, UInt64.max) }  // past the end: not expected
        return (s.physical + delta, s.count - delta)
    }

    /// Virtual number of physical block `p`, or nil when `p` is not a data-area block.
    func virtual(physical p: UInt64) -> (block: UInt64, contiguous: UInt64)? {
        guard p >= dataStart, !dataSegments.isEmpty else { return nil }
        var lo = 0, hi = dataSegments.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if dataSegments[mid].physical <= p { lo = mid } else { hi = mid - 1 }
        }
        let s = dataSegments[lo]
        guard p >= s.physical, p - s.physical < s.count else { return nil }
        return (s.virtual + (p - s.physical), s.count - (p - s.physical))
    }
}
