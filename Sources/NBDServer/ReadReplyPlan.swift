import CimFS
import NIOCore
import VolumeSynth

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The payload of a READ reply: byte buffers, shared zero buffers, and
/// `sendfile` of large file-backed pieces.
///
/// Page-cached data is planned on the event loop
/// (``buildWithoutBlocking(volume:offset:length:options:)``); everything that
/// may wait for the disk (`segments` of files not mapped yet, `pread` of
/// metadata and of pieces not cached) happens in
/// ``build(volume:offset:length:options:)`` on the blocking-I/O pool.
struct ReadReplyPlan: Sendable {
    /// One piece of a data payload, in order.
    enum Part: Sendable {
        /// Bytes already read.
        case bytes(ByteBuffer)
        /// That many zero bytes (written from a shared zero buffer).
        case zeros(Int)
        /// `length` bytes at `offset` of `file`, to be sent with `sendfile`.
        case file(RegionFile, offset: UInt64, length: Int)
    }

    /// One content chunk: data (payload parts) or a hole.
    enum Chunk: Sendable {
        case data(offset: UInt64, length: Int, parts: [Part])
        case hole(offset: UInt64, length: UInt32)
    }

    /// How the reply will be framed, which decides what may become a hole.
    struct Options: Sendable {
        /// Structured reply without `NBD_CMD_FLAG_DF`: zero runs may be holes.
        var allowHoles: Bool
        var useSendfile: Bool
        var sendfileMinimumLength: UInt64
        /// Holes start and end on multiples of this (the advertised minimum
        /// block size); partial blocks of a zero run are sent as data.
        var blockSize: UInt64
        /// Zero runs with at least this many bytes of whole blocks become
        /// `OFFSET_HOLE` chunks.
        var holeMinimumLength: UInt64 = 4096
    }

    var chunks: [Chunk]

    /// Plans the reply for `[offset, offset + length)`, which the caller has
    /// checked lies inside the volume. Blocking: call on the I/O pool.
    static func build(volume: any Volume, offset: UInt64, length: Int, options: Options) throws -> ReadReplyPlan {
        let segments = try volume.segments(offset: offset, length: UInt64(length))
        guard let plan = try build(volume: volume, segments: segments, offset: offset, length: length, options: options,
                                   blocking: true, buffers: nil) else {
            // Only a read without blocking gives up.
            throw VolumeError.io("the read of \(length) bytes at \(offset) could not be planned")
        }
        return plan
    }

    /// Like ``build(volume:offset:length:options:)``, but nil instead of doing
    /// anything that may wait for the disk: for the event loop, which serves
    /// page-cached data at once and leaves the rest to the I/O pool. Parts to
    /// be sent with `sendfile` stay here only when ``PageCache`` finds all
    /// their pages resident (`sendfile` of pages not cached would stall the
    /// loop; the pool starts their readahead instead). Copied bytes go into
    /// buffers from `buffers`, the connection's, when given.
    static func buildWithoutBlocking(volume: any Volume, offset: UInt64, length: Int, options: Options,
                                     buffers: ReadBufferPool? = nil) throws -> ReadReplyPlan? {
        guard let segments = try volume.segmentsWithoutBlocking(offset: offset, length: UInt64(length)) else { return nil }
        do {
            return try build(volume: volume, segments: segments, offset: offset, length: length, options: options,
                             blocking: false, buffers: buffers)
        } catch is Builder.WouldBlock {
            return nil
        }
    }

    private static func build(volume: any Volume, segments: [VolumeSegment], offset: UInt64, length: Int,
                              options: Options, blocking: Bool, buffers: ReadBufferPool?) throws -> ReadReplyPlan? {
        var total: UInt64 = 0
        for segment in segments {
            let (sum, overflow) = total.addingReportingOverflow(segment.length)
            guard !overflow else { throw VolumeError.io("volume segments overflow") }
            total = sum
        }
        // A volume that describes a different length would desynchronise the
        // stream; treat it as an I/O error of that volume.
        guard total == UInt64(length) else {
            throw VolumeError.io("volume described \(total) bytes for a \(length)-byte read at \(offset)")
        }

        var builder = Builder(volume: volume, start: offset, blocking: blocking, buffers: buffers)
        var checkedFiles = Set<ObjectIdentifier>()
        // Neighbouring zero segments are taken as one run, so its whole blocks
        // can become one aligned hole.
        var zeroRun: UInt64 = 0
        for segment in segments where segment.length > 0 {
            let len = segment.length  // <= length <= 32 MiB, so Int conversions are safe
            if case .zeros = segment {
                zeroRun += len
                continue
            }
            try builder.addZeroRun(length: zeroRun, options: options)
            zeroRun = 0
            switch segment {
            case .zeros:
                break
            case .metadata:
                builder.addCopy(length: len)
            case .file(let file, let fileOffset, _):
                if options.useSendfile && len >= options.sendfileMinimumLength {
                    // The range comes from the image's data runs: checked
                    // before it reaches a system call.
                    let (end, overflow) = fileOffset.addingReportingOverflow(len)
                    guard !overflow, end <= file.size, fileOffset <= UInt64(Int.max) else {
                        throw VolumeError.io("segment \(fileOffset)+\(len) is outside \(file.path) (\(file.size) bytes)")
                    }
                    // On the event loop only pages already cached: sendfile of
                    // others would wait for the disk there.
                    if !blocking && !PageCache.isResident(fileDescriptor: file.fileDescriptor, offset: fileOffset, length: len) {
                        return nil
                    }
                    if checkedFiles.insert(ObjectIdentifier(file)).inserted {
                        // sendfile bypasses Volume.read and its checks: a file that
                        // changed under us must fail the read, not send mixed bytes.
                        // The same check as RegionFile.read (fstat only, no path lookup).
                        try file.checkContentUnchanged()
                    }
                    if blocking {
                        // Start the page-cache fill now so the sendfile on the event loop
                        // finds the pages resident instead of blocking on the disk.
                        _ = posix_fadvise(file.fileDescriptor, off_t(fileOffset), off_t(len), Int32(POSIX_FADV_WILLNEED))
                    }
                    try builder.addFile(file, offset: fileOffset, length: len)
                } else {
                    builder.addCopy(length: len)
                }
            }
        }
        try builder.addZeroRun(length: zeroRun, options: options)
        try builder.finish()
        return ReadReplyPlan(chunks: builder.chunks)
    }

