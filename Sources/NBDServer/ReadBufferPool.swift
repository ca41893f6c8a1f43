import NIOCore

/// Buffers for the copied bytes of large READ replies, kept by one connection
/// and filled again once their reply has been written.
///
/// A fresh buffer of a few hundred KiB is an `mmap` from malloc whose pages
/// the kernel must fault in and zero, and a `munmap` when it is freed: for a
/// 256 KiB read that cost more than the read itself (`nbdcopy` from a
/// server copying into fresh buffers ran at half the rate, with 2-3 x the
/// server's CPU). Like nbdkit's per-thread buffers, these are paid for once.
///
/// Confined to the connection's event loop; reads done on the blocking-I/O
/// pool allocate their own buffers.
final class ReadBufferPool {
    /// Smaller buffers come from malloc's per-thread caches cheaply enough.
    let minimumCapacity: Int
    /// Most bytes kept spare: a bound on what an idle connection holds.
    let maximumSpareBytes: Int
    private var spares: [ByteBuffer] = []
    /// Bytes held in spare buffers now.
    private(set) var heldBytes = 0

    init(minimumCapacity: Int = 64 * 1024, maximumSpareBytes: Int) {
        self.minimumCapacity = minimumCapacity
        self.maximumSpareBytes = maximumSpareBytes
    }

    /// An empty buffer with room for `capacity` bytes: a spare one when one
    /// is large enough, else a new one.
    func take(capacity: Int) -> ByteBuffer {
        if capacity >= minimumCapacity, let index = spares.lastIndex(where: { $0.capacity >= capacity }) {
            var buffer = spares.remove(at: index)
            heldBytes -= buffer.capacity
            buffer.clear()
            return buffer
        }
        return ByteBufferAllocator().buffer(capacity: capacity)
    }

    /// Keeps `buffer` for a later ``take(capacity:)`` when it is large enough
    /// to be worth it and the spares stay within ``maximumSpareBytes``. The
    /// caller must be done with it; a copy still held elsewhere (NIO's, until
    /// its write is finished) only makes the next fill copy on write.
    func giveBack(_ buffer: ByteBuffer) {
        guard isWorthKeeping(buffer), heldBytes + buffer.capacity <= maximumSpareBytes else { return }
        spares.append(buffer)
        heldBytes += buffer.capacity
    }

    /// True for buffers ``giveBack(_:)`` may keep: the caller need not hold
    /// on to the others (nor pay for remembering them).
    func isWorthKeeping(_ buffer: ByteBuffer) -> Bool {
        buffer.capacity >= minimumCapacity
    }
}
