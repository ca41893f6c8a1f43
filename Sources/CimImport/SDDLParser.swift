/// Converts Security Descriptor Definition Language text (the PAX
/// `MSWINDOWS.sd` record) to a self-relative security descriptor, following
/// Microsoft's documented SDDL grammar as
/// ConvertStringSecurityDescriptorToSecurityDescriptor reads it:
///
/// - parts `O:sid`, `G:sid`, `D:flags(ace)…`, `S:flags(ace)…`, each at most once, in any order;
/// - ACL flags `P`, `AI`, `AR` and `NO_ACCESS_CONTROL` (a null ACL);
/// - ACEs `(type;flags;rights;object guid;inherit object guid;sid)` with types
///   A, D, AU, AL, OA, OD, OU, OL, ML, SP, flags CI OI NP IO ID SA FA, rights
///   as a number (`0x1f01ff`, decimal) or two-letter codes (GA, FR, KA, RC, …);
///   an object ACE with neither GUID becomes the plain type, as Windows does;
/// - SIDs as `S-1-…` or the machine-independent two-letter aliases (BA, SY,
///   WD, TI, …).
///
/// - callback ACEs XA, XD, XU with a conditional expression
///   (``parseCondition()``).
///
/// Callback object ACEs (ZA), resource-attribute ACEs (RA) and aliases
/// relative to a domain (DA, DU, LA, …) are refused: the last need a domain
/// SID this importer does not have.
struct SDDLParser {
    struct Failure: Error, CustomStringConvertible {
        var problem: String
        var offset: Int
        var description: String { "\(problem) (at character \(offset))" }
    }

    let text: [Character]
    var position = 0

    init(_ text: String) { self.text = Array(text) }

    static func descriptor(_ text: String) throws -> SecurityDescriptor {
        var parser = SDDLParser(text)
        return try parser.parseDescriptor()
    }

    private static let rights: [String: UInt32] = [
        "GA": 0x1000_0000, "GR": 0x8000_0000, "GW": 0x4000_0000, "GX": 0x2000_0000,
        "RC": 0x0002_0000, "SD": 0x0001_0000, "WD": 0x0004_0000, "WO": 0x0008_0000,
        "RP": 0x10, "WP": 0x20, "CC": 0x1, "DC": 0x2, "LC": 0x4, "SW": 0x8, "LO": 0x80, "DT": 0x40, "CR": 0x100,
        "FA": 0x1F_01FF, "FR": 0x12_0089, "FW": 0x12_0116, "FX": 0x12_00A0,
        "KA": 0xF_003F, "KR": 0x2_0019, "KW": 0x2_0006, "KX": 0x2_0019,
        "NR": 0x2, "NW": 0x1, "NX": 0x4,
    ]
    private static let aceFlags: [String: UInt8] = [
        "OI": AccessControlEntry.objectInherit, "CI": AccessControlEntry.containerInherit,
        "NP": AccessControlEntry.noPropagateInherit, "IO": AccessControlEntry.inheritOnly,
        "ID": AccessControlEntry.inherited, "SA": AccessControlEntry.successfulAccess, "FA": AccessControlEntry.failedAccess,
    ]
    private static let aceTypes: [String: UInt8] = [
        "A": AccessControlEntry.accessAllowed, "D": AccessControlEntry.accessDenied,
        "AU": AccessControlEntry.systemAudit, "AL": AccessControlEntry.systemAlarm,
        "OA": AccessControlEntry.accessAllowedObject, "OD": AccessControlEntry.accessDeniedObject,
        "OU": AccessControlEntry.systemAuditObject, "OL": AccessControlEntry.systemAlarmObject,
        "ML": AccessControlEntry.systemMandatoryLabel, "SP": AccessControlEntry.systemScopedPolicyID,
    ]
    /// Callback ACEs, which may carry a conditional expression after the SID.
    private static let callbackTypes: [String: UInt8] = [
        "XA": AccessControlEntry.accessAllowedCallback, "XD": AccessControlEntry.accessDeniedCallback,
        "XU": AccessControlEntry.systemAuditCallback,
    ]
    private static let unsupportedTypes: [String: String] = [
        "ZA": "a callback object ACE", "RA": "a resource attribute ACE",
    ]

