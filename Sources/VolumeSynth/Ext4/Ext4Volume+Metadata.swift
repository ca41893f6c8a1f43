import CimFS

/// Generation of metadata blocks.
extension Ext4Volume {
    static let compatFeatures: UInt32 = 0x0008 | 0x0020              // ext_attr, dir_index
    static let incompatFeatures: UInt32 = 0x0002 | 0x0040 | 0x0080 | 0x0200  // filetype, extents, 64bit, flex_bg
    static let roCompatFeatures: UInt32 = 0x0001 | 0x0002 | 0x0008 | 0x0020 | 0x0040 | 0x0400 | 0x1000
    // sparse_super, large_file, huge_file, dir_nlink, extra_isize, metadata_csum, readonly

    var inodesPerGroup: UInt32 { geometry.inodesPerGroup }
    var usedInodes: UInt32 { UInt32(records.count) }
    var totalInodes: UInt64 { UInt64(geometry.groupCount) * UInt64(inodesPerGroup) }

    func usedInodes(inGroup g: Int) -> UInt32 {
        let first = UInt64(g) * UInt64(inodesPerGroup)
        let used = UInt64(usedInodes)
        return used > first ? UInt32(min(used - first, UInt64(inodesPerGroup))) : 0
    }

    // MARK: superblock and descriptors

    func superblock(group: Int) -> [UInt8] {
        var sb = [UInt8](repeating: 0, count: 1024)
        let freeBlockTotal = freeBlocks.reduce(UInt64(0)) { $0 + UInt64($1) }
        let freeInodeTotal = totalInodes - UInt64(usedInodes)
        let t = options.creationTime.seconds
        let time32 = UInt32(truncatingIfNeeded: t)
        let timeHigh = UInt8(truncatingIfNeeded: t >> 32)
        sb.put32(0x00, UInt32(truncatingIfNeeded: totalInodes))
        sb.put32(0x04, UInt32(truncatingIfNeeded: blocksCount))
        sb.put32(0x08, 0)
        sb.put32(0x0C, UInt32(truncatingIfNeeded: freeBlockTotal))
        sb.put32(0x10, UInt32(truncatingIfNeeded: freeInodeTotal))
        sb.put32(0x14, 0)
        sb.put32(0x18, 2)
        sb.put32(0x1C, 2)
        sb.put32(0x20, UInt32(Ext4Geometry.blocksPerGroup))
        sb.put32(0x24, UInt32(Ext4Geometry.blocksPerGroup))
        sb.put32(0x28, inodesPerGroup)
        sb.put32(0x2C, time32)  // mtime
        sb.put32(0x30, time32)  // wtime
        sb.put16(0x34, 0)
        sb.put16(0x36, 0xFFFF)
        sb.put16(0x38, 0xEF53)
        sb.put16(0x3A, 1)  // clean
        sb.put16(0x3C, 1)  // errors: continue
        sb.put32(0x40, time32)  // lastcheck
        sb.put32(0x44, 0)
        sb.put32(0x48, 0)  // Linux
        sb.put32(0x4C, 1)  // dynamic revision
        sb.put32(0x54, 11)
        sb.put16(0x58, 256)
        sb.put16(0x5A, UInt16(truncatingIfNeeded: group))
        sb.put32(0x5C, Self.compatFeatures)
        sb.put32(0x60, Self.incompatFeatures)
        sb.put32(0x64, Self.roCompatFeatures)
        sb.putBytes(0x68, options.volumeUUID)
        sb.putBytes(0x78, Array(Array(options.label.utf8).prefix(16)))
        for (i, w) in hashSeed.enumerated() { sb.put32(0xEC + 4 * i, w) }
        sb.put8(0xFC, 1)  // half MD4
        sb.put16(0xFE, UInt16(Ext4Geometry.descriptorSize))
        sb.put32(0x100, 0x000C)  // user_xattr, acl
        sb.put32(0x108, time32)  // mkfs time
        sb.put32(0x150, UInt32(truncatingIfNeeded: blocksCount >> 32))
        sb.put32(0x158, UInt32(truncatingIfNeeded: freeBlockTotal >> 32))
        sb.put16(0x15C, 32)
        sb.put16(0x15E, 32)
        sb.put32(0x160, 0x0002)  // unsigned directory hash
        sb.put8(0x174, 4)  // 16 groups per flex group
        sb.put8(0x175, 1)  // crc32c
        sb.put64(0x178, (blocksCount - freeBlockTotal) * 4)
        sb.put32(0x268, 11)  // lost+found
        sb.put8(0x274, timeHigh)
        sb.put8(0x275, timeHigh)
        sb.put8(0x276, timeHigh)
        sb.put8(0x277, timeHigh)
        sb.put32(0x3FC, CRC32C.update(~0, sb, from: 0, count: 0x3FC))
        return sb
    }

