/// The identity of an export: a volume GUID.
///
/// The canonical text form is lowercase `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`; it
/// is the export name clients use. Parsing accepts any letter case and an
/// optional pair of braces (`{…}`), as Windows tools print GUIDs that way.
///
/// The 16-byte form is the Windows in-memory `GUID` layout (as stored on disk in
/// CIM and NTFS structures): the first three fields little-endian, the last
/// eight bytes in order. So the text `00112233-4455-6677-8899-aabbccddeeff` is the
/// bytes `33 22 11 00 55 44 77 66 88 99 aa bb cc dd ee ff`.
public struct ExportGUID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The 16 bytes in Windows `GUID` layout.
    public let bytes: [UInt8]

    /// Creates a GUID from its 16 bytes in Windows `GUID` layout; nil unless
    /// `bytes.count == 16`.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses the text form, with or without braces, in any letter case.
    /// Returns nil for anything else (this is how export names are matched, so
    /// it must never trap on client input).
    public init?(_ text: String) {
        var utf8 = Array(text.utf8)
        if utf8.first == UInt8(ascii: "{") || utf8.last == UInt8(ascii: "}") {
            guard utf8.count >= 2, utf8.first == UInt8(ascii: "{"), utf8.last == UInt8(ascii: "}") else { return nil }
            utf8 = Array(utf8.dropFirst().dropLast())
        }
        guard utf8.count == 36 else { return nil }
        var nibbles: [UInt8] = []
        nibbles.reserveCapacity(32)
        for (index, char) in utf8.enumerated() {
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard char == UInt8(ascii: "-") else { return nil }
                continue
            }
            guard let value = Self.hexValue(char) else { return nil }
            nibbles.append(value)
        }
        // Text order: data1 (4 bytes), data2 (2), data3 (2), data4 (8).
        var textOrder: [UInt8] = []
        textOrder.reserveCapacity(16)
        var i = 0
        while i + 1 < nibbles.count {
            textOrder.append(nibbles[i] << 4 | nibbles[i + 1])
            i += 2
        }
        let layout: [Int] = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15]
        self.bytes = layout.map { textOrder[$0] }
    }

    /// The canonical lowercase text form without braces.
    public var description: String {
        let textOrder: [Int] = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15]
        var out = ""
        out.reserveCapacity(36)
        for (position, index) in textOrder.enumerated() {
            if position == 4 || position == 6 || position == 8 || position == 10 { out.append("-") }
            let byte = bytes[index]
            out.append(Self.hexDigits[Int(byte >> 4)])
            out.append(Self.hexDigits[Int(byte & 0x0f)])
        }
        return out
    }

    public static func < (lhs: ExportGUID, rhs: ExportGUID) -> Bool {
        lhs.description < rhs.description
    }

    private static let hexDigits: [Character] = Array("0123456789abcdef")

    private static func hexValue(_ char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return char - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return char - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return char - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