    /// Accumulates parts into chunks, merging neighbouring copied ranges into
    /// one `Volume.read` each.
    private struct Builder {
        /// A read without blocking found bytes that are not in the page cache.
        struct WouldBlock: Error {}

        let volume: any Volume
        /// False: copy only what is at hand, else throw ``WouldBlock``.
        let blocking: Bool
        /// Where copied bytes go, when the caller keeps buffers; else malloc.
        let buffers: ReadBufferPool?
        var cursor: UInt64
        var chunks: [Chunk] = []
        var dataStart: UInt64
        var dataLength = 0
        var parts: [Part] = []
        /// Volume range not read yet, to be copied with one `Volume.read`.
        var pendingCopyStart: UInt64 = 0
        var pendingCopyLength = 0

        init(volume: any Volume, start: UInt64, blocking: Bool, buffers: ReadBufferPool?) {
            self.volume = volume
            self.blocking = blocking
            self.buffers = buffers
            self.cursor = start
            self.dataStart = start
        }

        /// A run of zeros: its whole blocks become a hole when allowed and long
        /// enough, the rest is data.
        mutating func addZeroRun(length: UInt64, options: Options) throws {
            guard length > 0 else { return }
            guard options.allowHoles else { return try addZeros(length: length) }
            let (head, body, tail) = BlockAlignment.interior(start: cursor, length: length, blockSize: options.blockSize)
            guard body >= options.holeMinimumLength else { return try addZeros(length: length) }
            if head > 0 { try addZeros(length: head) }
            try addHole(length: body)
            if tail > 0 { try addZeros(length: tail) }
        }

        mutating func addCopy(length: UInt64) {
            if pendingCopyLength == 0 { pendingCopyStart = cursor }
            pendingCopyLength += Int(length)
            advance(length)
        }

        mutating func addZeros(length: UInt64) throws {
            // Short zero runs between copied pieces are cheaper to read along.
            if pendingCopyLength > 0 && length < 64 * 1024 {
                addCopy(length: length)
                return
            }
            try flushCopy()
            parts.append(.zeros(Int(length)))
            advance(length)
        }

        mutating func addFile(_ file: RegionFile, offset: UInt64, length: UInt64) throws {
            try flushCopy()
            parts.append(.file(file, offset: offset, length: Int(length)))
            advance(length)
        }

        mutating func addHole(length: UInt64) throws {
            try flushData()
            chunks.append(.hole(offset: cursor, length: UInt32(length)))
            cursor += length
            dataStart = cursor
        }

        mutating func finish() throws {
            try flushData()
        }

        private mutating func advance(_ length: UInt64) {
            cursor += length
            dataLength += Int(length)
        }

        private mutating func flushCopy() throws {
            guard pendingCopyLength > 0 else { return }
            var buffer = buffers?.take(capacity: pendingCopyLength) ?? ByteBufferAllocator().buffer(capacity: pendingCopyLength)
            let start = pendingCopyStart
            let count = pendingCopyLength
            let volume = self.volume
            let blocking = self.blocking
            try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw in
                let target = UnsafeMutableRawBufferPointer(rebasing: raw.prefix(count))
                if blocking {
                    try volume.read(into: target, at: start)
                } else if try !volume.readWithoutBlocking(into: target, at: start) {
                    throw WouldBlock()
                }
                return count
            }
            parts.append(.bytes(buffer))
            pendingCopyLength = 0
        }

        private mutating func flushData() throws {
            try flushCopy()
            if dataLength > 0 {
                chunks.append(.data(offset: dataStart, length: dataLength, parts: parts))
            }
            parts = []
            dataLength = 0
            dataStart = cursor
        }
    }
}
