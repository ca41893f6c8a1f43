/// One object-id file (`objectid_<guid>_<n>`, format section 4), read and
/// bounds-checked: the list of (length, digest, offset) of every object its
/// region file holds.
public struct CimObjectIDFile: Sendable {
    /// One 40-byte entry.
    public struct Entry: Sendable, Equatable {
        /// Length of the object in bytes.
        public var length: UInt64
        /// ``CimObjectDigest`` of the object, as recorded.
        public var digest: [UInt8]
        /// Byte offset of the object in the region file.
        public var offset: UInt64
    }

    public let path: String
    public let versionMajor: UInt32
    /// The index the header states (@32). Not used to find the region: the file name's `n` does that.
    public let headerIndex: UInt16
    /// The region type the header states (@34).
    public let regionType: UInt8
    /// Byte offset of the entry table.
    public let tableOffset: UInt64
    public let entries: [Entry]

    /// Object-id files larger than this are refused rather than read into memory (≈ 430 million objects).
    public static let sizeLimit: UInt64 = 1 << 34

    /// Reads and checks the file at `path`: header type and version, and the
    /// entry table inside the file.
    public init(path: String) throws {
        let file = try RegionFile(path: path)
        guard file.size >= UInt64(CimFormat.objectIDHeaderSize) else {
            if file.size >= 8, try file.read(at: 0, length: 8) != CimFormat.magic {
                throw CimError.badMagic(path: path, found: try file.read(at: 0, length: 8))
            }
            throw CimError.truncated(path: path, offset: file.size, expected: UInt64(CimFormat.objectIDHeaderSize) - file.size)
        }
        guard file.size <= Self.sizeLimit else {
            throw CimError.invalidField(path: path, offset: 0, field: "file size", value: file.size, expected: "at most \(Self.sizeLimit) bytes")
        }
        let header = LittleEndianBytes(try file.read(at: 0, length: CimFormat.objectIDHeaderSize), path: path, baseOffset: 0)
        (versionMajor, _) = try CimImage.checkCommonHeader(header, path: path, type: .objectID)
        headerIndex = try header.u16(32)
        regionType = try header.u8(34)
        tableOffset = UInt64(try header.u32(40))
        let count = UInt64(try header.u32(44))
        guard tableOffset >= UInt64(CimFormat.objectIDHeaderSize) || count == 0 else {
            throw CimError.invalidField(path: path, offset: 40, field: "entry table offset", value: tableOffset,
                                        expected: "past the 48-byte header")
        }
        // The header (48 bytes in every image seen) ends at or before the table.
        let headerLength = UInt64(try header.u32(8))
        guard headerLength >= UInt64(CimFormat.objectIDHeaderSize), headerLength <= max(tableOffset, UInt64(CimFormat.objectIDHeaderSize)) else {
            throw CimError.invalidField(path: path, offset: 8, field: "header length", value: headerLength,
                                        expected: "\(CimFormat.objectIDHeaderSize)...\(max(tableOffset, UInt64(CimFormat.objectIDHeaderSize))), ending before the entry table")
        }
        let tableLength = count * UInt64(CimFormat.objectIDEntrySize)
        guard tableOffset <= file.size, tableLength <= file.size - tableOffset else {
            throw CimError.outOfBounds(path: path, offset: tableOffset, length: tableLength, fileSize: file.size,
                                       what: "table of \(count) object-id entries")
        }
        let table = LittleEndianBytes(try file.read(at: tableOffset, length: Int(tableLength)), path: path, baseOffset: tableOffset)
        var entries: [Entry] = []
        entries.reserveCapacity(Int(count))
        for index in 0..<Int(count) {
            let at = index * CimFormat.objectIDEntrySize
            entries.append(Entry(length: try table.u64(at), digest: try table.slice(at + 8, CimObjectDigest.size),
                                 offset: try table.u64(at + 32)))
        }
        self.path = path
        self.entries = entries
    }

    /// File offset of entry `index`, for messages.
    public func fileOffset(ofEntry index: Int) -> UInt64 {
        tableOffset + UInt64(index) * UInt64(CimFormat.objectIDEntrySize)
    }

    /// Whether entry `a` sorts after entry `b` in the (length, digest) order the table must have.
    static func precedes(_ a: Entry, _ b: Entry) -> Bool {
        a.length != b.length ? a.length < b.length : a.digest.lexicographicallyPrecedes(b.digest)
    }
}
