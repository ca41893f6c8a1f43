/// One ACE of an access control list, as Windows lays it out: a 4-byte
/// header (type, flags, size), the access mask, for object ACEs the flags
/// word and GUIDs, the SID, then any application data (a callback ACE's
/// conditional expression).
struct AccessControlEntry: Hashable, Sendable {
    var type: UInt8
    var flags: UInt8
    var mask: UInt32
    var sid: SecurityIdentifier
    /// Object ACEs only: the object type and inherited object type GUIDs, in their 16-byte wire form.
    var objectType: [UInt8]?
    var inheritedObjectType: [UInt8]?
    /// Bytes after the SID (a conditional expression, `artx…`), padded to 4.
    var applicationData: [UInt8] = []

    static let accessAllowed: UInt8 = 0x00
    static let accessDenied: UInt8 = 0x01
    static let systemAudit: UInt8 = 0x02
    static let systemAlarm: UInt8 = 0x03
    static let accessAllowedObject: UInt8 = 0x05
    static let accessDeniedObject: UInt8 = 0x06
    static let systemAuditObject: UInt8 = 0x07
    static let systemAlarmObject: UInt8 = 0x08
    static let accessAllowedCallback: UInt8 = 0x09
    static let accessDeniedCallback: UInt8 = 0x0A
    static let systemAuditCallback: UInt8 = 0x0D
    static let systemMandatoryLabel: UInt8 = 0x11
    static let systemScopedPolicyID: UInt8 = 0x13

    static let objectInherit: UInt8 = 0x01
    static let containerInherit: UInt8 = 0x02
    static let noPropagateInherit: UInt8 = 0x04
    static let inheritOnly: UInt8 = 0x08
    static let inherited: UInt8 = 0x10
    static let successfulAccess: UInt8 = 0x40
    static let failedAccess: UInt8 = 0x80

    var isObjectACE: Bool { (0x05...0x08).contains(type) }

    var bytes: [UInt8] {
        var body: [UInt8] = []
        body.appendLittleEndian(mask)
        if isObjectACE {
            let present: UInt32 = (objectType == nil ? 0 : 1) | (inheritedObjectType == nil ? 0 : 2)
            body.appendLittleEndian(present)
            body.append(contentsOf: objectType ?? [])
            body.append(contentsOf: inheritedObjectType ?? [])
        }
        body.append(contentsOf: sid.bytes)
        body.append(contentsOf: applicationData)
        while body.count % 4 != 0 { body.append(0) }
        var out: [UInt8] = [type, flags]
        out.appendLittleEndian(UInt16(4 + body.count))
        out.append(contentsOf: body)
        return out
    }
}
