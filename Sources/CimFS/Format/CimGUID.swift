/// A GUID as CIM stores it: Data1 u32 LE, Data2 u16 LE, Data3 u16 LE, Data4[8].
///
/// The text form is lowercase `8-4-4-4-12` hex, Data1–Data3 printed as
/// numbers and Data4 in byte order: the form used in region file names and
/// as NBD export names.
public struct CimGUID: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The 16 bytes in on-disk order.
    public let bytes: [UInt8]

    /// Wraps 16 on-disk bytes. Returns nil for any other count.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, case-insensitive, with or
    /// without surrounding braces.
    public init?(string: String) {
        var text = Substring(string)
        if text.hasPrefix("{") && text.hasSuffix("}") && text.count >= 2 {
            text = text.dropFirst().dropLast()
        }
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.count == 5, [8, 4, 4, 4, 12] == groups.map({ $0.count }) else { return nil }
        guard let d1 = UInt32(groups[0], radix: 16), let d2 = UInt16(groups[1], radix: 16),
              let d3 = UInt16(groups[2], radix: 16) else { return nil }
        var data4: [UInt8] = []
        for group in groups[3...4] {
            var chars = Array(group)
            while chars.count >= 2 {
                guard let byte = UInt8(String(chars[0...1]), radix: 16) else { return nil }
                data4.append(byte)
                chars.removeFirst(2)
            }
        }
        guard data4.count == 8 else { return nil }
        var raw: [UInt8] = []
        raw.reserveCapacity(16)
        raw.append(contentsOf: withUnsafeBytes(of: d1.littleEndian, Array.init))
        raw.append(contentsOf: withUnsafeBytes(of: d2.littleEndian, Array.init))
        raw.append(contentsOf: withUnsafeBytes(of: d3.littleEndian, Array.init))
        raw.append(contentsOf: data4)
        self.bytes = raw
    }

    /// A random (version 4) GUID.
    public static func random() -> CimGUID {
        var generator = SystemRandomNumberGenerator()
        var raw = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        // Version 4 lives in the top nibble of Data3 (byte 7, little-endian high byte).
        raw[7] = (raw[7] & 0x0F) | 0x40
        raw[8] = (raw[8] & 0x3F) | 0x80
        return CimGUID(uncheckedBytes: raw)
    }

    /// The all-zero GUID.
    public static let zero = CimGUID(uncheckedBytes: [UInt8](repeating: 0, count: 16))

    private init(uncheckedBytes: [UInt8]) { self.bytes = uncheckedBytes }

    /// The big-endian (RFC 4122) byte order of the same GUID, as Linux
    /// filesystems store UUIDs so that tools print the same text.
    public var uuidBytes: [UInt8] {
        [bytes[3], bytes[2], bytes[1], bytes[0], bytes[5], bytes[4], bytes[7], bytes[6]] + bytes[8..<16]
    }

    public var description: String {
        func hex(_ slice: ArraySlice<UInt8>) -> String {
            slice.map { byte in
                let s = String(byte, radix: 16)
                return s.count == 1 ? "0" + s : s
            }.joined()
        }
        let u = uuidBytes
        return "\(hex(u[0..<4]))-\(hex(u[4..<6]))-\(hex(u[6..<8]))-\(hex(u[8..<10]))-\(hex(u[10..<16]))"
    }

    public static func < (lhs: CimGUID, rhs: CimGUID) -> Bool { lhs.description < rhs.description }
}