    func fail(_ problem: String) -> Failure { Failure(problem: problem, offset: position) }

    var atEnd: Bool { position >= text.count }

    /// `sidText`, found at `start` of this text, as one SID and nothing
    /// after it; a failure points into this text, not into `sidText`.
    mutating func parseWholeSID(_ sidText: String, at start: Int) throws -> SecurityIdentifier {
        var sidParser = SDDLParser(sidText)
        do {
            let sid = try sidParser.parseSID()
            guard sidParser.atEnd else { throw sidParser.fail("unexpected text after the SID") }
            return sid
        } catch let failure as Failure {
            position = start + failure.offset
            throw fail(failure.problem)
        }
    }

    func peek(_ offset: Int = 0) -> Character? {
        position + offset < text.count ? text[position + offset] : nil
    }

    mutating func skipSpaces() {
        while let c = peek(), c == " " { position += 1 }
    }

    /// A part tag (`O:`, `G:`, `D:`, `S:`) starts here.
    private func atTag() -> Bool {
        guard let c = peek(), let colon = peek(1), colon == ":" else { return false }
        return c == "O" || c == "G" || c == "D" || c == "S"
    }

    private mutating func parseDescriptor() throws -> SecurityDescriptor {
        var descriptor = SecurityDescriptor()
        var seen: Set<Character> = []
        skipSpaces()
        guard !atEnd else { throw fail("the descriptor is empty") }
        while true {
            skipSpaces()
            guard let tag = peek() else { break }
            guard atTag() else { throw fail("expected O:, G:, D: or S:, found \"\(tag)\"") }
            guard seen.insert(tag).inserted else { throw fail("\(tag): appears twice") }
            position += 2
            switch tag {
            case "O": descriptor.owner = try parseSID()
            case "G": descriptor.group = try parseSID()
            case "D":
                let (flags, acl) = try parseACL(system: false)
                descriptor.control |= flags
                descriptor.dacl = acl
            default:
                let (flags, acl) = try parseACL(system: true)
                descriptor.control |= flags
                descriptor.sacl = acl
            }
        }
        let size = descriptor.bytes.count
        guard size <= Int(UInt16.max) else { throw fail("the descriptor takes \(size) bytes, at most 65535 fit") }
        return descriptor
    }

    mutating func parseSID() throws -> SecurityIdentifier {
        skipSpaces()
        let start = position
        if peek() == "S", peek(1) == "-" {
            // S-1-authority(-sub)*: authority is decimal or 0x and 12 hex digits; sub-authorities decimal.
            position += 2
            var end = position
            while end < text.count {
                let c = text[end]
                if c.isASCII && c.isNumber || c == "-" { end += 1; continue }
                // A hex authority: S-1-0x followed by 12 hex digits.
                if c == "x" || c == "X", String(text[start..<end]) == "S-1-0" {
                    end += 1
                    while end < text.count, end < start + 18, text[end].isASCII, text[end].isHexDigit { end += 1 }
                    continue
                }
                break
            }
            let candidate = String(text[start..<end])
            guard let sid = SecurityIdentifier(string: Substring(candidate)) else {
                throw fail("\"\(candidate)\" is not a SID (S-1-authority-subauthority…, at most 15 sub-authorities)")
            }
            position = end
            return sid
        }
        guard let first = peek(), let second = peek(1), first.isUppercase, second.isUppercase || second.isNumber else {
            throw fail("expected a SID (S-1-… or a two-letter alias such as BA, SY, WD)")
        }
        let alias = String([first, second])
        position += 2
        if let sid = SecurityIdentifier.aliases[alias] { return sid }
        if SecurityIdentifier.relativeAliases.contains(alias) {
            position = start
            throw fail("SID alias \(alias) names an account relative to a domain or machine SID that a layer does not carry; write its S-1-5-21-… SID")
        }
        position = start
        throw fail("unknown SID alias \"\(alias)\"")
    }

