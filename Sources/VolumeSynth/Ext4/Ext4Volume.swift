import CimFS
import Foundation

/// A read-only ext4 filesystem image synthesized on the fly from a
/// ``FileTreeSource``.
///
/// Building walks the tree once, reading metadata only (attributes, children,
/// data run lists, extended attributes, symlink targets): O(files + entries)
/// time and about 30 bytes of memory per inode. No file data is read or
/// copied; data blocks of the volume are served straight from the source's
/// ``RegionFile``s, and every metadata block (superblock, descriptors,
/// bitmaps, inode tables, extent trees, directories, attribute blocks) is
/// regenerated on demand when read.
///
/// Layout: 4 KiB blocks, 256-byte inodes, 32768 blocks per group, flex_bg
/// placement (all bitmaps and inode tables after group 0's descriptors),
/// features extents, filetype, 64bit, flex_bg, sparse_super, large_file,
/// huge_file, dir_nlink, extra_isize, ext_attr, dir_index (half-MD4 htree),
/// metadata_csum and RO_COMPAT_READONLY; no journal.
///
/// Inodes 1-10 are reserved (2 is the root), 11 is `lost+found`, the rest are
/// numbered breadth first in the source's entry order. A `lost+found`
/// directory is created in the root unless the source's root already has an
/// entry of that name, in which case the source's entry is kept as it is
/// (and gets inode 11).
///
/// Times outside ext4's range are clamped (see ``Ext4Time``). Extended
/// attributes that cannot be stored (unknown namespace, over 64 KiB, or no
/// room in the inode plus one 4 KiB block) are left out and listed in
/// ``warnings``.
///
/// Safe to read from many threads at once.
public final class Ext4Volume: Volume, @unchecked Sendable {
    public let size: UInt64
    public let format = "ext4"
    /// Things that could not be represented exactly (e.g. extended attributes
    /// left out), one line each naming the file.
    public let warnings: [String]

    let source: FileTreeSource
    let options: Ext4Options
    let geometry: Ext4Geometry
    let blocksCount: UInt64
    let records: InodeRecords
    let inodeOfNode: [UInt32]
    let fileSpans: [UInt32: [LogicalSpan]]
    let dataEndVirtual: UInt64
    let allocatedRanges: [Range<UInt64>]
    let freeBlocks: [UInt32]
    let checksumSeed: UInt32
    let hasher: DirectoryHash
    let hashSeed: [UInt32]
    let lostFoundSynthetic: Bool
    /// Group descriptor table bytes (all groups).
    var descriptorTable: [UInt8] = []
    let cache = Ext4Cache()

    static let blockSize: UInt64 = 4096