    func buildDescriptorTable() -> [UInt8] {
        var table = [UInt8](repeating: 0, count: geometry.gdtBlocks * 4096)
        for g in 0..<geometry.groupCount {
            let o = g * Ext4Geometry.descriptorSize
            let bb = geometry.blockBitmap[g], ib = geometry.inodeBitmap[g], it = geometry.inodeTable[g]
            let used = usedInodes(inGroup: g)
            let freeInodes = inodesPerGroup - used
            var dirs: UInt32 = 0
            let first = g * Int(inodesPerGroup) + 1
            if used > 0 {
                for i in first..<(first + Int(used)) where records.kind(UInt32(i)) == .directory { dirs += 1 }
            }
            let bbCsum = CRC32C.update(checksumSeed, blockBitmap(group: g))
            let ibCsum = CRC32C.update(checksumSeed, inodeBitmap(group: g), from: 0, count: Int(inodesPerGroup) / 8)
            let unused = inodesPerGroup - used
            table.put32(o + 0x00, UInt32(truncatingIfNeeded: bb))
            table.put32(o + 0x04, UInt32(truncatingIfNeeded: ib))
            table.put32(o + 0x08, UInt32(truncatingIfNeeded: it))
            table.put16(o + 0x0C, UInt16(truncatingIfNeeded: freeBlocks[g]))
            table.put16(o + 0x0E, UInt16(truncatingIfNeeded: freeInodes))
            table.put16(o + 0x10, UInt16(truncatingIfNeeded: dirs))
            table.put16(o + 0x12, 0x0004)  // inode table zeroed
            table.put16(o + 0x18, UInt16(truncatingIfNeeded: bbCsum))
            table.put16(o + 0x1A, UInt16(truncatingIfNeeded: ibCsum))
            table.put16(o + 0x1C, UInt16(truncatingIfNeeded: unused))
            table.put32(o + 0x20, UInt32(truncatingIfNeeded: bb >> 32))
            table.put32(o + 0x24, UInt32(truncatingIfNeeded: ib >> 32))
            table.put32(o + 0x28, UInt32(truncatingIfNeeded: it >> 32))
            table.put16(o + 0x2C, UInt16(truncatingIfNeeded: freeBlocks[g] >> 16))
            table.put16(o + 0x2E, UInt16(truncatingIfNeeded: freeInodes >> 16))
            table.put16(o + 0x30, UInt16(truncatingIfNeeded: dirs >> 16))
            table.put16(o + 0x32, UInt16(truncatingIfNeeded: unused >> 16))
            table.put16(o + 0x38, UInt16(truncatingIfNeeded: bbCsum >> 16))
            table.put16(o + 0x3A, UInt16(truncatingIfNeeded: ibCsum >> 16))
            var crc = CRC32C.update(checksumSeed, le32: UInt32(g))
            crc = CRC32C.update(crc, table, from: o, count: Ext4Geometry.descriptorSize)
            table.put16(o + 0x1E, UInt16(truncatingIfNeeded: crc))
        }
        return table
    }

    // MARK: bitmaps