    private mutating func parseACL(system: Bool) throws -> (UInt16, SecurityDescriptor.ACL) {
        var control: UInt16 = 0
        var isNull = false
        while true {
            skipSpaces()
            if atEnd || peek() == "(" || atTag() { break }
            if text[position...].starts(with: "NO_ACCESS_CONTROL") {
                position += "NO_ACCESS_CONTROL".count
                isNull = true
            } else if peek() == "P" {
                position += 1
                control |= system ? SecurityDescriptor.saclProtected : SecurityDescriptor.daclProtected
            } else if peek() == "A", peek(1) == "I" {
                position += 2
                control |= system ? SecurityDescriptor.saclAutoInherited : SecurityDescriptor.daclAutoInherited
            } else if peek() == "A", peek(1) == "R" {
                position += 2
                control |= system ? SecurityDescriptor.saclAutoInheritRequired : SecurityDescriptor.daclAutoInheritRequired
            } else {
                throw fail("unknown ACL flag; expected P, AI, AR, NO_ACCESS_CONTROL or an ACE in parentheses")
            }
        }
        var entries: [AccessControlEntry] = []
        while true {
            skipSpaces()
            guard peek() == "(" else { break }
            if isNull { throw fail("NO_ACCESS_CONTROL (a null ACL) cannot hold ACEs") }
            entries.append(try parseACE(system: system))
            if entries.count > 8192 { throw fail("more than 8192 ACEs") }
        }
        return (control, SecurityDescriptor.ACL(entries: isNull ? nil : entries))
    }

    /// The text up to the next `;` (consumed) or, for the last field, `)`.
    private mutating func field(last: Bool = false) throws -> String {
        let start = position
        while let c = peek(), c != ";", c != ")" { position += 1 }
        let value = String(text[start..<position])
        guard let end = peek() else { throw fail("an ACE is not closed with \")\"") }
        if last {
            guard end == ")" else { throw fail("an ACE has more than six fields (a condition needs a callback ACE type: XA, XD or XU)") }
        } else {
            guard end == ";" else { throw fail("an ACE has fewer than six fields (type;flags;rights;object;inherited object;sid)") }
            position += 1
        }
        return value
    }

