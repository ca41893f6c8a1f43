import CimFS

/// Mapping volume offsets to generated metadata, file data and zeros.
extension Ext4Volume {
    enum BlockContent {
        case zeros(UInt64)
        case metadata(UInt64)
        /// `count` content blocks of a regular file from content index `index`.
        case fileData(inode: UInt32, index: UInt64, count: UInt64)
    }

    /// Index of the last element of `array` that is <= value (array sorted), or nil.
    static func lastIndex(_ array: [UInt64], notAbove value: UInt64) -> Int? {
        var lo = 0, hi = array.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if array[mid] <= value { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : lo - 1
    }

    /// What block `b` holds, and for how many blocks (at most `limit`) that stays true.
    func classify(_ b: UInt64, limit: UInt64) -> BlockContent {
        let g = geometry
        if b < g.dataStart {
            for gap in g.metadataGaps where gap.contains(b) { return .zeros(min(gap.upperBound - b, limit)) }
            if let t = Self.lastIndex(g.inodeTable, notAbove: b), b < g.inodeTable[t] + UInt64(g.inodeTableBlocks) {
                let tableEnd = g.inodeTable[t] + UInt64(g.inodeTableBlocks)
                let used = UInt64(usedInodes(inGroup: t))
                let usedBlocks = (used + 15) / 16
                let firstUnused = g.inodeTable[t] + usedBlocks
                if b >= firstUnused { return .zeros(min(tableEnd - b, limit)) }
                return .metadata(min(firstUnused - b, limit))
            }
            return .metadata(1)
        }
        guard let (v, contiguous) = g.virtual(physical: b) else { return .metadata(1) }
        if v >= dataEndVirtual { return .zeros(min(contiguous, limit)) }
        let inode = records.inode(holdingVirtual: v)
        let k = v - records.virtualStart[Int(inode)]
        let content = UInt64(records.content[Int(inode)])
        if k < content, records.kind(inode) == .file {
            return .fileData(inode: inode, index: k, count: min(content - k, contiguous, limit))
        }
        return .metadata(1)
    }

    public func segments(offset: UInt64, length: UInt64) throws -> [VolumeSegment] {
        // With every layout computed on demand the answer is never nil.
        try segments(offset: offset, length: length, layout: { try fileLayout($0) }) ?? []
    }

    public func segmentsWithoutBlocking(offset: UInt64, length: UInt64) throws -> [VolumeSegment]? {
        // A layout not cached yet is made from the image's data runs: a read
        // of the image, which may wait for the disk.
        try segments(offset: offset, length: length, layout: { cache.cachedLayout($0) })
    }

    /// The segments of `[offset, offset + length)`, with file layouts from
    /// `layout`; nil as soon as `layout` gives none.
    private func segments(offset: UInt64, length: UInt64, layout layoutOf: (UInt32) throws -> FileLayout?) throws -> [VolumeSegment]? {
        guard offset <= size, length <= size - offset else {
            throw VolumeError.outOfRange(offset: offset, length: length, size: size)
        }
        var out: [VolumeSegment] = []
        func add(_ segment: VolumeSegment) {
            guard segment.length > 0 else { return }
            if let last = out.last {
                switch (last, segment) {
                case (.zeros(let a), .zeros(let b)):
                    out[out.count - 1] = .zeros(length: a + b)
                    return
                case (.metadata(let a), .metadata(let b)):
                    out[out.count - 1] = .metadata(length: a + b)
                    return
                case (.file(let f1, let o1, let l1), .file(let f2, let o2, let l2)) where f1 === f2 && o1 + l1 == o2:
                    out[out.count - 1] = .file(f1, offset: o1, length: l1 + l2)
                    return
                default: break
                }
            }
            out.append(segment)
        }
        let end = offset + length
        var position = offset
        let bs = Self.blockSize
        while position < end {
            let block = position / bs
            let within = position % bs
            let limit = (end - block * bs + bs - 1) / bs
            switch classify(block, limit: limit) {
            case .zeros(let n):
                let l = min(n * bs - within, end - position)
                add(.zeros(length: l))
                position += l
            case .metadata(let n):
                let l = min(n * bs - within, end - position)
                add(.metadata(length: l))
                position += l
            case .fileData(let inode, let index, let count):
                guard let layout = try layoutOf(inode) else { return nil }
                guard let e = Self.lastIndex(layout.extentContentStart, notAbove: index) else {
                    throw VolumeError.io("inode \(inode): no extent for block \(index)")
                }
                let extent = layout.extents[e]
                let into = index - layout.extentContentStart[e]
                let n = min(count, UInt64(extent.length) - into)
                let l = min(n * bs - within, end - position)
                let logical = (UInt64(extent.logical) + into) * bs + within
                fileSegments(layout, from: logical, length: l, add: add)
                position += l
            }
        }
        return out
    }

    /// Segments for file bytes [from, from+length); bytes past EOF are zeros.
    func fileSegments(_ layout: FileLayout, from: UInt64, length: UInt64, add: (VolumeSegment) -> Void) {
        var p = from
        let end = from + length
        if p < layout.size, var r = Self.lastIndex(layout.runStarts, notAbove: p) {
            while p < end, r < layout.runs.count {
                let runStart = layout.runStarts[r]
                let run = layout.runs[r]
                let runEnd = runStart + run.length
                if runEnd > p {
                    let l = min(runEnd, end) - p
                    switch run {
                    case .zeros: add(.zeros(length: l))
                    case .file(let file, let offset, _): add(.file(file, offset: offset + (p - runStart), length: l))
                    }
                    p += l
                }
                r += 1
            }
        }
        if p < end { add(.zeros(length: end - p)) }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        let segments = try segments(offset: offset, length: UInt64(buffer.count))
        _ = try copy(segments, into: buffer, at: offset) { file, slice, fileOffset in
            try file.read(into: slice, at: fileOffset)
            return true
        }
    }

    public func readWithoutBlocking(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Bool {
        guard let segments = try segmentsWithoutBlocking(offset: offset, length: UInt64(buffer.count)) else { return false }
        // Metadata is generated, in places from the image (attributes, data
        // runs): left to a thread that may block.
        for segment in segments {
            if case .metadata = segment { return false }
        }
        return try copy(segments, into: buffer, at: offset) { file, slice, fileOffset in
            try file.readWithoutBlocking(into: slice, at: fileOffset)
        }
    }

    /// Fills `buffer` (volume bytes from `offset`) from `segments`, reading
    /// file data with `readFile`; false as soon as `readFile` gives up.
    private func copy(_ segments: [VolumeSegment], into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64,
                      readFile: (RegionFile, UnsafeMutableRawBufferPointer, UInt64) throws -> Bool) throws -> Bool {
        var done = 0
        var position = offset
        for segment in segments {
            let l = Int(segment.length)
            let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + l)])
            switch segment {
            case .zeros:
                if l > 0, let base = slice.baseAddress { base.initializeMemory(as: UInt8.self, repeating: 0, count: l) }
            case .file(let file, let fileOffset, _):
                do {
                    guard try readFile(file, slice, fileOffset) else { return false }
                } catch {
                    throw VolumeError.io("\(error)")
                }
            case .metadata:
                var p = position
                var written = 0
                while written < l {
                    let block = p / Self.blockSize
                    let within = Int(p % Self.blockSize)
                    let bytes = try metadataBlock(block)
                    let n = min(4096 - within, l - written)
                    bytes.withUnsafeBytes { src in
                        guard let from = src.baseAddress, let to = slice.baseAddress else { return }
                        to.advanced(by: written).copyMemory(from: from.advanced(by: within), byteCount: n)
                    }
                    written += n
                    p += UInt64(n)
                }
            }
            done += l
            position += UInt64(l)
        }
        return true
    }

    /// The generated 4096 bytes of metadata block `b`.
    func metadataBlock(_ b: UInt64) throws -> [UInt8] {
        let g = geometry
        let gdt = UInt64(g.gdtBlocks)
        let group = Int(b / Ext4Geometry.blocksPerGroup)
        let groupStart = UInt64(group) * Ext4Geometry.blocksPerGroup
        if b - groupStart < 1 + gdt, Ext4Geometry.hasBackup(group) {
            if b == groupStart {
                var out = [UInt8](repeating: 0, count: 4096)
                // Group 0's superblock sits at byte 1024; copies at the block start.
                out.putBytes(group == 0 ? 1024 : 0, superblock(group: group))
                return out
            }
            let o = Int(b - groupStart - 1) * 4096
            return Array(descriptorTable[o..<(o + 4096)])
        }
        if b < g.dataStart {
            if let i = Self.lastIndex(g.inodeTable, notAbove: b), b < g.inodeTable[i] + UInt64(g.inodeTableBlocks) {
                var out = [UInt8]()
                out.reserveCapacity(4096)
                let first = UInt64(i) * UInt64(inodesPerGroup) + (b - g.inodeTable[i]) * 16 + 1
                for inode in first..<(first + 16) {
                    if inode <= UInt64(usedInodes) {
                        out += try inodeBytes(UInt32(inode))
                    } else {
                        out += [UInt8](repeating: 0, count: 256)
                    }
                }
                return out
            }
            if let i = Self.lastIndex(g.inodeBitmap, notAbove: b), g.inodeBitmap[i] == b { return inodeBitmap(group: i) }
            if let i = Self.lastIndex(g.blockBitmap, notAbove: b), g.blockBitmap[i] == b { return blockBitmap(group: i) }
            return [UInt8](repeating: 0, count: 4096)
        }
        guard let (v, _) = g.virtual(physical: b), v < dataEndVirtual else {
            return [UInt8](repeating: 0, count: 4096)
        }
        let inode = records.inode(holdingVirtual: v)
        return try allocationMetadataBlock(inode, v - records.virtualStart[Int(inode)])
    }
}
