/// A FileID: 1-based index into the image's file tables.
public typealias CimFileID = UInt32

/// A decoded file entry: 88 bytes in format 1.x, 96 in 2.x and 3.x (longer
/// entries carry fields this reader does not know; they are skipped).
public struct CimFileEntry: Sendable, Equatable {
    public var flags: UInt16
    public var eaLength: UInt16
    public var reparseTag: UInt32
    public var creationTime: UInt64
    public var lastWriteTime: UInt64
    public var changeTime: UInt64
    public var lastAccessTime: UInt64
    /// The data stream, or the directory's link table.
    public var defaultStream: CimStream
    public var securityDescriptorOffset: UInt64
    public var extendedAttributesOffset: UInt64
    public var reparseDataOffset: UInt64
    public var streamTableOffset: UInt64
    /// The parent directory's FileID; nil in format 1.x, whose entries have no such field.
    public var parentFileID: UInt32?
    /// The region index the entry's objects are relative to; nil in format 1.x.
    public var baseRegionIndex: UInt16?

    /// A file is a directory exactly when its default stream is a link table.
    public var isDirectory: Bool { defaultStream.rawType == CimFormat.StreamType.linkTable.rawValue }

    /// The Windows attribute word, derived as the format page's section 10 says.
    public var attributes: UInt32 {
        var value: UInt32 = 0
        if flags & CimFormat.EntryFlag.readOnly != 0 { value |= CimFormat.Attribute.readOnly }
        if flags & CimFormat.EntryFlag.hidden != 0 { value |= CimFormat.Attribute.hidden }
        if flags & CimFormat.EntryFlag.system != 0 { value |= CimFormat.Attribute.system }
        if flags & CimFormat.EntryFlag.archive != 0 { value |= CimFormat.Attribute.archive }
        if flags & CimFormat.EntryFlag.sparse != 0 { value |= CimFormat.Attribute.sparseFile }
        if isDirectory { value |= CimFormat.Attribute.directory }
        if reparseDataOffset != 0 { value |= CimFormat.Attribute.reparsePoint }
        return value
    }

    /// Decodes the entry at `start` of a file table's bytes, which must hold
    /// ``CimFormat/minimumFileEntrySize(major:)`` bytes from there (the caller
    /// checks; this reads without copying the entry out of the table).
    init(table: UnsafeRawBufferPointer, at start: Int, major: UInt32) {
        func u16(_ o: Int) -> UInt16 { UInt16(littleEndian: table.loadUnaligned(fromByteOffset: start + o, as: UInt16.self)) }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: table.loadUnaligned(fromByteOffset: start + o, as: UInt32.self)) }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: table.loadUnaligned(fromByteOffset: start + o, as: UInt64.self)) }
        flags = u16(0)
        eaLength = u16(2)
        reparseTag = u32(4)
        creationTime = u64(8)
        lastWriteTime = u64(16)
        changeTime = u64(24)
        lastAccessTime = u64(32)
        defaultStream = CimStream(dataOffset: u64(40), lengthWord: u64(48))
        securityDescriptorOffset = u64(56)
        extendedAttributesOffset = u64(64)
        reparseDataOffset = u64(72)
        streamTableOffset = u64(80)
        if major == 1 {
            parentFileID = nil
            baseRegionIndex = nil
        } else {
            parentFileID = u32(88)
            baseRegionIndex = u16(92)
        }
    }

    /// Decodes `raw`, which holds at least the entry of format major version
    /// `major` (``CimFormat/minimumFileEntrySize(major:)`` bytes).
    init(_ raw: LittleEndianBytes, major: UInt32) throws {
        flags = try raw.u16(0)
        eaLength = try raw.u16(2)
        reparseTag = try raw.u32(4)
        creationTime = try raw.u64(8)
        lastWriteTime = try raw.u64(16)
        changeTime = try raw.u64(24)
        lastAccessTime = try raw.u64(32)
        defaultStream = CimStream(dataOffset: try raw.u64(40), lengthWord: try raw.u64(48))
        securityDescriptorOffset = try raw.u64(56)
        extendedAttributesOffset = try raw.u64(64)
        reparseDataOffset = try raw.u64(72)
        streamTableOffset = try raw.u64(80)
        if major == 1 {
            parentFileID = nil
            baseRegionIndex = nil
        } else {
            parentFileID = try raw.u32(88)
            baseRegionIndex = try raw.u16(92)
        }
    }
}

/// What `stat` reports for a file.
public struct CimFileStat: Sendable, Equatable {
    public var fileID: CimFileID
    public var isDirectory: Bool
    /// Windows attribute word.
    public var attributes: UInt32
    /// Length of the default stream (for a directory: its link table's length).
    public var size: UInt64
    public var creationTime: UInt64
    public var lastWriteTime: UInt64
    public var changeTime: UInt64
    public var lastAccessTime: UInt64
    /// Number of directory entries that reference this FileID.
    public var linkCount: Int
    public var reparseTag: UInt32
    /// True when the default stream is sparse.
    public var isSparse: Bool
}

/// One entry of a directory.
public struct CimDirectoryEntry: Sendable, Equatable {
    /// The name decoded from UTF-16 (unpaired surrogates become U+FFFD; see `nameUnits`).
    public var name: String
    /// The name exactly as stored.
    public var nameUnits: [UInt16]
    public var fileID: CimFileID

    public init(name: String, nameUnits: [UInt16], fileID: CimFileID) {
        self.name = name
        self.nameUnits = nameUnits
        self.fileID = fileID
    }
}

/// One alternate data stream of a file.
public struct CimAlternateStream: Sendable, Equatable {
    public var name: String
    public var nameUnits: [UInt16]
    public var stream: CimStream
    public var size: UInt64 { stream.length }
}

/// One run of a stream's bytes, as the stream lays them out.
public enum CimStreamRun: Sendable {
    /// `length` bytes at byte `offset` of region `regionIndex` (`file`).
    case region(regionIndex: Int, file: RegionFile, offset: UInt64, length: UInt64)
    /// `length` bytes that read as zeros (sparse).
    case zeros(length: UInt64)

    public var length: UInt64 {
        switch self {
        case .region(_, _, _, let length): return length
        case .zeros(let length): return length
        }
    }
}
