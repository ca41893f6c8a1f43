/// Constants of the CIM on-disk format (see `docs/cim-format.md` in the shared folder).
public enum CimFormat {
    /// `cimfile0`.
    public static let magic: [UInt8] = Array("cimfile0".utf8)
    public static let commonHeaderSize = 32
    public static let regionHeaderSize = 40
    public static let objectIDHeaderSize = 48
    public static let objectIDEntrySize = 40
    public static let regionSetSize = 24
    public static let filesystemHeaderSize = 72
    public static let filesystemObjectSize = 24
    public static let fileTableDirectoryEntrySize = 16
    public static let streamSize = 16
    /// File entry of format 2.x and 3.x: the 1.0 fields, then parent FileID and base region index.
    public static let fileEntrySize = 96
    /// File entry of format 1.x (what Windows' tools wrote in 2020): no parent FileID, no base region index.
    public static let fileEntrySizeVersion1 = 88
    /// Format major versions this code reads and writes.
    public static let knownMajorVersions: ClosedRange<UInt32> = 1...3
    public static let filesPerTable = 1024
    public static let upcaseTableEntries = 65536
    public static let peImageHeaderSize = 24
    public static let peMappingSize = 8
    public static let maxNameUnits = 255
    public static let maxPathUnits = 32767

    /// File types in the common header.
    public enum FileType: UInt8, Sendable {
        case filesystem = 0
        case region = 1
        case objectID = 2
    }

    /// Region types in region and object-id headers.
    public enum RegionType: UInt8, Sendable {
        case metadata = 0
        case pageAlignedData = 1
        case smallData = 2
    }

    /// Stream types (bits 48–55 of a stream's length word).
    public enum StreamType: UInt8, Sendable {
        case data = 0
        case linkTable = 1
        case peImage = 2
    }

    /// Bit 56 of a stream's length word: no stored data, reads as zeros.
    public static let sparseStreamBit: UInt64 = 1 << 56
    public static let lengthMask: UInt64 = (1 << 48) - 1

    /// File entry flag bits.
    public enum EntryFlag {
        public static let readOnly: UInt16 = 1
        public static let hidden: UInt16 = 2
        public static let system: UInt16 = 4
        public static let archive: UInt16 = 8
        public static let sparse: UInt16 = 16
    }

    /// Windows FILE_ATTRIBUTE_* bits.
    public enum Attribute {
        public static let readOnly: UInt32 = 0x1
        public static let hidden: UInt32 = 0x2
        public static let system: UInt32 = 0x4
        public static let directory: UInt32 = 0x10
        public static let archive: UInt32 = 0x20
        public static let sparseFile: UInt32 = 0x200
        public static let reparsePoint: UInt32 = 0x400
    }

    /// Reparse tags.
    public enum ReparseTag {
        public static let symlink: UInt32 = 0xA000_000C
        public static let mountPoint: UInt32 = 0xA000_0003
        public static let wci: UInt32 = 0x8000_0018
    }

    /// Known CimMountImage flags.
    public enum MountFlag {
        public static let none: UInt32 = 0x0
        public static let childOnly: UInt32 = 0x1
        public static let enableDAX: UInt32 = 0x2
        public static let blockDeviceCim: UInt32 = 0x10
        public static let singleFileCim: UInt32 = 0x20
        public static let verifiedCim: UInt32 = 0x80
        public static let all: UInt32 = childOnly | enableDAX | blockDeviceCim | singleFileCim | verifiedCim
    }

    /// Packs a region index and byte offset into a RegionOffset.
    public static func regionOffset(region: UInt16, offset: UInt64) -> UInt64 {
        (UInt64(region) << 48) | (offset & lengthMask)
    }

    /// Splits a RegionOffset.
    public static func split(regionOffset value: UInt64) -> (region: UInt16, offset: UInt64) {
        (UInt16(truncatingIfNeeded: value >> 48), value & lengthMask)
    }

    /// The fewest bytes a file entry of format major version `major` may have:
    /// 88 for 1.x, 96 for 2.x and 3.x. Longer entries are read up to this size.
    public static func minimumFileEntrySize(major: UInt32) -> Int {
        major == 1 ? fileEntrySizeVersion1 : fileEntrySize
    }

    /// Object-id digest: the first 24 bytes of SHA-512 of the object, or for an
    /// object of at most 24 bytes the object itself, zero-padded (format section 4).
    public static let objectIDDigestSize = 24

    /// Region file name: `region_<guid>_<n>`.
    public static func regionFileName(set: CimGUID, index: Int) -> String { "region_\(set)_\(index)" }
    /// Object-id file name: `objectid_<guid>_<n>`.
    public static func objectIDFileName(set: CimGUID, index: Int) -> String { "objectid_\(set)_\(index)" }
}
