/// A security descriptor to be written in self-relative form.
///
/// The parts are laid out owner, group, SACL, DACL after the 20-byte header:
/// the order of the descriptors Windows stores (NTFS through BackupRead, as
/// go-winio's `MSWINDOWS.rawsd` records show, and CimFS images). An absent
/// part has offset 0; a present but null ACL has its PRESENT control bit and
/// offset 0.
struct SecurityDescriptor: Hashable, Sendable {
    /// An access control list; nil `entries` in a descriptor means present but null.
    struct ACL: Hashable, Sendable {
        var entries: [AccessControlEntry]?
        /// Revision 4 when an object ACE is inside (ACL_REVISION_DS), else 2.
        var bytes: [UInt8]? {
            guard let entries else { return nil }
            var aces: [UInt8] = []
            for entry in entries { aces.append(contentsOf: entry.bytes) }
            let revision: UInt8 = entries.contains(where: \.isObjectACE) ? 4 : 2
            var out: [UInt8] = [revision, 0]
            out.appendLittleEndian(UInt16(8 + aces.count))
            out.appendLittleEndian(UInt16(entries.count))
            out.appendLittleEndian(UInt16(0))
            out.append(contentsOf: aces)
            return out
        }
    }

    static let selfRelative: UInt16 = 0x8000
    static let daclPresent: UInt16 = 0x0004
    static let saclPresent: UInt16 = 0x0010
    static let daclAutoInheritRequired: UInt16 = 0x0100
    static let saclAutoInheritRequired: UInt16 = 0x0200
    static let daclAutoInherited: UInt16 = 0x0400
    static let saclAutoInherited: UInt16 = 0x0800
    static let daclProtected: UInt16 = 0x1000
    static let saclProtected: UInt16 = 0x2000

    /// Control bits other than SELF_RELATIVE and the PRESENT bits (set from `dacl`/`sacl`).
    var control: UInt16 = 0
    var owner: SecurityIdentifier?
    var group: SecurityIdentifier?
    var sacl: ACL?
    var dacl: ACL?

    var bytes: [UInt8] {
        var control = self.control | SecurityDescriptor.selfRelative
        if sacl != nil { control |= SecurityDescriptor.saclPresent }
        if dacl != nil { control |= SecurityDescriptor.daclPresent }
        var tail: [UInt8] = []
        func place(_ part: [UInt8]?) -> UInt32 {
            guard let part else { return 0 }
            defer { tail.append(contentsOf: part) }
            return UInt32(20 + tail.count)
        }
        let ownerOffset = place(owner?.bytes)
        let groupOffset = place(group?.bytes)
        let saclOffset = place(sacl?.bytes ?? nil)
        let daclOffset = place(dacl?.bytes ?? nil)
        var out: [UInt8] = [1, 0]
        out.appendLittleEndian(control)
        for offset in [ownerOffset, groupOffset, saclOffset, daclOffset] { out.appendLittleEndian(offset) }
        out.append(contentsOf: tail)
        return out
    }
}

extension Array where Element == UInt8 {
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
