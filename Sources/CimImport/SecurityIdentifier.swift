/// A Windows security identifier (SID) in its binary form: revision 1, a
/// 48-bit identifier authority and up to 15 sub-authorities.
struct SecurityIdentifier: Hashable, Sendable, CustomStringConvertible {
    var authority: UInt64
    var subAuthorities: [UInt32]

    init(authority: UInt64, _ subAuthorities: [UInt32]) {
        self.authority = authority
        self.subAuthorities = subAuthorities
    }

    /// `01 count authority(6, big-endian) sub-authorities(4 each, little-endian)`.
    var bytes: [UInt8] {
        var out: [UInt8] = [1, UInt8(subAuthorities.count)]
        for shift in stride(from: 40, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: authority >> UInt64(shift))) }
        for value in subAuthorities { out.appendLittleEndian(value) }
        return out
    }

    var description: String {
        "S-1-\(authority)" + subAuthorities.map { "-\($0)" }.joined()
    }

    /// `S-1-<authority>-<sub>…` (authority decimal, or `0x` and 12 hex digits as SDDL allows).
    init?(string: Substring) {
        let parts = string.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts.count <= 18, parts[0] == "S" || parts[0] == "s", parts[1] == "1" else { return nil }
        let authorityText = parts[2]
        if authorityText.hasPrefix("0x") || authorityText.hasPrefix("0X") {
            guard authorityText.count == 14, let value = UInt64(authorityText.dropFirst(2), radix: 16) else { return nil }
            authority = value
        } else {
            guard !authorityText.isEmpty, authorityText.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let value = UInt64(authorityText), value < 1 << 48 else { return nil }
            authority = value
        }
        var subs: [UInt32] = []
        for part in parts.dropFirst(3) {
            guard !part.isEmpty, part.count <= 10, part.allSatisfy({ $0.isASCII && $0.isNumber }), let value = UInt32(part) else { return nil }
            subs.append(value)
        }
        subAuthorities = subs
    }

    static let everyone = SecurityIdentifier(authority: 1, [0])
    static let localSystem = SecurityIdentifier(authority: 5, [18])
    static let localService = SecurityIdentifier(authority: 5, [19])
    static let networkService = SecurityIdentifier(authority: 5, [20])
    static let restrictedCode = SecurityIdentifier(authority: 5, [12])
    static let administrators = SecurityIdentifier(authority: 5, [32, 544])
    static let users = SecurityIdentifier(authority: 5, [32, 545])
    static let trustedInstaller = SecurityIdentifier(authority: 5, [80, 956_008_885, 3_418_522_649, 1_831_038_044, 1_853_292_631, 2_271_478_464])

    /// The two-letter SDDL aliases that name the same SID on every machine
    /// (Microsoft's "SID strings" list). Domain- and machine-relative aliases
    /// (DA, DU, LA, LG, …) are not here: their SID depends on the domain.
    static let aliases: [String: SecurityIdentifier] = {
        func nt(_ subs: UInt32...) -> SecurityIdentifier { SecurityIdentifier(authority: 5, subs) }
        func builtin(_ rid: UInt32) -> SecurityIdentifier { SecurityIdentifier(authority: 5, [32, rid]) }
        return [
            "AA": builtin(579), "AC": SecurityIdentifier(authority: 15, [2, 1]), "AN": nt(7), "AO": builtin(548),
            "AS": SecurityIdentifier(authority: 18, [1]), "AU": nt(11), "BA": builtin(544), "BG": builtin(546),
            "BO": builtin(551), "BU": builtin(545), "CD": builtin(574), "CG": SecurityIdentifier(authority: 3, [1]),
            "CO": SecurityIdentifier(authority: 3, [0]), "CY": builtin(569), "ED": nt(9), "ER": builtin(573),
            "ES": builtin(576), "HA": builtin(578), "HI": SecurityIdentifier(authority: 16, [12288]), "IS": builtin(568),
            "IU": nt(4), "LS": nt(19), "LU": builtin(559), "LW": SecurityIdentifier(authority: 16, [4096]),
            "ME": SecurityIdentifier(authority: 16, [8192]), "MP": SecurityIdentifier(authority: 16, [8448]),
            "MU": builtin(558), "NO": builtin(556), "NS": nt(20), "NU": nt(2), "OW": SecurityIdentifier(authority: 3, [4]),
            "PO": builtin(550), "PS": nt(10), "PU": builtin(547), "RA": builtin(575), "RC": nt(12), "RD": builtin(555),
            "RE": builtin(552), "RM": builtin(580), "RU": builtin(554), "SI": SecurityIdentifier(authority: 16, [16384]),
            "SO": builtin(549), "SS": SecurityIdentifier(authority: 18, [2]), "SU": nt(6), "SY": nt(18),
            "UD": nt(84, 0, 0, 0, 0, 0), "WD": SecurityIdentifier(authority: 1, [0]), "WR": nt(33),
            "TI": trustedInstaller,
        ]
    }()

    /// Aliases of accounts relative to a domain or machine SID this importer cannot know.
    static let relativeAliases: Set<String> = ["AP", "CA", "CN", "DA", "DC", "DD", "DG", "DU", "EA", "EK", "KA", "LA", "LG", "PA", "RO", "RS", "SA"]
}
