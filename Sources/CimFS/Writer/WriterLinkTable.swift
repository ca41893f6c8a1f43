/// Builds link tables (format section 11): directories and stream tables.
enum WriterLinkTable {
    /// One entry of a link table: a name and the fixed-size entry bytes
    /// (a FileID for directories, a Stream for stream tables).
    struct Link {
        var name: [UInt16]
        var entry: [UInt8]
    }

    /// Sorts `links` by upcased code units and serializes the table.
    /// The caller has already rejected names that compare equal.
    static func build(_ links: [Link]) -> [UInt8] {
        let sorted = links.map { (key: WriterUpcaseTable.upcased($0.name), link: $0) }
            .sorted { $0.key.lexicographicallyPrecedes($1.key) }.map(\.link)
        let entrySize = sorted.first?.entry.count ?? 0
        var buffer = WriterByteBuffer()
        buffer.u32(0)  // total length, patched below
        buffer.u32(UInt32(sorted.count))
        for link in sorted { buffer.append(link.entry) }
        var nameOffset = 8 + sorted.count * (entrySize + 4)
        for link in sorted {
            buffer.u32(UInt32(nameOffset))
            nameOffset += 2 + link.name.count * 2
        }
        for link in sorted {
            buffer.u16(UInt16(link.name.count))
            buffer.utf16(link.name)
        }
        buffer.setU32(UInt32(buffer.count), at: 0)
        return buffer.bytes
    }

    /// Encodes a Stream (format section 9).
    static func stream(offset: UInt64, length: UInt64, type: CimFormat.StreamType, sparse: Bool = false) -> [UInt8] {
        var buffer = WriterByteBuffer(capacity: CimFormat.streamSize)
        buffer.u64(offset)
        var word = (length & CimFormat.lengthMask) | (UInt64(type.rawValue) << 48)
        if sparse { word |= CimFormat.sparseStreamBit }
        buffer.u64(word)
        return buffer.bytes
    }
}
