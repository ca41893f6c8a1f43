/// Where each extended attribute of one inode goes: the in-inode area (92
/// bytes after the 4-byte ibody header), the single external block, or — for
/// a value too large for either — a separate EA inode (feature ea_inode)
/// whose data blocks hold the value, referenced from an entry in the inode
/// area or the block.
///
/// Attributes are placed greedily in the order the source gives them: into
/// the inode when they fit, else into the block, else as an EA inode whose
/// entry goes into the inode or the block; else (no room even for the entry,
/// values over 64 KiB which Linux refuses, unknown namespaces) they are left
/// out with a warning. The function is deterministic, so the build pass and
/// the on-demand inode generation place every attribute identically. EA
/// inodes are numbered `firstEAInode`, `firstEAInode + 1`, ... in attribute order.
struct ExtendedAttributeLayout {
    struct Entry {
        var index: UInt8
        var name: [UInt8]
        var value: [UInt8]
        /// The EA inode holding the value, or 0 when the value is stored here.
        var valueInode: UInt32 = 0
        var entrySize: Int { 16 + ((name.count + 3) & ~3) }
        var valueSize: Int { valueInode != 0 ? 0 : (value.count + 3) & ~3 }
    }

    var inInode: [Entry] = []
    var inBlock: [Entry] = []
    /// Values stored in EA inodes, in EA inode order.
    var eaValues: [[UInt8]] = []
    /// At most one line per file, naming the file and every attribute left out with why.
    var warnings: [String] = []
    private var leftOut: [String] = []

    static let inodeAreaSize = 256 - 128 - 32 - 4
    static let blockAreaSize = 4096 - 32

    /// - Parameter firstEAInode: number of the first EA inode; 0 means the
    ///   numbers are not known yet (the build pass only counts them).
    init(_ attributes: [ExtendedAttribute], firstEAInode: UInt32 = 0, path: @autoclosure () -> String) {
        var inodeUsed = 4  // terminator
        var blockUsed = 4
        for attribute in attributes {
            guard let (index, suffix) = Self.split(attribute.name) else {
                leftOut.append("\(attribute.name) (namespace not supported by ext4)")
                continue
            }
            var value = attribute.value
            if index == 2 || index == 3 {
                guard let converted = Self.convertACL(value) else {
                    leftOut.append("\(attribute.name) (not a valid POSIX ACL)")
                    continue
                }
                value = converted
            }
            if suffix.count > 255 {
                leftOut.append("\(attribute.name) (name longer than 255 bytes)")
                continue
            }
            if attribute.value.count > 65536 {
                leftOut.append("\(attribute.name) (value of \(attribute.value.count) bytes exceeds the 64 KiB Linux limit)")
                continue
            }
            let entry = Entry(index: index, name: suffix, value: value)
            let need = entry.entrySize + entry.valueSize
            if inodeUsed + need <= Self.inodeAreaSize {
                inInode.append(entry)
                inodeUsed += need
            } else if blockUsed + need <= Self.blockAreaSize {
                inBlock.append(entry)
                blockUsed += need
            } else {
                var reference = entry
                // A placeholder number while counting; entries with inode 0 would hold the value inline.
                reference.valueInode = firstEAInode == 0 ? UInt32.max : firstEAInode + UInt32(eaValues.count)
                if inodeUsed + reference.entrySize <= Self.inodeAreaSize {
                    inInode.append(reference)
                    inodeUsed += reference.entrySize
                    eaValues.append(value)
                } else if blockUsed + reference.entrySize <= Self.blockAreaSize {
                    inBlock.append(reference)
                    blockUsed += reference.entrySize
                    eaValues.append(value)
                } else {
                    leftOut.append("\(attribute.name) (no room left for its entry in the inode or the 4 KiB attribute block)")
                }
            }
        }
        if !leftOut.isEmpty {
            warnings.append("\(path()): extended attributes left out: " + leftOut.joined(separator: "; "))
        }
        // A block's entries must be sorted by index, name length, name.
        inBlock.sort { l, r in
            if l.index != r.index { return l.index < r.index }
            if l.name.count != r.name.count { return l.name.count < r.name.count }
            return l.name.lexicographicallyPrecedes(r.name)
        }
    }

    var needsBlock: Bool { !inBlock.isEmpty }

    /// Splits a full attribute name into ext4's name index and the stored suffix.
    static func split(_ name: String) -> (UInt8, [UInt8])? {
        let bytes = Array(name.utf8)
        let prefixes: [(String, UInt8, Bool)] = [
            ("user.", 1, false), ("system.posix_acl_access", 2, true),
            ("system.posix_acl_default", 3, true), ("trusted.", 4, false), ("security.", 6, false),
        ]
        for (prefix, index, exact) in prefixes {
            let p = Array(prefix.utf8)
            if exact {
                if bytes == p { return (index, []) }
            } else if bytes.count > p.count, bytes.starts(with: p) {
                return (index, Array(bytes[p.count...]))
            }
        }
        return nil
    }

