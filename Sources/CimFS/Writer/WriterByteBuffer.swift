/// A growable little-endian byte buffer for building on-disk structures.
struct WriterByteBuffer {
    var bytes: [UInt8] = []

    init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    var count: Int { bytes.count }

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func append(_ other: [UInt8]) { bytes.append(contentsOf: other) }
    mutating func zeros(_ count: Int) { if count > 0 { bytes.append(contentsOf: repeatElement(0, count: count)) } }
    mutating func utf16(_ units: [UInt16]) { for unit in units { u16(unit) } }

    /// Overwrites a u32 at `offset` (used to patch lengths after the fact).
    mutating func setU32(_ value: UInt32, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for (index, byte) in raw.enumerated() where offset + index < bytes.count { bytes[offset + index] = byte }
        }
    }
}

/// Little-endian reads from a byte array with bounds checks (for parent headers).
struct WriterByteReader {
    let bytes: [UInt8]
    let path: String

    func u16(_ offset: Int) throws -> UInt16 { UInt16(truncatingIfNeeded: try value(offset, 2)) }
    func u32(_ offset: Int) throws -> UInt32 { UInt32(truncatingIfNeeded: try value(offset, 4)) }
    func u64(_ offset: Int) throws -> UInt64 { try value(offset, 8) }

    func slice(_ offset: Int, _ length: Int) throws -> [UInt8] {
        guard offset >= 0, length >= 0, offset <= bytes.count, length <= bytes.count - offset else {
            throw CimError.truncated(path: path, offset: UInt64(max(0, offset)), expected: UInt64(max(0, length)))
        }
        return Array(bytes[offset..<(offset + length)])
    }

    private func value(_ offset: Int, _ size: Int) throws -> UInt64 {
        let raw = try slice(offset, size)
        var result: UInt64 = 0
        for (index, byte) in raw.enumerated() { result |= UInt64(byte) << (8 * UInt64(index)) }
        return result
    }
}
