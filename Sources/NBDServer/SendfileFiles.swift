import CimFS
import NIOCore

/// The region files a connection is sending with `sendfile`, each with one
/// `NIOFileHandle` on its descriptor shared by all of its pending replies.
///
/// The handle does not own the descriptor: ownership is taken back (without
/// closing it) once the file's last pending reply completes, and the
/// `RegionFile`, which owns the descriptor, is kept alive until then. Used on
/// the connection's event loop only.
struct SendfileFiles {
    private struct Entry {
        let file: RegionFile
        let handle: NIOFileHandle
        var replies: Int
    }

    private var entries: [ObjectIdentifier: Entry] = [:]

    var isEmpty: Bool { entries.isEmpty }

    /// The handle to put in a `FileRegion` of `file`, for a reply that ends
    /// with ``endReply(_:)``.
    mutating func beginReply(_ file: RegionFile) -> NIOFileHandle {
        let key = ObjectIdentifier(file)
        if var entry = entries[key] {
            entry.replies += 1
            entries[key] = entry
            return entry.handle
        }
        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: file.fileDescriptor)
        entries[key] = Entry(file: file, handle: handle, replies: 1)
        return handle
    }

    /// A reply that used `file` was written or failed.
    mutating func endReply(_ file: RegionFile) {
        let key = ObjectIdentifier(file)
        guard var entry = entries[key] else { return }
        entry.replies -= 1
        if entry.replies > 0 {
            entries[key] = entry
            return
        }
        entries[key] = nil
        withExtendedLifetime(entry.file) {
            _ = try? entry.handle.takeDescriptorOwnership()
        }
    }

    /// Throws when one of the files changed since it was opened.
    func checkUnchanged() throws {
        for entry in entries.values {
            try entry.file.checkContentUnchanged()
        }
    }
}
