import Crypto

/// The security descriptors of a package laid out as msixmgr lays it out.
///
/// Windows' image of the putty package (`../shared/fixtures/real/putty`)
/// shows what msixmgr writes (its `-applyACLs` step) on every entry but the
/// root: owner Administrators, SE_DACL_AUTO_INHERITED and
/// SE_SACL_AUTO_INHERITED with a null SACL, and a DACL of
/// 1. read and execute for Users when `WIN://SYSAPPID Contains "<family
///    name>"` (a conditional callback ACE: only the package's own processes),
/// 2. read and execute for the package's capability SID `S-1-15-3-…` (the
///    first 28 bytes of SHA-256 of the UTF-16LE family name in lower case),
/// 3. read (no execute) for Users,
/// then the ACEs inherited from the folder msixmgr unpacked into:
/// TrustedInstaller, SYSTEM and Administrators full control, the
/// `S-1-15-3-1024-3635283841-…` capability, LOCAL SERVICE, NETWORK SERVICE
/// and RESTRICTED read and execute.
///
/// The first three are explicit and inheritable (OI CI) on `\NAME` and the
/// package directory; below them every ACE is inherited (ID, plus OI CI on
/// directories). What belonged to the Windows machine that made the image is
/// left out: its "None" group becomes SYSTEM, and the full-control ACE of the
/// user who ran msixmgr is dropped.
struct MSIXSecurity {
    enum Place { case top, directory, file }

    let familyName: String

    static let readExecute: UInt32 = 0x12_00A9
    static let read: UInt32 = 0x12_0089
    static let fullControl: UInt32 = 0x1F_01FF
    static let unpackFolderCapability = SecurityIdentifier(authority: 15, [3, 1024, 3_635_283_841, 2_530_182_609, 996_808_640, 1_887_759_898,
                                                                             3_848_208_603, 3_313_616_867, 983_405_619, 2_501_854_204])

    /// `S-1-15-3-` and the first seven little-endian words of SHA-256 of the lower-case family name in UTF-16LE.
    var packageCapability: SecurityIdentifier {
        var bytes: [UInt8] = []
        for unit in familyName.lowercased().utf16 { bytes.append(UInt8(unit & 0xFF)); bytes.append(UInt8(unit >> 8)) }
        let digest = Array(SHA256.hash(data: bytes))
        let words = (0..<7).map { index in
            digest[index * 4..<index * 4 + 4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        }
        return SecurityIdentifier(authority: 15, [3] + words)
    }

    /// `WIN://SYSAPPID Contains "<family name>"` in the binary conditional-expression form:
    /// `artx`, a local attribute token (0xF8), a Unicode string literal (0x10), the Contains operator (0x86).
    var packageCondition: [UInt8] {
        func unicode(_ text: String) -> [UInt8] {
            var out: [UInt8] = []
            out.appendLittleEndian(UInt32(text.utf16.count * 2))
            for unit in text.utf16 { out.appendLittleEndian(unit) }
            return out
        }
        var expression = Array("artx".utf8)
        expression.append(0xF8)
        expression.append(contentsOf: unicode("WIN://SYSAPPID"))
        expression.append(0x10)
        expression.append(contentsOf: unicode(familyName))
        expression.append(0x86)
        return expression
    }

    func descriptor(_ place: Place) -> [UInt8] {
        let explicitFlags: UInt8
        let inheritedFlags: UInt8
        let inheritable = AccessControlEntry.objectInherit | AccessControlEntry.containerInherit
        switch place {
        case .top:
            explicitFlags = inheritable
            inheritedFlags = inheritable | AccessControlEntry.inherited
        case .directory:
            explicitFlags = inheritable | AccessControlEntry.inherited
            inheritedFlags = explicitFlags
        case .file:
            explicitFlags = AccessControlEntry.inherited
            inheritedFlags = explicitFlags
        }
        func allow(_ sid: SecurityIdentifier, _ mask: UInt32, _ flags: UInt8) -> AccessControlEntry {
            AccessControlEntry(type: AccessControlEntry.accessAllowed, flags: flags, mask: mask, sid: sid)
        }
        var conditional = allow(.users, MSIXSecurity.readExecute, explicitFlags)
        conditional.type = AccessControlEntry.accessAllowedCallback
        conditional.applicationData = packageCondition
        let entries = [
            conditional,
            allow(packageCapability, MSIXSecurity.readExecute, explicitFlags),
            allow(.users, MSIXSecurity.read, explicitFlags),
            allow(.trustedInstaller, MSIXSecurity.fullControl, inheritedFlags),
            allow(MSIXSecurity.unpackFolderCapability, MSIXSecurity.readExecute, inheritedFlags),
            allow(.localSystem, MSIXSecurity.fullControl, inheritedFlags),
            allow(.administrators, MSIXSecurity.fullControl, inheritedFlags),
            allow(.localService, MSIXSecurity.readExecute, inheritedFlags),
            allow(.networkService, MSIXSecurity.readExecute, inheritedFlags),
            allow(.restrictedCode, MSIXSecurity.readExecute, inheritedFlags),
        ]
        let descriptor = SecurityDescriptor(control: SecurityDescriptor.daclAutoInherited | SecurityDescriptor.saclAutoInherited,
                                            owner: .administrators, group: .localSystem,
                                            sacl: SecurityDescriptor.ACL(entries: nil), dacl: SecurityDescriptor.ACL(entries: entries))
        return descriptor.bytes
    }
}
