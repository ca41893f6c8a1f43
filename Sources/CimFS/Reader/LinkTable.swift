/// A parsed link table: a directory's entries (FileIDs) or a stream table's
/// entries (Streams), each with a name. Parsing validates every count, offset
/// and name length against the table's bytes; order is checked separately
/// (``isSorted(upcase:)``) because a reader must not trust it.
struct LinkTable: Sendable {
    /// Names in on-disk order.
    let names: [[UInt16]]
    /// Entries in on-disk order; 4 or 16 bytes each.
    let entryBytes: [[UInt8]]
    /// Whether any name contains a surrogate code unit.
    let hasSurrogates: Bool

    static let empty = LinkTable(names: [], entryBytes: [], hasSurrogates: false)

    init(names: [[UInt16]], entryBytes: [[UInt8]], hasSurrogates: Bool) {
        self.names = names
        self.entryBytes = entryBytes
        self.hasSurrogates = hasSurrogates
    }

    /// Parses `raw`, which holds the whole table (its first u32 is the total length).
    init(_ raw: LittleEndianBytes, entrySize: Int) throws {
        let total = try raw.u32(0)
        let count = try raw.u32(4)
        guard UInt64(total) <= UInt64(raw.count) else {
            throw CimError.corrupt(path: raw.path, offset: raw.baseOffset,
                                   problem: "link table claims \(total) bytes but only \(raw.count) are available")
        }
        guard total >= 8 else {
            throw CimError.invalidField(path: raw.path, offset: raw.baseOffset, field: "link table length",
                                        value: UInt64(total), expected: "at least 8")
        }
        // Each link needs an entry, a name offset and a name count at least.
        let perLink = UInt64(entrySize + 4 + 2)
        guard UInt64(count) * perLink <= UInt64(total) - 8 else {
            throw CimError.invalidField(path: raw.path, offset: raw.baseOffset + 4, field: "link count",
                                        value: UInt64(count), expected: "at most \((UInt64(total) - 8) / perLink) for a \(total)-byte table")
        }
        let n = Int(count)
        var names: [[UInt16]] = []
        var entries: [[UInt8]] = []
        names.reserveCapacity(n)
        entries.reserveCapacity(n)
        var surrogates = false
        let offsetsStart = 8 + n * entrySize
        for i in 0..<n {
            entries.append(try raw.slice(8 + i * entrySize, entrySize))
            let nameOffset = Int(try raw.u32(offsetsStart + 4 * i))
            guard nameOffset >= offsetsStart + 4 * n, nameOffset <= Int(total) - 2 else {
                throw CimError.corrupt(path: raw.path, offset: raw.baseOffset + UInt64(offsetsStart + 4 * i),
                                       problem: "name offset \(nameOffset) of link \(i) is outside the table's name area")
            }
            let units = Int(try raw.u16(nameOffset))
            guard units >= 1, units <= CimFormat.maxNameUnits else {
                throw CimError.invalidField(path: raw.path, offset: raw.baseOffset + UInt64(nameOffset),
                                            field: "name length", value: UInt64(units), expected: "1...255 code units")
            }
            guard nameOffset + 2 + units * 2 <= Int(total) else {
                throw CimError.corrupt(path: raw.path, offset: raw.baseOffset + UInt64(nameOffset),
                                       problem: "name of link \(i) runs past the end of the table")
            }
            let name = try raw.utf16(nameOffset + 2, units: units)
            if !surrogates && name.contains(where: { $0 & 0xF800 == 0xD800 }) { surrogates = true }
            names.append(name)
        }
        self.names = names
        self.entryBytes = entries
        self.hasSurrogates = surrogates
    }

    var count: Int { names.count }

    /// Compares two names the way NTFS collates: code unit by code unit through the upcase table.
    static func compare(_ a: [UInt16], _ b: [UInt16], upcase: UpcaseTable) -> Int {
        let n = min(a.count, b.count)
        for i in 0..<n {
            let x = upcase[a[i]], y = upcase[b[i]]
            if x != y { return x < y ? -1 : 1 }
        }
        return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
    }

    /// Index of `name`, found by binary search; if that misses in a table
    /// holding surrogates (whose order writers disagree on) or an unsorted
    /// table, by a linear scan. The order never decides whether a name exists.
    func index(of name: [UInt16], upcase: UpcaseTable) -> Int? {
        var low = 0, high = names.count - 1
        while low <= high {
            let mid = low + (high - low) / 2
            let c = LinkTable.compare(names[mid], name, upcase: upcase)
            if c == 0 { return mid }
            if c < 0 { low = mid + 1 } else { high = mid - 1 }
        }
        return names.firstIndex { LinkTable.compare($0, name, upcase: upcase) == 0 }
    }

    /// The first position where the table is out of order or holds two equal names, if any.
    func orderProblem(upcase: UpcaseTable) -> (index: Int, duplicate: Bool)? {
        guard names.count > 1 else { return nil }
        for i in 1..<names.count {
            let c = LinkTable.compare(names[i - 1], names[i], upcase: upcase)
            if c == 0 { return (i, true) }
            if c > 0 {
                // Code-point order (the published reader's) is tolerated for surrogates.
                if hasSurrogates && LinkTable.codePointLess(names[i - 1], names[i], upcase: upcase) { continue }
                return (i, false)
            }
        }
        return nil
    }

    /// Code-point order of two names after upcasing BMP units (surrogates untouched).
    private static func codePointLess(_ a: [UInt16], _ b: [UInt16], upcase: UpcaseTable) -> Bool {
        func key(_ unit: UInt16) -> UInt32 {
            let u = upcase[unit]
            // Surrogates sort above all BMP units in code-point order.
            if u & 0xF800 == 0xD800 { return 0x10000 + UInt32(u) }
            return UInt32(u)
        }
        let n = min(a.count, b.count)
        for i in 0..<n where key(a[i]) != key(b[i]) { return key(a[i]) < key(b[i]) }
        return a.count < b.count
    }
}
