import CimFS

/// Windows metadata of a layer tar member, from go-winio backuptar's PAX records:
///
/// | PAX record | meaning |
/// |---|---|
/// | `MSWINDOWS.fileattr` | FILE_ATTRIBUTE_* word, decimal |
/// | `MSWINDOWS.rawsd` | self-relative security descriptor, base64 (wins over `MSWINDOWS.sd`) |
/// | `MSWINDOWS.sd` | security descriptor as SDDL text, converted by ``SDDLParser`` |
/// | `MSWINDOWS.xattr.<name>` | EA value, base64: becomes a FILE_FULL_EA_INFORMATION entry |
/// | `MSWINDOWS.mountpoint` | `1`: the symlink member is a mount point (junction) |
/// | `LIBARCHIVE.creationtime` | creation time `sec[.frac]`; absent: the modification time |
/// | `mtime`, `atime`, `ctime` | standard PAX times; absent: the header's mtime |
///
/// Times become FILETIME (100 ns ticks). A member with no descriptor gets
/// ``nullSecurityDescriptor``.
struct LayerMetadata {
    static let attributeKey = "MSWINDOWS.fileattr"
    static let rawSecurityDescriptorKey = "MSWINDOWS.rawsd"
    static let sddlKey = "MSWINDOWS.sd"
    static let eaPrefix = "MSWINDOWS.xattr."
    static let mountPointKey = "MSWINDOWS.mountpoint"
    static let creationTimeKey = "LIBARCHIVE.creationtime"

    /// SE_SELF_RELATIVE | SE_DACL_PRESENT with no owner, group or DACL: a null DACL, everyone has access.
    static let nullSecurityDescriptor: [UInt8] = [0x01, 0x00, 0x04, 0x80] + [UInt8](repeating: 0, count: 16)

    var attributes: UInt32 = 0
    var hasAttributes = false
    var securityDescriptor: [UInt8]
    var extendedAttributes: [UInt8]?
    var isMountPoint = false
    var creationTime: UInt64
    var lastWriteTime: UInt64
    var changeTime: UInt64
    var lastAccessTime: UInt64

    init(entry: TarEntry, input: String) throws {
        let pax = entry.pax
        func fail(_ problem: String) -> ImportError { .badEntry(input: input, entry: entry.path, problem: problem) }
        if let text = pax[LayerMetadata.attributeKey] {
            guard let word = UInt32(text) else { throw fail("\(LayerMetadata.attributeKey) \"\(text)\" is not a decimal 32-bit number") }
            attributes = word
            hasAttributes = true
        }
        if let text = pax[LayerMetadata.rawSecurityDescriptorKey] {
            guard let bytes = Base64.decode(text) else { throw fail("\(LayerMetadata.rawSecurityDescriptorKey) is not valid base64") }
            guard bytes.count >= 20, bytes[0] == 1, bytes.count <= Int(UInt16.max) else {
                throw fail("\(LayerMetadata.rawSecurityDescriptorKey) is not a self-relative security descriptor (\(bytes.count) bytes, revision \(bytes.first ?? 0))")
            }
            securityDescriptor = bytes
        } else if let text = pax[LayerMetadata.sddlKey] {
            // Bad SDDL fails the import: the null descriptor in its place would grant everyone full access.
            do {
                securityDescriptor = try SDDLParser.descriptor(text).bytes
            } catch let failure as SDDLParser.Failure {
                throw fail("\(LayerMetadata.sddlKey) \"\(text)\": \(failure)")
            }
        } else {
            securityDescriptor = LayerMetadata.nullSecurityDescriptor
        }
        var eas: [(name: [UInt8], value: [UInt8])] = []
        for key in pax.keys.sorted() where key.hasPrefix(LayerMetadata.eaPrefix) {
            let name = Array(key.utf8.dropFirst(LayerMetadata.eaPrefix.utf8.count))
            guard !name.isEmpty, name.count <= 255, !name.contains(0) else { throw fail("EA name in \(key) must be 1 to 255 bytes") }
            guard let value = Base64.decode(pax[key] ?? "") else { throw fail("\(key) is not valid base64") }
            guard value.count <= Int(UInt16.max) else { throw fail("\(key) value is \(value.count) bytes, at most 65535 fit") }
            eas.append((name, value))
        }
        if !eas.isEmpty {
            let chain = LayerMetadata.eaChain(eas)
            guard chain.count <= Int(UInt16.max) else { throw fail("extended attributes take \(chain.count) bytes, at most 65535 fit") }
            extendedAttributes = chain
        }
        isMountPoint = pax[LayerMetadata.mountPointKey] == "1"
        let headerTime = LayerMetadata.fileTime(seconds: entry.headerModificationTime, fraction: 0)
        func time(_ key: String) throws -> UInt64? {
            guard let text = pax[key] else { return nil }
            guard let value = LayerMetadata.parseTime(text) else { throw fail("PAX \(key) \"\(text)\" is not a time (seconds[.fraction])") }
            return value
        }
        lastWriteTime = try time("mtime") ?? headerTime
        lastAccessTime = try time("atime") ?? lastWriteTime
        changeTime = try time("ctime") ?? lastWriteTime
        creationTime = try time(LayerMetadata.creationTimeKey) ?? lastWriteTime
    }

