/// One name of a source directory: the Linux name, its UTF-16 units, the
/// units stored in the image (other than `units` only when renamed) and the
/// upcased key the image sorts and compares by.
struct WriterSourceName {
    var name: String
    var units: [UInt16]
    var stored: [UInt16]
    var key: [UInt16]

    init(name: String, units: [UInt16]) {
        self.name = name
        self.units = units
        self.stored = units
        self.key = WriterUpcaseTable.upcased(units)
    }
}

/// Names of one directory that differ only in case (`Sys`, `sys`), which a
/// CIM image cannot hold side by side, resolved as ``CimCaseConflictPolicy`` says.
///
/// Within a group of such names the first in code-unit order keeps its name.
/// `.rename` stores each other one as `NAME~2`, `NAME~3`… (cut so that the
/// name stays within 255 units), choosing numbers whose result equals no
/// other name of the directory, again ignoring case.
enum WriterCaseConflicts {
    struct Resolution {
        /// The names to store, sorted by key.
        var names: [WriterSourceName]
        /// `.error`: one line per group.
        var conflicts: [String] = []
        var skipped: [String] = []
        var renamed: [String] = []
    }

    static func resolve(_ names: [WriterSourceName], policy: CimCaseConflictPolicy, directory: String) -> Resolution {
        let sorted = names.sorted {
            $0.key != $1.key ? $0.key.lexicographicallyPrecedes($1.key) : $0.units.lexicographicallyPrecedes($1.units)
        }
        var resolution = Resolution(names: [])
        resolution.names.reserveCapacity(sorted.count)
        var taken = Set(sorted.map(\.key))
        var start = 0
        while start < sorted.count {
            var end = start + 1
            while end < sorted.count, sorted[end].key == sorted[start].key { end += 1 }
            let first = sorted[start]
            resolution.names.append(first)
            if end - start > 1 {
                let others = sorted[(start + 1)..<end]
                switch policy {
                case .error:
                    resolution.names += others
                    resolution.conflicts.append("\(directory): " + sorted[start..<end].map { "\"\($0.name)\"" }.joined(separator: ", "))
                case .skip:
                    for other in others {
                        resolution.skipped.append("\(WriterPaths.join(directory, other.name)): left out, its name differs only in case from \"\(first.name)\" (--case-conflicts skip)")
                    }
                case .rename:
                    for var other in others {
                        var counter = 2
                        while true {
                            let candidate = numbered(other.units, counter)
                            let key = WriterUpcaseTable.upcased(candidate)
                            if !taken.contains(key) {
                                taken.insert(key)
                                other.stored = candidate
                                other.key = key
                                break
                            }
                            counter += 1
                        }
                        resolution.renamed.append("\(WriterPaths.join(directory, other.name)): stored as \"\(String(decoding: other.stored, as: UTF16.self))\", its name differs only in case from \"\(first.name)\" (--case-conflicts rename; cim extract restores it)")
                        resolution.names.append(other)
                    }
                }
            }
            start = end
        }
        if policy == .rename { resolution.names.sort { $0.key.lexicographicallyPrecedes($1.key) } }
        return resolution
    }

    /// `NAME~N`, NAME cut (never inside a surrogate pair) so that the whole fits in 255 units.
    static func numbered(_ units: [UInt16], _ counter: Int) -> [UInt16] {
        let suffix = Array("~\(counter)".utf16)
        var kept = units.prefix(CimFormat.maxNameUnits - suffix.count)
        if kept.count < units.count, let last = kept.last, UTF16.isLeadSurrogate(last) { kept.removeLast() }
        return Array(kept) + suffix
    }

    /// The error for `.error`, naming the option and listing every group.
    static func error(_ conflicts: [String], root: String) -> CimError {
        CimError.invalidInput("\(root): \(conflicts.count) group\(conflicts.count == 1 ? "" : "s") of names differ only in case, "
            + "which a CIM image cannot hold side by side (Windows names are case-insensitive); "
            + "choose --case-conflicts skip (keep the first name in code-unit order) or --case-conflicts rename "
            + "(store the others as NAME~2, NAME~3…, restored by cim extract):\n  " + conflicts.joined(separator: "\n  "))
    }
}