    /// Builds the volume's layout from `source`.
    ///
    /// Throws ``VolumeError/unrepresentable(_:)`` for trees ext4 cannot hold
    /// (a directory with two parents, more than 65000 links to a file, a file
    /// over 16 TiB, an empty or over-4095-byte symlink target, an invalid
    /// name) and whatever the source throws.
    public init(source: FileTreeSource, options: Ext4Options) throws {
        guard options.volumeUUID.count == 16 else {
            throw VolumeError.unrepresentable("the volume UUID must be 16 bytes, not \(options.volumeUUID.count)")
        }
        self.source = source
        self.options = options
        checksumSeed = CRC32C.update(~0, options.volumeUUID)
        // Derived from the UUID so the output is deterministic.
        hashSeed = (0..<4).map { CRC32C.update(CRC32C.update(~0, options.volumeUUID), le32: UInt32($0) &+ 0x4854_5245) }
        hasher = DirectoryHash(seed: hashSeed)

        var builder = Ext4TreeWalker(source: source, hasher: hasher)
        try builder.walk()
        var recs = builder.records
        lostFoundSynthetic = builder.lostFoundSynthetic
        inodeOfNode = builder.inodeOfNode
        fileSpans = builder.spans
        warnings = builder.warnings

        // Pick the group count: enough inode capacity, then grow until the
        // allocations fit.
        let inodeCount = recs.count
        var groups = max(1, (inodeCount + 32767) / 32768)
        var geo: Ext4Geometry
        var end: UInt64
        while true {
            var ipg = (inodeCount + groups - 1) / groups
            ipg = max(16, (ipg + 15) & ~15)
            geo = Ext4Geometry(groupCount: groups, inodesPerGroup: UInt32(ipg))
            end = try Self.allocate(&recs, spans: builder.spans, geometry: geo)
            let physicalEnd = end == 0 ? geo.dataStart : geo.physical(virtual: end - 1).block + 1
            if end <= geo.virtualCapacity, geo.dataStart <= geo.capacityBlocks, physicalEnd <= geo.capacityBlocks {
                break
            }
            let needed = Int((max(physicalEnd, geo.dataStart) + Ext4Geometry.blocksPerGroup - 1) / Ext4Geometry.blocksPerGroup)
            groups = max(groups + 1, needed)
        }
        geometry = geo
        records = recs
        dataEndVirtual = end

        let dataEndPhysical = end == 0 ? geo.dataStart : geo.physical(virtual: end - 1).block + 1
        // The last group keeps at least a little room past its own metadata.
        let lastGroupStart = UInt64(geo.groupCount - 1) * Ext4Geometry.blocksPerGroup
        let lastGroupMinimum = min(Ext4Geometry.blocksPerGroup, 1 + UInt64(geo.gdtBlocks) + 1024)
        var count = max(dataEndPhysical, lastGroupStart + lastGroupMinimum)
        count = (count + 255) & ~255
        blocksCount = min(count, geo.capacityBlocks)
        size = blocksCount * Self.blockSize

        // Allocated block ranges: everything below the data end except the
        // metadata gaps, and the superblock backups above it.
        var ranges: [Range<UInt64>] = []
        var position: UInt64 = 0
        for gap in geo.metadataGaps {
            if gap.lowerBound > position { ranges.append(position..<gap.lowerBound) }
            position = gap.upperBound
        }
        if dataEndPhysical > position { ranges.append(position..<dataEndPhysical) }
        for r in geo.reservedRanges where r.lowerBound >= dataEndPhysical && r.lowerBound < blocksCount {
            ranges.append(r.lowerBound..<min(r.upperBound, blocksCount))
        }
        allocatedRanges = ranges

        var free = [UInt32](repeating: 0, count: geo.groupCount)
        for g in 0..<geo.groupCount {
            let start = UInt64(g) * Ext4Geometry.blocksPerGroup
            let stop = min(start + Ext4Geometry.blocksPerGroup, blocksCount)
            free[g] = UInt32(stop > start ? stop - start : 0)
        }
        for r in ranges {
            var b = r.lowerBound
            while b < r.upperBound {
                let g = Int(b / Ext4Geometry.blocksPerGroup)
                let groupEnd = min(UInt64(g + 1) * Ext4Geometry.blocksPerGroup, r.upperBound)
                free[g] -= UInt32(groupEnd - b)
                b = groupEnd
            }
        }
        freeBlocks = free
        descriptorTable = buildDescriptorTable()
    }

    /// Lays out every inode's allocation in virtual block space, in inode
    /// order; returns the end of the allocations.
    static func allocate(_ recs: inout InodeRecords, spans: [UInt32: [LogicalSpan]], geometry: Ext4Geometry) throws -> UInt64 {
        var cursor: UInt64 = 0
        recs.treeBlocks = [:]
        for i in 1...recs.count {
            let inode = UInt32(i)
            recs.virtualStart[i] = cursor
            let c = UInt64(recs.content[i])
            var tree: UInt64 = 0
            if c > 0 {
                // Content first, then tree blocks: the content's placement (and
                // so its extent count) does not depend on the tree size.
                let s = spans[inode] ?? [LogicalSpan(start: 0, count: c)]
                let n = ExtentTree.count(spans: s, contentStart: cursor, geometry: geometry)
                tree = UInt64(ExtentTree(extentCount: n).blockCount)
                if tree > 0 { recs.treeBlocks[inode] = UInt32(tree) }
            }
            cursor += tree + c + (recs.hasXattrBlock(inode) ? 1 : 0)
        }
        return cursor
    }
}