    /// Converts a POSIX ACL from the Linux xattr interface format (version 2,
    /// 8-byte entries) to ext4's on-disk format (version 1, ids only on named
    /// user/group entries). Returns nil when the value is malformed.
    static func convertACL(_ value: [UInt8]) -> [UInt8]? {
        guard value.count >= 4, (value.count - 4) % 8 == 0, value.get32(0) == 2 else { return nil }
        var out: [UInt8] = [1, 0, 0, 0]
        var offset = 4
        while offset < value.count {
            let tag = value.get16(offset)
            out += value[offset..<(offset + 4)]
            switch tag {
            case 0x01, 0x04, 0x10, 0x20: break
            case 0x02, 0x08: out += value[(offset + 4)..<(offset + 8)]
            default: return nil
            }
            offset += 8
        }
        return out
    }

    /// The checksum of an EA inode's value (kept in its `i_atime`).
    static func valueHash(_ value: [UInt8], checksumSeed: UInt32) -> UInt32 {
        CRC32C.update(checksumSeed, value)
    }

    /// The entry hash (name with signed chars, then the value words, or for
    /// an EA inode reference the value's checksum as the one word).
    static func hash(_ entry: Entry, checksumSeed: UInt32) -> UInt32 {
        var h: UInt32 = 0
        for c in entry.name {
            h = (h << 5) ^ (h >> 27) ^ UInt32(bitPattern: Int32(Int8(bitPattern: c)))
        }
        if entry.valueInode != 0 {
            return (h << 16) ^ (h >> 16) ^ valueHash(entry.value, checksumSeed: checksumSeed)
        }
        var i = 0
        while i < entry.value.count {
            var word: UInt32 = 0
            for k in 0..<4 where i + k < entry.value.count {
                word |= UInt32(entry.value[i + k]) << (8 * UInt32(k))
            }
            h = (h << 16) ^ (h >> 16) ^ word
            i += 4
        }
        return h
    }

    /// Writes the in-inode attributes into a 256-byte inode (ibody header at 160).
    func writeInInode(_ inode: inout [UInt8], checksumSeed: UInt32) {
        guard !inInode.isEmpty else { return }
        let base = 160
        inode.put32(base, 0xEA02_0000)
        let first = base + 4
        var entryOffset = first
        var valueEnd = 256
        for entry in inInode {
            inode.put8(entryOffset, UInt8(entry.name.count))
            inode.put8(entryOffset + 1, entry.index)
            inode.put32(entryOffset + 8, UInt32(entry.value.count))
            inode.putBytes(entryOffset + 16, entry.name)
            if entry.valueInode != 0 {
                inode.put32(entryOffset + 4, entry.valueInode)
                // The kernel checks this hash for EA inode references.
                inode.put32(entryOffset + 12, Self.hash(entry, checksumSeed: checksumSeed))
            } else {
                valueEnd -= entry.valueSize
                inode.put16(entryOffset + 2, entry.value.isEmpty ? 0 : UInt16(valueEnd - first))
                inode.put32(entryOffset + 12, 0)  // in-inode hashes may be zero
                inode.putBytes(valueEnd, entry.value)
            }
            entryOffset += entry.entrySize
        }
    }

    /// The external attribute block (checksum included) for block number `block`.
    func renderBlock(block: UInt64, checksumSeed: UInt32) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 4096)
        out.put32(0, 0xEA02_0000)
        out.put32(4, 1)  // refcount
        out.put32(8, 1)  // blocks
        var entryOffset = 32
        var valueEnd = 4096
        var blockHash: UInt32 = 0
        var sawZeroHash = false
        for entry in inBlock {
            let h = Self.hash(entry, checksumSeed: checksumSeed)
            out.put8(entryOffset, UInt8(entry.name.count))
            out.put8(entryOffset + 1, entry.index)
            out.put32(entryOffset + 8, UInt32(entry.value.count))
            out.put32(entryOffset + 12, h)
            out.putBytes(entryOffset + 16, entry.name)
            if entry.valueInode != 0 {
                out.put32(entryOffset + 4, entry.valueInode)
            } else {
                valueEnd -= entry.valueSize
                out.put16(entryOffset + 2, UInt16(valueEnd))
                out.putBytes(valueEnd, entry.value)
            }
            entryOffset += entry.entrySize
            // An entry hash of zero makes the whole block hash zero.
            if h == 0 { sawZeroHash = true }
            blockHash = (blockHash << 16) ^ (blockHash >> 16) ^ h
        }
        out.put32(12, sawZeroHash ? 0 : blockHash)
        var crc = CRC32C.update(checksumSeed, le64: block)
        crc = CRC32C.update(crc, out)
        out.put32(16, crc)
        return out
    }
}
