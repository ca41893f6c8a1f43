import CimFS

/// Where one contiguous piece of a volume's bytes comes from.
public enum VolumeSegment: Sendable {
    /// Reads as zeros: a hole, free space or padding.
    case zeros(length: UInt64)
    /// Generated metadata (superblock, inode tables, directories...), only
    /// available through ``Volume/read(into:at:)``.
    case metadata(length: UInt64)
    /// File data stored in a file on disk: `length` bytes at `offset` of
    /// `file`. A server may send these with sendfile/splice.
    case file(RegionFile, offset: UInt64, length: UInt64)

    /// The number of volume bytes the segment covers.
    public var length: UInt64 {
        switch self {
        case .zeros(let length), .metadata(let length): return length
        case .file(_, _, let length): return length
        }
    }
}

/// One run of a block-status answer.
public struct VolumeExtent: Sendable, Equatable {
    /// Length in bytes.
    public var length: UInt64
    /// True when the run reads as zeros and holds no data (NBD: hole + zero).
    public var isZero: Bool

    public init(length: UInt64, isZero: Bool) {
        self.length = length
        self.isZero = isZero
    }
}

/// Errors of the volume layer.
public enum VolumeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The requested range is not inside the volume.
    case outOfRange(offset: UInt64, length: UInt64, size: UInt64)
    /// The backing data could not be read (a region file changed, an I/O error).
    case io(String)
    /// The image cannot be represented as this kind of volume.
    case unrepresentable(String)

    public var description: String {
        switch self {
        case .outOfRange(let offset, let length, let size):
            return "range \(offset)+\(length) is outside the volume (\(size) bytes)"
        case .io(let message): return "I/O error: \(message)"
        case .unrepresentable(let message): return message
        }
    }
}

/// A read-only block device image, synthesized on the fly.
///
/// Implementations are safe to use from many threads at once.
public protocol Volume: AnyObject, Sendable {
    /// Size in bytes (a multiple of 4096).
    var size: UInt64 { get }
    /// Short name of the filesystem format, e.g. `"ext4"`.
    var format: String { get }

    /// Fills `buffer` with the volume bytes `[offset, offset + buffer.count)`.
    /// Throws ``VolumeError/outOfRange(offset:length:size:)`` for a range that
    /// is not inside the volume, ``VolumeError/io(_:)`` when backing data fails.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws

    /// Describes where the bytes `[offset, offset + length)` come from, as
    /// segments in order whose lengths add up to `length`.
    func segments(offset: UInt64, length: UInt64) throws -> [VolumeSegment]

    /// Like ``segments(offset:length:)``, but returns nil instead of doing
    /// anything that may wait for the disk (reading the image to map a file
    /// not looked at before, say). For callers on an event loop, which then
    /// ask again on a thread that may block.
    func segmentsWithoutBlocking(offset: UInt64, length: UInt64) throws -> [VolumeSegment]?

    /// Like ``read(into:at:)``, but only when every byte can be produced
    /// without waiting for the disk (file data in the page cache, zeros);
    /// returns false otherwise, leaving `buffer` in an unspecified state.
    func readWithoutBlocking(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Bool
}

extension Volume {
    /// Never without blocking, unless the volume knows better.
    public func segmentsWithoutBlocking(offset: UInt64, length: UInt64) throws -> [VolumeSegment]? { nil }

    /// Never without blocking, unless the volume knows better.
    public func readWithoutBlocking(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Bool { false }
}

extension Volume {
    /// Reads `length` bytes at `offset` into a new array.
    public func read(offset: UInt64, length: Int) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: length) { buffer, initialized in
            try read(into: UnsafeMutableRawBufferPointer(buffer), at: offset)
            initialized = length
        }
    }

    /// Which parts of `[offset, offset + length)` hold data and which read as
    /// zeros, with neighbouring runs of the same kind merged. Zero runs shorter
    /// than ``minimumZeroRun`` (the padding after a file's last byte, say) are
    /// reported as data: clients map in blocks, and such slivers only cost them
    /// round trips.
    public func blockStatus(offset: UInt64, length: UInt64) throws -> [VolumeExtent] {
        var extents: [VolumeExtent] = []
        func append(_ length: UInt64, isZero: Bool) {
            if let last = extents.last, last.isZero == isZero {
                extents[extents.count - 1].length += length
            } else {
                extents.append(VolumeExtent(length: length, isZero: isZero))
            }
        }
        var pendingZeros: UInt64 = 0
        for segment in try segments(offset: offset, length: length) where segment.length > 0 {
            if case .zeros = segment {
                pendingZeros += segment.length
                continue
            }
            if pendingZeros > 0 {
                append(pendingZeros, isZero: pendingZeros >= minimumZeroRun)
                pendingZeros = 0
            }
            append(segment.length, isZero: false)
        }
        if pendingZeros > 0 { append(pendingZeros, isZero: pendingZeros >= minimumZeroRun || extents.isEmpty) }
        return extents
    }

    /// The shortest zero run ``blockStatus(offset:length:)`` reports as zeros.
    public var minimumZeroRun: UInt64 { 4096 }
}
