/// How Linux extended attributes map onto CIM file metadata.
///
/// | Linux xattr | CIM |
/// |---|---|
/// | `user.<name>` | alternate data stream `<name>` (value = stream bytes) |
/// | `trusted.ntfs_acl` | security descriptor (self-relative, raw) |
/// | `trusted.ntfs_attrib` | u32 LE Windows attribute word; READONLY 0x1, HIDDEN 0x2, SYSTEM 0x4, ARCHIVE 0x20 and SPARSE_FILE 0x200 become the entry flags; other bits are dropped |
/// | `trusted.ntfs_ea` | raw FILE_FULL_EA_INFORMATION chain (at most 65535 bytes) |
/// | `trusted.ntfs_reparse_data` | raw reparse data object (normally the whole REPARSE_DATA_BUFFER, tag header included); overrides the reparse point a symlink would get |
/// | `trusted.ntfs_reparse_tag` | u32 LE reparse tag of the file entry; only needed (and only written by extraction) when it is not the first 4 bytes of the reparse data, e.g. empty or header-less data |
/// | `trusted.cimnbd.name` | UTF-16LE name to store instead of the Linux name, when the Linux name is the `~hash` form ``WindowsName`` makes of it (extraction writes it for names Linux cannot hold) |
///
/// The names follow ntfs-3g's conventions so that a tree copied off an NTFS
/// volume keeps its Windows metadata. All other xattrs (`security.*`,
/// `system.*`, other `trusted.*`) have no CIM counterpart and are skipped
/// (they are listed in ``CimWriteSummary/skipped``). Extraction writes the
/// same names back; `trusted.ntfs_attrib` only when some flag is set.
struct WriterXattrMapping {
    static let streamPrefix = "user."
    static let securityDescriptorName = "trusted.ntfs_acl"
    static let attributesName = "trusted.ntfs_attrib"
    static let extendedAttributesName = "trusted.ntfs_ea"
    static let reparseName = "trusted.ntfs_reparse_data"
    static let reparseTagName = "trusted.ntfs_reparse_tag"

    var streams: [(name: [UInt16], value: [UInt8])] = []
    var securityDescriptor: [UInt8]?
    var entryFlags: UInt16 = 0
    var extendedAttributes: [UInt8]?
    var reparse: [UInt8]?
    var reparseTag: UInt32?
    /// DIRECTORY in the attribute word: a symlink with it is stored as a directory.
    var isDirectory = false
    var ignored: [String] = []

    var isEmpty: Bool {
        streams.isEmpty && securityDescriptor == nil && entryFlags == 0 && extendedAttributes == nil && reparse == nil && reparseTag == nil
    }

    /// Attribute-word bits and the entry flag each becomes.
    static let flagMap: [(attribute: UInt32, flag: UInt16)] = [
        (CimFormat.Attribute.readOnly, CimFormat.EntryFlag.readOnly),
        (CimFormat.Attribute.hidden, CimFormat.EntryFlag.hidden),
        (CimFormat.Attribute.system, CimFormat.EntryFlag.system),
        (CimFormat.Attribute.archive, CimFormat.EntryFlag.archive),
        (CimFormat.Attribute.sparseFile, CimFormat.EntryFlag.sparse),
    ]

    static func entryFlags(fromAttributes word: UInt32) -> UInt16 {
        flagMap.reduce(0) { word & $1.attribute != 0 ? $0 | $1.flag : $0 }
    }

    static func attributes(fromEntryFlags flags: UInt16) -> UInt32 {
        flagMap.reduce(0) { flags & $1.flag != 0 ? $0 | $1.attribute : $0 }
    }

    /// Reads and validates the xattrs of `path`.
    static func read(_ path: String) throws -> WriterXattrMapping {
        var mapping = WriterXattrMapping()
        var seenStreams: [[UInt16]: String] = [:]
        for name in try WriterLinux.listXattrs(path) {
            if name.hasPrefix(streamPrefix) {
                let streamName = Array(name.dropFirst(streamPrefix.count).utf16)
                guard !streamName.isEmpty, streamName.count <= CimFormat.maxNameUnits else {
                    throw CimError.invalidInput("\(path): xattr \(name): stream names must be 1 to \(CimFormat.maxNameUnits) UTF-16 units")
                }
                let key = WriterUpcaseTable.upcased(streamName)
                if let other = seenStreams[key] {
                    throw CimError.invalidInput("\(path): xattrs \(other) and \(name) name the same stream (names are case-insensitive)")
                }
                seenStreams[key] = name
                mapping.streams.append((streamName, try WriterLinux.getXattr(path, name: name)))
                continue
            }
            switch name {
            case securityDescriptorName:
                let value = try WriterLinux.getXattr(path, name: name)
                guard value.count <= Int(UInt16.max) else {
                    throw CimError.invalidInput("\(path): \(name) is \(value.count) bytes, at most 65535 fit")
                }
                mapping.securityDescriptor = value
            case attributesName:
                let value = try WriterLinux.getXattr(path, name: name)
                guard value.count == 4 else {
                    throw CimError.invalidInput("\(path): \(name) must be a 4-byte little-endian attribute word, found \(value.count) bytes")
                }
                let word = value.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
                mapping.entryFlags = entryFlags(fromAttributes: word)
                mapping.isDirectory = word & CimFormat.Attribute.directory != 0
            case extendedAttributesName:
                let value = try WriterLinux.getXattr(path, name: name)
                guard value.count <= Int(UInt16.max) else {
                    throw CimError.invalidInput("\(path): \(name) is \(value.count) bytes, at most 65535 fit (EA length is 16 bits)")
                }
                mapping.extendedAttributes = value
            case reparseName:
                let value = try WriterLinux.getXattr(path, name: name)
                guard value.count <= Int(UInt16.max) else {
                    throw CimError.invalidInput("\(path): \(name) is \(value.count) bytes, at most 65535 fit")
                }
                mapping.reparse = value
            case reparseTagName:
                let value = try WriterLinux.getXattr(path, name: name)
                guard value.count == 4 else {
                    throw CimError.invalidInput("\(path): \(name) must be a 4-byte little-endian reparse tag, found \(value.count) bytes")
                }
                mapping.reparseTag = value.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
            case WindowsName.originalNameAttribute:
                break  // read with the file's name: WriterSourceTree.originalName
            default:
                mapping.ignored.append(name)
            }
        }
        if let data = mapping.reparse, mapping.reparseTag == nil, data.count < 4 {
            throw CimError.invalidInput("\(path): \(reparseName) is \(data.count) bytes, too short to hold a tag; set \(reparseTagName) too")
        }
        return mapping
    }
}
