/// The extended attribute (EA) that records the Linux names `cim create
/// --case-conflicts rename` had to change, so that `cim extract` and the
/// translator can give the files their names back.
///
/// Windows names are case-insensitive, so of `Sys` and `sys` in one Linux
/// directory only one can keep its name; the other is stored as `sys~2`.
/// The original goes into an EA of the renamed file, `CIMNBD.LINUXNAME`,
/// whose value is `STORED/ORIGINAL` in UTF-8 (`/` cannot occur in either
/// name; a file renamed under several hard-link names holds several pairs,
/// `/`-joined). An EA rather than an alternate stream, because Windows
/// tools never show or copy EAs by surprise (WSL keeps its Linux metadata
/// in EAs the same way), while streams appear in `dir /r`, in Explorer
/// copies and in security scanners.
///
/// The EA chain is a list of FILE_FULL_EA_INFORMATION records: u32 offset of
/// the next record (0 for the last, records 4-byte aligned), u8 flags, u8
/// name length, u16 value length, the name, a NUL, the value.
package enum OriginalNameEA {
    /// The EA's name (EA names are upper-case ASCII on NTFS).
    package static let name: [UInt8] = Array("CIMNBD.LINUXNAME".utf8)

    package struct Record: Equatable, Sendable {
        package var flags: UInt8
        package var name: [UInt8]
        package var value: [UInt8]
    }

    /// One renamed link: the name stored in the image and the Linux name it replaces.
    package struct RenamedLink: Equatable, Sendable {
        package var stored: [UInt16]
        package var original: [UInt16]
    }

    /// The records of an EA chain, or nil when the chain is malformed.
    package static func records(_ chain: [UInt8]) -> [Record]? {
        var result: [Record] = []
        var offset = 0
        while offset < chain.count {
            guard chain.count - offset >= 8 else { return nil }
            let next = Int(chain[offset]) | Int(chain[offset + 1]) << 8 | Int(chain[offset + 2]) << 16 | Int(chain[offset + 3]) << 24
            let nameLength = Int(chain[offset + 5])
            let valueLength = Int(chain[offset + 6]) | Int(chain[offset + 7]) << 8
            let size = 8 + nameLength + 1 + valueLength
            guard size <= chain.count - offset else { return nil }
            let nameStart = offset + 8, valueStart = nameStart + nameLength + 1
            result.append(Record(flags: chain[offset + 4], name: Array(chain[nameStart..<(nameStart + nameLength)]),
                                 value: Array(chain[valueStart..<(valueStart + valueLength)])))
            if next == 0 { return result }
            guard next >= size, next < chain.count - offset else { return nil }
            offset += next
        }
        return result
    }

    /// Serializes records as a chain (every record but the last padded to 4 bytes).
    package static func chain(_ records: [Record]) -> [UInt8] {
        var bytes: [UInt8] = []
        for (index, record) in records.enumerated() {
            let size = 8 + record.name.count + 1 + record.value.count
            let isLast = index == records.count - 1
            let next = isLast ? 0 : (size + 3) & ~3
            bytes += [UInt8(next & 0xFF), UInt8(next >> 8 & 0xFF), UInt8(next >> 16 & 0xFF), UInt8(next >> 24 & 0xFF)]
            bytes += [record.flags, UInt8(truncatingIfNeeded: record.name.count),
                      UInt8(record.value.count & 0xFF), UInt8(record.value.count >> 8 & 0xFF)]
            bytes += record.name + [0] + record.value
            if !isLast { bytes += [UInt8](repeating: 0, count: next - size) }
        }
        return bytes
    }

    /// `chain` (nil for none) with a record of `links` appended.
    /// - Throws: when `chain` is malformed or the result exceeds what an entry's
    ///   16-bit EA length can describe.
    package static func adding(_ links: [RenamedLink], to chain: [UInt8]?, path: String) throws -> [UInt8] {
        guard var existing = records(chain ?? []) else {
            throw CimError.invalidInput("\(path): trusted.ntfs_ea is not a valid EA chain, so the original name of the renamed file cannot be added to it")
        }
        existing.removeAll { $0.name == name }
        let value = links.map { String(decoding: $0.stored, as: UTF16.self) + "/" + String(decoding: $0.original, as: UTF16.self) }
            .joined(separator: "/")
        existing.append(Record(flags: 0, name: name, value: Array(value.utf8)))
        let result = self.chain(existing)
        guard value.utf8.count <= Int(UInt16.max), result.count <= Int(UInt16.max) else {
            throw CimError.invalidInput("\(path): the EA chain with the original names would be \(result.count) bytes, at most 65535 fit")
        }
        return result
    }

    /// The renamed links recorded in `chain`; empty when there is no such record or it is malformed.
    package static func renamedLinks(in chain: [UInt8]) -> [RenamedLink] {
        guard let record = records(chain)?.first(where: { $0.name == name }),
              let text = String(validating: record.value, as: UTF8.self) else { return [] }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count % 2 == 0 else { return [] }
        return stride(from: 0, to: parts.count, by: 2).compactMap { index in
            let stored = Array(parts[index].utf16), original = Array(parts[index + 1].utf16)
            return stored.isEmpty || original.isEmpty ? nil : RenamedLink(stored: stored, original: original)
        }
    }

    /// `chain` without the record of original names; nil when nothing else is left.
    package static func removing(from chain: [UInt8]) -> [UInt8]? {
        guard let all = records(chain), all.contains(where: { $0.name == name }) else { return chain.isEmpty ? nil : chain }
        let rest = all.filter { $0.name != name }
        return rest.isEmpty ? nil : self.chain(rest)
    }
}