    private mutating func parseACE(system: Bool) throws -> AccessControlEntry {
        let aceStart = position
        position += 1
        let typeText = try field()
        guard var type = SDDLParser.aceTypes[typeText] ?? SDDLParser.callbackTypes[typeText] else {
            position = aceStart
            if let what = SDDLParser.unsupportedTypes[typeText] { throw fail("ACE type \(typeText) is \(what), which is not supported") }
            throw fail("unknown ACE type \"\(typeText)\"")
        }
        let isCallback = SDDLParser.callbackTypes[typeText] != nil
        let isSystemType = [AccessControlEntry.systemAudit, AccessControlEntry.systemAuditCallback, AccessControlEntry.systemAlarm, AccessControlEntry.systemAuditObject,
                            AccessControlEntry.systemAlarmObject, AccessControlEntry.systemMandatoryLabel,
                            AccessControlEntry.systemScopedPolicyID].contains(type)
        if isSystemType != system {
            position = aceStart
            throw fail("ACE type \(typeText) belongs in the \(isSystemType ? "SACL (S:)" : "DACL (D:)")")
        }
        let flagsStart = position
        let flagsText = Array(try field())
        guard flagsText.count % 2 == 0 else { position = flagsStart; throw fail("ACE flags \"\(String(flagsText))\" are not two-letter codes") }
        var flags: UInt8 = 0
        for index in stride(from: 0, to: flagsText.count, by: 2) {
            let code = String(flagsText[index..<index + 2])
            guard let bit = SDDLParser.aceFlags[code] else { position = flagsStart; throw fail("unknown ACE flag \"\(code)\"") }
            flags |= bit
        }
        let rightsStart = position
        let mask = try parseRights(try field(), at: rightsStart)
        let objectStart = position
        let objectType = try parseGUID(try field(), at: objectStart)
        let inheritedStart = position
        let inheritedObjectType = try parseGUID(try field(), at: inheritedStart)
        let sidStart = position
        var sidText = ""
        var condition: [UInt8] = []
        if isCallback {
            // The SID ends the ACE or is followed by ";(condition)".
            while let c = peek(), c != ";", c != ")" { position += 1 }
            sidText = String(text[sidStart..<position])
            guard let end = peek() else { throw fail("an ACE is not closed with \")\"") }
            if end == ";" {
                position += 1
                condition = try parseCondition()
                skipSpaces()
                guard peek() == ")" else { throw fail("expected \")\" after the ACE's condition") }
            }
        } else {
            sidText = try field(last: true)
        }
        position += 1  // ")"
        let end = position
        let sid = try parseWholeSID(sidText, at: sidStart)
        position = end
        let isObject = (AccessControlEntry.accessAllowedObject...AccessControlEntry.systemAlarmObject).contains(type)
        if !isObject, objectType != nil || inheritedObjectType != nil {
            position = aceStart
            throw fail("ACE type \(typeText) takes no object GUIDs; use OA, OD, OU or OL")
        }
        if isObject && objectType == nil && inheritedObjectType == nil {
            // Windows writes an object ACE without GUIDs as the plain ACE type.
            type -= 5
        }
        return AccessControlEntry(type: type, flags: flags, mask: mask, sid: sid, objectType: objectType, inheritedObjectType: inheritedObjectType,
                                  applicationData: condition)
    }

    private func parseRights(_ text: String, at start: Int) throws -> UInt32 {
        func failHere(_ problem: String) -> Failure { Failure(problem: problem, offset: start) }
        if text.isEmpty { return 0 }
        if text.hasPrefix("0x") || text.hasPrefix("0X") {
            guard let value = UInt32(text.dropFirst(2), radix: 16) else { throw failHere("rights \"\(text)\" are not a 32-bit hex number") }
            return value
        }
        if text.first?.isNumber == true {
            guard text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = UInt32(text) else { throw failHere("rights \"\(text)\" are not a 32-bit number") }
            return value
        }
        let letters = Array(text)
        guard letters.count % 2 == 0 else { throw failHere("rights \"\(text)\" are not two-letter codes") }
        var mask: UInt32 = 0
        for index in stride(from: 0, to: letters.count, by: 2) {
            let code = String(letters[index..<index + 2])
            guard let bits = SDDLParser.rights[code] else { throw failHere("unknown access right \"\(code)\"") }
            mask |= bits
        }
        return mask
    }

    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in GUID wire order (first three fields little-endian); nil when empty.
    private func parseGUID(_ text: String, at start: Int) throws -> [UInt8]? {
        if text.isEmpty { return nil }
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.map(\.count) == [8, 4, 4, 4, 12], text.allSatisfy({ $0 == "-" || $0.isASCII && $0.isHexDigit }),
              let data1 = UInt32(groups[0], radix: 16), let data2 = UInt16(groups[1], radix: 16), let data3 = UInt16(groups[2], radix: 16) else {
            throw Failure(problem: "\"\(text)\" is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", offset: start)
        }
        var bytes: [UInt8] = withUnsafeBytes(of: data1.littleEndian, Array.init) + withUnsafeBytes(of: data2.littleEndian, Array.init)
            + withUnsafeBytes(of: data3.littleEndian, Array.init)
        let tail = Array((groups[3] + groups[4]).utf8)
        for index in stride(from: 0, to: tail.count, by: 2) {
            guard let byte = UInt8(String(decoding: tail[index..<index + 2], as: UTF8.self), radix: 16) else {
                throw Failure(problem: "\"\(text)\" is not a GUID", offset: start)
            }
            bytes.append(byte)
        }
        return bytes
    }
}
