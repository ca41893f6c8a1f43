/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), slicing-by-8.
///
/// ext4 uses the "raw" form: no implicit inversion at the start or end, the
/// caller passes the running value (`~0` to start, as ext4 does) and stores
/// the result as is. The standard CRC-32C of a message is `~update(~0, msg)`.
enum CRC32C {
    /// 8 tables of 256 entries, flattened: table k at `k * 256`.
    static let table: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 {
                let prev = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (prev >> 8) ^ t[Int(prev & 0xFF)]
            }
        }
        return t
    }()

    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = crc
        var i = 0
        let n = bytes.count
        table.withUnsafeBufferPointer { t in
            while n - i >= 8 {
                let one = bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian ^ c
                let two = bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self).littleEndian
                c = t[7 * 256 + Int(one & 0xFF)] ^ t[6 * 256 + Int((one >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((one >> 16) & 0xFF)] ^ t[4 * 256 + Int(one >> 24)]
                    ^ t[3 * 256 + Int(two & 0xFF)] ^ t[2 * 256 + Int((two >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((two >> 16) & 0xFF)] ^ t[Int(two >> 24)]
                i += 8
            }
            while i < n {
                c = t[Int((c ^ UInt32(bytes[i])) & 0xFF)] ^ (c >> 8)
                i += 1
            }
        }
        return c
    }

    static func update(_ crc: UInt32, _ bytes: [UInt8], from start: Int = 0, count: Int? = nil) -> UInt32 {
        let length = count ?? (bytes.count - start)
        return bytes.withUnsafeBytes { raw in
            update(crc, UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)]))
        }
    }

    static func update(_ crc: UInt32, le32 value: UInt32) -> UInt32 {
        withUnsafeBytes(of: value.littleEndian) { update(crc, $0) }
    }

    static func update(_ crc: UInt32, le64 value: UInt64) -> UInt32 {
        withUnsafeBytes(of: value.littleEndian) { update(crc, $0) }
    }
}