    /// FILE_FULL_EA_INFORMATION entries: next-entry offset (0 for the last),
    /// flags 0, name length, value length, name, NUL, value; each padded to 4 bytes.
    static func eaChain(_ eas: [(name: [UInt8], value: [UInt8])]) -> [UInt8] {
        var chain: [UInt8] = []
        for (index, ea) in eas.enumerated() {
            let size = 8 + ea.name.count + 1 + ea.value.count
            let padded = (size + 3) & ~3
            let next = index == eas.count - 1 ? 0 : UInt32(padded)
            chain.append(contentsOf: withUnsafeBytes(of: next.littleEndian, Array.init))
            chain.append(0)
            chain.append(UInt8(ea.name.count))
            chain.append(contentsOf: withUnsafeBytes(of: UInt16(ea.value.count).littleEndian, Array.init))
            chain.append(contentsOf: ea.name)
            chain.append(0)
            chain.append(contentsOf: ea.value)
            chain.append(contentsOf: repeatElement(0, count: padded - size))
        }
        return chain
    }

    /// `[-]seconds[.fraction]` (PAX time) to FILETIME ticks, truncated to 100 ns.
    static func parseTime(_ text: String) -> UInt64? {
        var body = Substring(text)
        let negative = body.hasPrefix("-")
        if negative { body = body.dropFirst() }
        let parts = body.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let secondsText = parts.first, !secondsText.isEmpty, secondsText.count <= 18,
              secondsText.allSatisfy({ $0.isASCII && $0.isNumber }), let seconds = Int64(secondsText) else { return nil }
        var fraction: Int64 = 0
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            let seven = String((digits.prefix(7) + String(repeating: "0", count: max(0, 7 - digits.count))).prefix(7))
            fraction = Int64(seven) ?? 0
        }
        if negative {
            // -1.5 is 1.5 s before the epoch.
            return fileTime(seconds: -seconds - (fraction > 0 ? 1 : 0), fraction: fraction > 0 ? 10_000_000 - fraction : 0)
        }
        return fileTime(seconds: seconds, fraction: fraction)
    }

    /// Unix seconds plus 100 ns ticks to FILETIME; before 1601 clamps to 0.
    static func fileTime(seconds: Int64, fraction: Int64) -> UInt64 {
        let shifted = seconds.addingReportingOverflow(CimFileTime.epochDifference)
        guard !shifted.overflow, shifted.partialValue >= 0 else { return 0 }
        let scaled = shifted.partialValue.multipliedReportingOverflow(by: CimFileTime.ticksPerSecond)
        guard !scaled.overflow else { return UInt64(Int64.max) }
        let total = scaled.partialValue.addingReportingOverflow(fraction)
        return total.overflow ? UInt64(Int64.max) : UInt64(total.partialValue)
    }
}
