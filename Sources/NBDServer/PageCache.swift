import CPageCache

/// Whether file data can be sent from the event loop without waiting for the disk.
///
/// `sendfile` of pages that are not cached reads them from the disk on the
/// calling thread, which on an event loop would stall every connection it
/// serves. One `cachestat(2)` call (Linux 6.5+) tells whether a whole range
/// is resident; where the call is missing the answer is always "not known",
/// and such reads go through the blocking-I/O pool.
///
/// Pages can be evicted between the question and the `sendfile`; that is
/// rare for data just found resident, and costs a short stall, never a wrong
/// byte.
enum PageCache {
    /// True only when every page of `[offset, offset + length)` of the file
    /// open on `fileDescriptor` is in the page cache.
    static func isResident(fileDescriptor: Int32, offset: UInt64, length: UInt64) -> Bool {
        guard isSupported, fileDescriptor >= 0 else { return false }
        return cpagecache_range_is_resident(fileDescriptor, offset, length) == 1
    }

    /// Asked once per process.
    static let isSupported = cpagecache_is_supported() == 1
}
