/// Bounds-checked little-endian field access on a byte array read from an image.
///
/// Every accessor checks the range first and throws ``CimError/truncated(path:offset:expected:)``
/// naming the file and the absolute file offset, so a short or corrupt
/// structure can never trap.
struct LittleEndianBytes {
    let bytes: [UInt8]
    /// File the bytes were read from, for messages.
    let path: String
    /// Absolute file offset of `bytes[0]`, for messages.
    let baseOffset: UInt64

    init(_ bytes: [UInt8], path: String, baseOffset: UInt64) {
        self.bytes = bytes
        self.path = path
        self.baseOffset = baseOffset
    }

    var count: Int { bytes.count }

    private func check(_ offset: Int, _ size: Int) throws {
        guard offset >= 0, size >= 0, offset <= bytes.count, size <= bytes.count - offset else {
            throw CimError.truncated(path: path, offset: baseOffset + UInt64(max(0, offset)), expected: UInt64(max(0, size)))
        }
    }

    func u8(_ offset: Int) throws -> UInt8 {
        try check(offset, 1)
        return bytes[offset]
    }

    func u16(_ offset: Int) throws -> UInt16 {
        try check(offset, 2)
        return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    func u32(_ offset: Int) throws -> UInt32 {
        try check(offset, 4)
        var value: UInt32 = 0
        for i in 0..<4 { value |= UInt32(bytes[offset + i]) << (8 * i) }
        return value
    }

    func u64(_ offset: Int) throws -> UInt64 {
        try check(offset, 8)
        var value: UInt64 = 0
        for i in 0..<8 { value |= UInt64(bytes[offset + i]) << (8 * i) }
        return value
    }

    func slice(_ offset: Int, _ size: Int) throws -> [UInt8] {
        try check(offset, size)
        return Array(bytes[offset..<(offset + size)])
    }

    /// `count` UTF-16 code units starting at `offset`.
    func utf16(_ offset: Int, units: Int) throws -> [UInt16] {
        guard units >= 0, units <= Int.max / 2 else {
            throw CimError.truncated(path: path, offset: baseOffset + UInt64(offset), expected: 0)
        }
        try check(offset, units * 2)
        // One copy instead of a loop per unit: the upcase table alone is
        // 65,536 units, read on every open.
        return [UInt16](unsafeUninitializedCapacity: units) { target, initialized in
            bytes.withUnsafeBytes { source in
                UnsafeMutableRawBufferPointer(target).copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<(offset + units * 2)]))
            }
            #if _endian(big)
            for i in 0..<units { target[i] = UInt16(littleEndian: target[i]) }
            #endif
            initialized = units
        }
    }
}
