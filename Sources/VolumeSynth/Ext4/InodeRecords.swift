/// Compact per-inode records kept for the life of a volume (struct of arrays,
/// indexed by inode number; index 0 unused). Everything else about an inode
/// (permissions, owner, times, attributes, data runs, children) is asked
/// from the source again when its metadata block is generated.
struct InodeRecords: Sendable {
    enum Kind: UInt8 { case none = 0, file = 1, directory = 2, symlink = 3 }
    static let kindMask: UInt8 = 0x0F
    static let xattrBlockFlag: UInt8 = 0x10

    /// Source node of each inode; 0 for reserved inodes and a synthesized lost+found.
    var node: [UInt32] = [0]
    /// Kind in the low bits, ``xattrBlockFlag``.
    var flags: [UInt8] = [0]
    /// Link count (before the dir_nlink clamp for directories).
    var links: [UInt32] = [0]
    /// Parent directory inode (directories only).
    var parent: [UInt32] = [0]
    /// Content blocks: file data blocks, directory blocks, long symlink block.
    var content: [UInt32] = [0]
    /// First virtual data block of the inode's allocation:
    /// [content blocks][extent tree blocks][xattr block].
    var virtualStart: [UInt64] = [0]
    /// Extent tree blocks, for the few inodes that have any.
    var treeBlocks: [UInt32: UInt32] = [:]

    var count: Int { node.count - 1 }

    mutating func append(node n: UInt32, kind: Kind, links l: UInt32, parent p: UInt32, content c: UInt32) -> UInt32 {
        node.append(n)
        flags.append(kind.rawValue)
        links.append(l)
        parent.append(p)
        content.append(c)
        virtualStart.append(0)
        return UInt32(node.count - 1)
    }

    func kind(_ inode: UInt32) -> Kind { Kind(rawValue: flags[Int(inode)] & Self.kindMask) ?? .none }
    func hasXattrBlock(_ inode: UInt32) -> Bool { flags[Int(inode)] & Self.xattrBlockFlag != 0 }
    func tree(_ inode: UInt32) -> UInt32 { treeBlocks[inode] ?? 0 }
    func allocation(_ inode: UInt32) -> UInt64 {
        UInt64(tree(inode)) + UInt64(content[Int(inode)]) + (hasXattrBlock(inode) ? 1 : 0)
    }

    /// The inode whose allocation holds virtual block `v` (v < end of allocations).
    func inode(holdingVirtual v: UInt64) -> UInt32 {
        // Allocations are in inode order, so virtualStart is non-decreasing;
        // the last inode starting at or before v is the one holding it.
        var lo = 1, hi = count
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if virtualStart[mid] <= v { lo = mid } else { hi = mid - 1 }
        }
        return UInt32(lo)
    }

    static func fileType(_ kind: Kind) -> UInt8 {
        switch kind {
        case .file: return 1
        case .directory: return 2
        case .symlink: return 7
        case .none: return 0
        }
    }
}