    func blockBitmap(group g: Int) -> [UInt8] {
        var bitmap = [UInt8](repeating: 0, count: 4096)
        let start = UInt64(g) * Ext4Geometry.blocksPerGroup
        let end = start + Ext4Geometry.blocksPerGroup
        func setBits(_ from: UInt64, _ to: UInt64) {
            var b = from
            while b < to {
                let bit = Int(b - start)
                if bit % 8 == 0, to - b >= 8 {
                    let bytes = Int((to - b) / 8)
                    for k in 0..<bytes { bitmap[bit / 8 + k] = 0xFF }
                    b += UInt64(bytes * 8)
                } else {
                    bitmap[bit / 8] |= UInt8(1 << (bit % 8))
                    b += 1
                }
            }
        }
        // First range that may intersect the group.
        var lo = 0, hi = allocatedRanges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if allocatedRanges[mid].upperBound <= start { lo = mid + 1 } else { hi = mid }
        }
        var i = lo
        while i < allocatedRanges.count, allocatedRanges[i].lowerBound < end {
            let r = allocatedRanges[i]
            setBits(max(r.lowerBound, start), min(r.upperBound, end))
            i += 1
        }
        // Blocks past the end of the volume are marked in use.
        if blocksCount < end { setBits(max(blocksCount, start), end) }
        return bitmap
    }

    func inodeBitmap(group g: Int) -> [UInt8] {
        var bitmap = [UInt8](repeating: 0, count: 4096)
        let used = Int(usedInodes(inGroup: g))
        for k in 0..<(used / 8) { bitmap[k] = 0xFF }
        for bit in (used / 8 * 8)..<used { bitmap[bit / 8] |= UInt8(1 << (bit % 8)) }
        // Padding past inodes_per_group is set.
        let ipg = Int(inodesPerGroup)
        for k in (ipg / 8)..<4096 { bitmap[k] = 0xFF }
        return bitmap
    }

    // MARK: inodes

    func inodeSeed(_ inode: UInt32) -> UInt32 {
        CRC32C.update(CRC32C.update(checksumSeed, le32: inode), le32: 0)
    }

    /// Physical block of the k-th block of an inode's allocation.
    func allocationBlock(_ inode: UInt32, _ k: UInt64) -> UInt64 {
        geometry.physical(virtual: records.virtualStart[Int(inode)] + k).block
    }

    func fileLayout(_ inode: UInt32) throws -> FileLayout {
        try cache.layout(inode) {
            let node = records.node[Int(inode)]
            let runs = try source.dataRuns(of: node)
            let size = runs.reduce(UInt64(0)) { $0 + $1.length }
            let spans = try Ext4TreeWalker.spans(of: runs, size: size, path: "inode \(inode)").0
            let extents = ExtentTree.extents(spans: spans, contentStart: records.virtualStart[Int(inode)], geometry: geometry)
            return FileLayout(runs: runs, extents: extents)
        }
    }

    /// Extents of a directory or long symlink (content blocks 0..<n).
    func simpleExtents(_ inode: UInt32) -> [Extent] {
        let c = UInt64(records.content[Int(inode)])
        guard c > 0 else { return [] }
        return ExtentTree.extents(spans: [LogicalSpan(start: 0, count: c)], contentStart: records.virtualStart[Int(inode)], geometry: geometry)
    }

    func extents(_ inode: UInt32) throws -> [Extent] {
        records.kind(inode) == .file ? try fileLayout(inode).extents : simpleExtents(inode)
    }

    func inodeBytes(_ inode: UInt32) throws -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 256)
        b.put16(128, 32)
        let kind = records.kind(inode)
        if kind != .none {
            let node = records.node[Int(inode)]
            let a: NodeAttributes
            if node == 0 {
                // The synthesized lost+found.
                let t = options.creationTime
                a = NodeAttributes(kind: .directory, permissions: 0o700, uid: 0, gid: 0, size: 0,
                                   accessTime: t, modificationTime: t, changeTime: t, creationTime: t)
            } else {
                a = try source.attributes(of: node)
            }
            let content = UInt64(records.content[Int(inode)])
            let tree = UInt64(records.tree(inode))
            let hasBlock = records.hasXattrBlock(inode)
            var typeBits: UInt16
            var size: UInt64
            var flags: UInt32 = 0x80000  // extents
            var links = records.links[Int(inode)]
            switch kind {
            case .directory:
                typeBits = 0x4000
                size = content * 4096
                if content > 1 { flags |= 0x1000 }  // htree
            case .file:
                typeBits = 0x8000
                size = a.size
            case .symlink:
                typeBits = 0xA000
                size = 0
            case .none:
                typeBits = 0
                size = 0
            }
            if links > 0xFFFF { links = 1 }
            b.put16(0, typeBits | (a.permissions & 0o7777))
            b.put16(2, UInt16(truncatingIfNeeded: a.uid))
            b.put16(24, UInt16(truncatingIfNeeded: a.gid))
            b.put16(120, UInt16(truncatingIfNeeded: a.uid >> 16))
            b.put16(122, UInt16(truncatingIfNeeded: a.gid >> 16))
            b.put16(26, UInt16(links))
            let atime = Ext4Time(a.accessTime), ctime = Ext4Time(a.changeTime)
            let mtime = Ext4Time(a.modificationTime), crtime = Ext4Time(a.creationTime)
            b.put32(8, atime.seconds)
            b.put32(12, ctime.seconds)
            b.put32(16, mtime.seconds)
            b.put32(132, ctime.extra)
            b.put32(136, mtime.extra)
            b.put32(140, atime.extra)
            b.put32(144, crtime.seconds)
            b.put32(148, crtime.extra)

            let sectors = (content + tree + (hasBlock ? 1 : 0)) * 8
            b.put32(28, UInt32(truncatingIfNeeded: sectors))
            b.put16(116, UInt16(truncatingIfNeeded: sectors >> 32))

            if kind == .symlink {
                let target = try source.symlinkTarget(of: node)
                size = UInt64(target.count)
                if content == 0 {
                    flags = 0
                    b.putBytes(40, Array(target.prefix(59)))
                }
            }
            if flags & 0x80000 != 0 {
                let ext = try extents(inode)
                let t = ExtentTree(extentCount: ext.count)
                let root = t.rootBytes(extents: ext) { self.allocationBlock(inode, content + UInt64($0)) }
                b.putBytes(40, root)
            }
            b.put32(32, flags)
            b.put32(4, UInt32(truncatingIfNeeded: size))
            b.put32(108, UInt32(truncatingIfNeeded: size >> 32))

            if node != 0 {
                let xattrs = try source.extendedAttributes(of: node)
                if !xattrs.isEmpty {
                    let layout = ExtendedAttributeLayout(xattrs, path: "")
                    layout.writeInInode(&b)
                    if layout.needsBlock && hasBlock {
                        let block = allocationBlock(inode, content + tree)
                        b.put32(104, UInt32(truncatingIfNeeded: block))
                        b.put16(118, UInt16(truncatingIfNeeded: block >> 32))
                    }
                }
            }
        }
        let crc = CRC32C.update(inodeSeed(inode), b)
        b.put16(124, UInt16(truncatingIfNeeded: crc))
        b.put16(130, UInt16(truncatingIfNeeded: crc >> 16))
        return b
    }

    // MARK: content blocks

    /// Directory entries in the same order the build pass planned them.
    func directoryEntries(_ inode: UInt32) throws -> [DirectoryEntryRecord] {
        let node = records.node[Int(inode)]
        guard node != 0 else { return [] }
        var children = try source.children(of: node)
        var result: [DirectoryEntryRecord] = []
        result.reserveCapacity(children.count + 1)
        if inode == 2 {
            if lostFoundSynthetic {
                result.append(DirectoryEntryRecord(name: Ext4TreeWalker.lostFound, inode: 11, fileType: 2))
            } else if let i = children.firstIndex(where: { $0.name == Ext4TreeWalker.lostFound }) {
                let entry = children.remove(at: i)
                children.insert(entry, at: 0)
            }
        }
        for child in children {
            guard child.node < UInt32(inodeOfNode.count) else {
                throw VolumeError.io("directory inode \(inode) changed: node \(child.node) out of range")
            }
            let i = inodeOfNode[Int(child.node)]
            guard i != 0 else { throw VolumeError.io("directory inode \(inode) changed: node \(child.node) unknown") }
            result.append(DirectoryEntryRecord(name: child.name, inode: i, fileType: InodeRecords.fileType(records.kind(i))))
        }
        return result
    }

    func directoryBytes(_ inode: UInt32) throws -> [UInt8] {
        try cache.directory(inode) {
            let entries = try directoryEntries(inode)
            let layout = try DirectoryLayout(names: entries.map(\.name), hasher: hasher)
            guard layout.blockCount == Int(records.content[Int(inode)]) else {
                throw VolumeError.io("directory inode \(inode) changed since the volume was built")
            }
            return layout.render(entries: entries, selfInode: inode, parentInode: records.parent[Int(inode)], checksumSeed: inodeSeed(inode))
        }
    }

    /// The k-th block of an inode's allocation, when it is metadata (not file data).
    func allocationMetadataBlock(_ inode: UInt32, _ k: UInt64) throws -> [UInt8] {
        let content = UInt64(records.content[Int(inode)])
        let tree = UInt64(records.tree(inode))
        if k < content {
            switch records.kind(inode) {
            case .directory:
                let all = try directoryBytes(inode)
                let o = Int(k) * 4096
                return Array(all[o..<(o + 4096)])
            case .symlink:
                var out = [UInt8](repeating: 0, count: 4096)
                let target = try source.symlinkTarget(of: records.node[Int(inode)])
                out.putBytes(0, Array(target.prefix(4095)))
                return out
            default:
                return [UInt8](repeating: 0, count: 4096)
            }
        }
        if k < content + tree {
            let ext = try extents(inode)
            let t = ExtentTree(extentCount: ext.count)
            return t.block(Int(k - content), extents: ext, treeBlockPhysical: { self.allocationBlock(inode, content + UInt64($0)) }, checksumSeed: inodeSeed(inode))
        }
        let xattrs = try source.extendedAttributes(of: records.node[Int(inode)])
        let layout = ExtendedAttributeLayout(xattrs, path: "")
        return layout.renderBlock(block: allocationBlock(inode, k), checksumSeed: checksumSeed)
    }
}
