/// The layout the writer gives a PE-image stream.
///
/// The file is cut into up to three segments at 4 KiB boundaries; segment
/// `i` is stored `i × 4096` bytes further than its file offset, leaving a
/// zero-filled 4 KiB gap (a hole in the region file) before it, the way a
/// loader spreads sections out to their virtual addresses. The mappings
/// (file offset, delta) therefore reproduce the file exactly through the
/// format's rule: byte `off` is at image data + `off` + delta of the last
/// mapping whose file offset ≤ `off`.
struct WriterPELayout {
    static let gap: UInt64 = 4096

    /// (file offset, delta), sorted by file offset; the first is (0, 0).
    let mappings: [(fileOffset: UInt32, delta: UInt32)]
    let fileLength: UInt64
    var imageLength: UInt64 { fileLength + UInt64(mappings.count - 1) * WriterPELayout.gap }

    init(fileLength: UInt64, path: String) throws {
        // Image length and mapping offsets are 32-bit in the PeImage object.
        guard fileLength + 2 * WriterPELayout.gap <= UInt64(UInt32.max) else {
            throw CimError.invalidInput("\(path): \(fileLength) bytes is too large for a PE-image stream (32-bit image length)")
        }
        self.fileLength = fileLength
        let pages = (fileLength + 4095) / 4096
        let segmentPages = max(1, (pages + 2) / 3)
        var mappings: [(UInt32, UInt32)] = []
        var offset: UInt64 = 0
        var index: UInt64 = 0
        while offset < fileLength || index == 0 {
            mappings.append((UInt32(offset), UInt32(index * WriterPELayout.gap)))
            offset += segmentPages * 4096
            index += 1
        }
        self.mappings = mappings
    }

    /// Segment `i` covers file bytes `[start, end)`.
    func segment(_ index: Int) -> (start: UInt64, end: UInt64) {
        let start = UInt64(mappings[index].fileOffset)
        let end = index + 1 < mappings.count ? UInt64(mappings[index + 1].fileOffset) : fileLength
        return (start, end)
    }

    /// The PeImage object (format section 12).
    func object(imageDataOffset: UInt64) -> [UInt8] {
        var buffer = WriterByteBuffer(capacity: CimFormat.peImageHeaderSize + mappings.count * CimFormat.peMappingSize)
        buffer.u64(imageDataOffset)
        // Data length: the bytes of image data stored, as Windows writes it (the
        // images its tools made have it end exactly where the last segment ends).
        buffer.u64(imageLength)
        buffer.u32(UInt32(imageLength))
        buffer.u16(UInt16(mappings.count))
        buffer.u16(0)
        for mapping in mappings {
            buffer.u32(mapping.fileOffset)
            buffer.u32(mapping.delta)
        }
        return buffer.bytes
    }
}
