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
    /// without a pair of surrounding braces. Anything else (signs, stray
    /// characters, one brace) gives nil: export names from the network are
    /// parsed with this, so it must be strict and never trap.
    public init?(string: String) {
        var text = Array(string.utf8)
        if text.first == UInt8(ascii: "{") || text.last == UInt8(ascii: "}") {
            guard text.count >= 2, text.first == UInt8(ascii: "{"), text.last == UInt8(ascii: "}") else { return nil }
            text = Array(text.dropFirst().dropLast())
        }
        guard text.count == 36 else { return nil }
        var textOrder: [UInt8] = []
        textOrder.reserveCapacity(16)
        var high: UInt8?
        for (index, char) in text.enumerated() {
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard char == UInt8(ascii: "-") else { return nil }
                continue
            }
            guard let nibble = CimGUID.hexValue(char) else { return nil }
            if let first = high {
                textOrder.append(first << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        // Text order is Data1, Data2, Data3 as numbers, then Data4; on disk the first three are little-endian.
        self.bytes = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15].map { textOrder[$0] }
    }

    /// The same as ``init(string:)``.
    public init?(_ text: String) { self.init(string: text) }

    private static func hexValue(_ char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return char - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return char - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return char - UInt8(ascii: "A") + 10
        default: return nil
        }
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
