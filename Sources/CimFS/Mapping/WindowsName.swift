/// Turns Windows (UTF-16) names into Linux (UTF-8) names.
///
/// The rule, also in README: a name that is valid UTF-16, at most 255 bytes
/// in UTF-8, and not `.`, `..` or containing `/` or NUL is kept as is.
/// Any other name is replaced by its UTF-8 form with each unpaired surrogate
/// as U+FFFD and `/`, NUL as `_`, cut at a character boundary so that the
/// result fits, followed by `~` and 16 hex digits of the FNV-1a-64 hash of
/// the original UTF-16 units. Should that still equal another name of the
/// directory, `~2`, `~3`, … is appended. The original units are kept in
/// the xattr `trusted.cimnbd.name` (UTF-16LE).
///
/// The translator and `cim extract` both name files through
/// ``CimLinuxMapping``, which applies these rules.
package enum WindowsName {
    /// Name of the xattr holding an original name that had to be replaced.
    package static let originalNameAttribute = "trusted.cimnbd.name"

    /// The UTF-8 form of a name, or nil when it needs a replacement.
    package static func direct(_ units: [UInt16], maxBytes: Int = 255) -> [UInt8]? {
        if units.allSatisfy({ $0 < 0x80 }) {
            // ASCII: the bytes are the units; same checks as below.
            guard !units.contains(0x2F), !units.contains(0) else { return nil }
            let bytes = units.map { UInt8(truncatingIfNeeded: $0) }
            guard !bytes.isEmpty, bytes.count <= maxBytes, bytes != [0x2E], bytes != [0x2E, 0x2E] else { return nil }
            return bytes
        }
        var scalars = ""
        var iterator = units.makeIterator()
        var decoder = UTF16()
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                if scalar == "/" || scalar == "\0" { return nil }
                scalars.unicodeScalars.append(scalar)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        let bytes = Array(scalars.utf8)
        guard !bytes.isEmpty, bytes.count <= maxBytes, bytes != [0x2E], bytes != [0x2E, 0x2E] else { return nil }
        return bytes
    }

    /// The deterministic replacement for a name that cannot be used directly,
    /// at most `maxBytes` bytes long (an xattr name leaves room for its `user.`).
    package static func replacement(_ units: [UInt16], maxBytes: Int = 255) -> [UInt8] {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for unit in units {
            hash = (hash ^ UInt64(unit & 0xFF)) &* 0x100_0000_01b3
            hash = (hash ^ UInt64(unit >> 8)) &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        let suffix = Array(("~" + String(repeating: "0", count: 16 - hex.count) + hex).utf8)
        var text = ""
        for scalar in String(decoding: units, as: UTF16.self).unicodeScalars {
            let mapped: Unicode.Scalar = (scalar == "/" || scalar == "\0") ? "_" : scalar
            if text.utf8.count + String(mapped).utf8.count > maxBytes - suffix.count { break }
            text.unicodeScalars.append(mapped)
        }
        return Array(text.utf8) + suffix
    }
}
