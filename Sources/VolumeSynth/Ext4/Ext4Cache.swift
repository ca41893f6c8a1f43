import Foundation

/// A file's data runs and extents, as needed to serve its blocks.
final class FileLayout: @unchecked Sendable {
    let runs: [DataRun]
    /// Byte offset of each run in the file.
    let runStarts: [UInt64]
    let size: UInt64
    let extents: [Extent]
    /// Content index (block number within the inode's content) of each extent.
    let extentContentStart: [UInt64]
    let tree: ExtentTree

    init(runs: [DataRun], extents: [Extent]) {
        self.runs = runs
        var starts: [UInt64] = []
        starts.reserveCapacity(runs.count)
        var p: UInt64 = 0
        for r in runs {
            starts.append(p)
            p += r.length
        }
        runStarts = starts
        size = p
        self.extents = extents
        var c: UInt64 = 0
        var cs: [UInt64] = []
        cs.reserveCapacity(extents.count)
        for e in extents {
            cs.append(c)
            c += UInt64(e.length)
        }
        extentContentStart = cs
        tree = ExtentTree(extentCount: extents.count)
    }
}

/// Bounded caches of regenerated structures, shared by all reader threads.
/// Values are computed outside the lock; a race only computes twice.
final class Ext4Cache: @unchecked Sendable {
    private let lock = NSLock()
    private var layouts: [UInt32: FileLayout] = [:]
    private var layoutOrder: [UInt32] = []
    private var directories: [UInt32: [UInt8]] = [:]
    private var directoryOrder: [UInt32] = []
    private var directoryBytes = 0

    static let maxLayouts = 4096
    static let maxDirectoryBytes = 32 << 20

    func layout(_ inode: UInt32, make: () throws -> FileLayout) rethrows -> FileLayout {
        lock.lock()
        if let hit = layouts[inode] {
            lock.unlock()
            return hit
        }
        lock.unlock()
        let value = try make()
        lock.lock()
        defer { lock.unlock() }
        if layouts[inode] == nil {
            layouts[inode] = value
            layoutOrder.append(inode)
            if layoutOrder.count > Self.maxLayouts {
                // Drop the older half (FIFO).
                for old in layoutOrder[0..<(Self.maxLayouts / 2)] { layouts[old] = nil }
                layoutOrder.removeFirst(Self.maxLayouts / 2)
            }
        }
        return value
    }

    func directory(_ inode: UInt32, make: () throws -> [UInt8]) rethrows -> [UInt8] {
        lock.lock()
        if let hit = directories[inode] {
            lock.unlock()
            return hit
        }
        lock.unlock()
        let value = try make()
        lock.lock()
        defer { lock.unlock() }
        if directories[inode] == nil {
            directories[inode] = value
            directoryOrder.append(inode)
            directoryBytes += value.count
            while directoryBytes > Self.maxDirectoryBytes, directoryOrder.count > 1 {
                let old = directoryOrder.removeFirst()
                directoryBytes -= directories.removeValue(forKey: old)?.count ?? 0
            }
        }
        return value
    }
}
