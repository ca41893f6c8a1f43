/// A stream descriptor (16 bytes on disk): where a file's data, a directory's
/// link table, or an alternate stream lives.
public struct CimStream: Sendable, Equatable, Hashable {
    /// RegionOffset of the data (0: none).
    public var dataOffset: UInt64
    /// Length in bytes (low 48 bits of the length word).
    public var length: UInt64
    /// Raw stream type (bits 48–55): 0 data, 1 link table, 2 PE image.
    public var rawType: UInt8
    /// Bit 56: the stream has no stored data and reads as zeros.
    public var isSparse: Bool

    public init(dataOffset: UInt64, length: UInt64, rawType: UInt8, isSparse: Bool) {
        self.dataOffset = dataOffset
        self.length = length
        self.rawType = rawType
        self.isSparse = isSparse
    }

    init(dataOffset: UInt64, lengthWord: UInt64) {
        self.dataOffset = dataOffset
        self.length = lengthWord & CimFormat.lengthMask
        self.rawType = UInt8(truncatingIfNeeded: lengthWord >> 48)
        self.isSparse = lengthWord & CimFormat.sparseStreamBit != 0
    }

    /// The decoded type, or nil for a type this reader does not know.
    public var type: CimFormat.StreamType? { CimFormat.StreamType(rawValue: rawType) }
}
