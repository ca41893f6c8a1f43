/// Little-endian stores into a byte array at fixed offsets, the way ext4
/// structures are laid out. Offsets are computed by this module, never taken
/// from the source, so they are trusted.
extension Array where Element == UInt8 {
    @inline(__always) mutating func put8(_ offset: Int, _ value: UInt8) {
        self[offset] = value
    }

    @inline(__always) mutating func put16(_ offset: Int, _ value: UInt16) {
        self[offset] = UInt8(truncatingIfNeeded: value)
        self[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
    }

    @inline(__always) mutating func put32(_ offset: Int, _ value: UInt32) {
        self[offset] = UInt8(truncatingIfNeeded: value)
        self[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 2] = UInt8(truncatingIfNeeded: value >> 16)
        self[offset + 3] = UInt8(truncatingIfNeeded: value >> 24)
    }

    @inline(__always) mutating func put64(_ offset: Int, _ value: UInt64) {
        put32(offset, UInt32(truncatingIfNeeded: value))
        put32(offset + 4, UInt32(truncatingIfNeeded: value >> 32))
    }

    mutating func putBytes(_ offset: Int, _ bytes: [UInt8]) {
        replaceSubrange(offset..<(offset + bytes.count), with: bytes)
    }

    @inline(__always) func get16(_ offset: Int) -> UInt16 {
        UInt16(self[offset]) | UInt16(self[offset + 1]) << 8
    }

    @inline(__always) func get32(_ offset: Int) -> UInt32 {
        UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16 | UInt32(self[offset + 3]) << 24
    }
}
