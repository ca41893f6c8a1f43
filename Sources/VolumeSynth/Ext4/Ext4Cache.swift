import Foundation

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

    /// The layout of `inode` if it is cached; never computes it.
    func cachedLayout(_ inode: UInt32) -> FileLayout? {
        lock.lock()
        defer { lock.unlock() }
        return layouts[inode]
    }

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
