/// A CIM image seen as a Linux tree: the one mapping behind the translator
/// (`CimTreeSource` in VolumeSynth) and ``CimExtractor``, and the inverse of
/// what ``CimWriter`` reads.
///
/// - Nodes are FileIDs, so hard links share a node.
/// - Names follow ``WindowsName``: a name Linux cannot hold gets the `~hash`
///   form, its original kept in `trusted.cimnbd.name`. A name `cim create
///   --case-conflicts rename` changed gets its original back (see
///   ``OriginalNameEA``). Should a name then equal another of the directory,
///   `~2`, `~3`… is appended.
/// - Symlink and mount-point reparse points become symlinks (targets from
///   ``ReparseLink``), directories included, unless that would hide
///   something: a directory with entries stays a directory, a file with data
///   stays a file, and both keep their buffer in `trusted.ntfs_reparse_data`.
/// - Windows metadata as xattrs, ntfs-3g's names moved to `trusted.`, in
///   this order so that when space runs out it is streams that are left out:
///   `trusted.ntfs_acl` (security descriptor), `trusted.ntfs_attrib` (u32 LE:
///   read-only, hidden, system, archive, sparse, and directory on a symlink
///   made from a directory; only when one is set),
///   `trusted.ntfs_ea` (EA chain), `trusted.ntfs_reparse_tag` (u32 LE, only
///   when it is not the buffer's first 4 bytes), `trusted.ntfs_reparse_data`
///   (unless the node is a symlink whose buffer the writer makes again from
///   the target), `trusted.cimnbd.name`, then `user.<stream>` for each
///   alternate stream. A value over Linux's 64 KiB cap, and a stream of a
///   symlink (Linux has no `user.*` xattrs on symlinks), is left out and
///   named in ``Attributes/leftOut``.
package struct CimLinuxMapping: Sendable {
    /// How absolute Windows link targets (`C:\x`) are anchored.
    package enum AbsoluteTargets: Sendable, Equatable {
        /// `../` per level back to the root: a volume mounted anywhere (the translator).
        case relativeToLink
        /// `/x`: a tree that is a root filesystem (`cim extract`).
        case treeRoot
    }

    package enum Kind: Sendable, Equatable { case directory, regularFile, symbolicLink }

    /// One directory entry as Linux sees it.
    package struct Child: Sendable, Equatable {
        /// Valid UTF-8, 1…255 bytes, no `/` or NUL, unique in its directory.
        package var name: [UInt8]
        package var node: CimFileID
        /// The image's name, UTF-16.
        package var imageName: [UInt16]
        /// True when `name` is neither the image's name nor a restored original.
        package var isReplacement: Bool
    }

    /// The xattrs of a node, and those Linux cannot hold.
    package struct Attributes: Sendable {
        package var list: [(name: String, value: [UInt8])] = []
        /// The values left out: xattr name and why.
        package var leftOut: [(name: String, reason: String)] = []
    }

    /// Linux caps one xattr value at 64 KiB.
    package static let maxAttributeValue = 65536
    /// An xattr name is at most 255 bytes, `user.` included.
    static let maxStreamNameBytes = 255 - 5

    package let image: CimImage
    package let absoluteTargets: AbsoluteTargets
    /// Symlink targets of the nodes that become symlinks.
    private let symlinks: [CimFileID: [UInt8]]
    /// Original UTF-16 names of nodes whose Linux name had to be replaced.
    private let replacedNames: [CimFileID: [UInt16]]
    /// Links renamed by `cim create --case-conflicts rename`, per node.
    private let renamedLinks: [CimFileID: [OriginalNameEA.RenamedLink]]

    /// Walks the image once (metadata only) to learn symlink targets (which
    /// may depend on the depth of the link's first name), replaced names and
    /// renamed links. With `root`, only that directory's subtree is walked,
    /// and link depths count from it (it is the root of the Linux tree).
    package init(image: CimImage, absoluteTargets: AbsoluteTargets, root: CimFileID? = nil) throws {
        self.image = image
        self.absoluteTargets = absoluteTargets
        var seen = [Bool](repeating: false, count: Int(image.maxFileID) + 1)
        var reparseNodes: [(CimFileID, Int)] = []
        var replaced: [CimFileID: [UInt16]] = [:]
        var renamed: [CimFileID: [OriginalNameEA.RenamedLink]] = [:]
        try image.walkDepths(from: root) { child, entry, depth in
            let index = Int(child.fileID)
            guard index < seen.count, !seen[index] else { return }
            seen[index] = true
            if entry.reparseDataOffset != 0 { reparseNodes.append((child.fileID, depth)) }
            if entry.extendedAttributesOffset != 0, let chain = try image.extendedAttributes(of: child.fileID, entry: entry) {
                let links = OriginalNameEA.renamedLinks(in: chain).filter { WindowsName.direct($0.original) != nil }
                if !links.isEmpty { renamed[child.fileID] = links }
            }
            let restored = renamed[child.fileID]?.contains { $0.stored == child.nameUnits } == true
            if !restored, WindowsName.direct(child.nameUnits) == nil { replaced[child.fileID] = child.nameUnits }
        }
        var symlinks: [CimFileID: [UInt8]] = [:]
        for (id, depth) in reparseNodes {
            let entry = try image.entry(id)
            let anchor: ReparseLink.Anchor = absoluteTargets == .treeRoot ? .treeRoot : .linkDirectory(depth: depth)
            guard let buffer = try image.reparseData(of: id),
                  let target = ReparseLink.target(buffer: buffer, tag: entry.reparseTag, anchor: anchor), !target.isEmpty,
                  target.count < 4096 else { continue }
            // Nothing may be hidden behind the link: entries or data keep the node what it is.
            if try entry.isDirectory ? !image.children(of: id).isEmpty : entry.defaultStream.length > 0 { continue }
            symlinks[id] = target
        }
        self.symlinks = symlinks
        self.replacedNames = replaced
        self.renamedLinks = renamed
    }

    package func kind(of node: CimFileID) throws -> Kind {
        try kind(of: node, entry: image.entry(node))
    }

    /// ``kind(of:)`` for a caller that has decoded the node's entry.
    package func kind(of node: CimFileID, entry: CimFileEntry) -> Kind {
        if symlinks[node] != nil { return .symbolicLink }
        return entry.isDirectory ? .directory : .regularFile
    }

    /// The target of a node that is a symlink, nil for other nodes.
    package func symlinkTarget(of node: CimFileID) -> [UInt8]? { symlinks[node] }

    /// The entries of a directory (none for a directory that became a symlink).
    package func children(of node: CimFileID) throws -> [Child] {
        if symlinks[node] != nil { return [] }
        let entries = try image.children(of: node)
        var result: [Child] = []
        result.reserveCapacity(entries.count)
        var pending: [Int] = []
        var taken = Set<[UInt8]>()
        for entry in entries {
            let original = renamedLinks[entry.fileID]?.first { $0.stored == entry.nameUnits }.flatMap { WindowsName.direct($0.original) }
            let direct = original == nil ? WindowsName.direct(entry.nameUnits) : nil
            // A damaged table may hold one name twice; the second is then placed like a replacement.
            let isTaken = direct.map { !taken.insert($0).inserted } ?? true
            if isTaken { pending.append(result.count) }
            result.append(Child(name: original ?? direct ?? WindowsName.replacement(entry.nameUnits), node: entry.fileID,
                                imageName: entry.nameUnits, isReplacement: original == nil && direct == nil))
        }
        // Names the image does not hold as they are must not take another entry's name.
        for index in pending {
            let base = result[index].name
            var candidate = base
            var counter = 2
            while taken.contains(candidate) {
                candidate = Self.numbered(base, counter)
                counter += 1
            }
            if candidate != base { result[index].isReplacement = true }
            taken.insert(candidate)
            result[index].name = candidate
        }
        return result
    }

    /// `NAME~N`, NAME cut at a character boundary so that the whole stays within 255 bytes.
    static func numbered(_ name: [UInt8], _ counter: Int) -> [UInt8] {
        let suffix = Array("~\(counter)".utf8)
        var kept = name.prefix(255 - suffix.count)
        // Drop a character cut in two.
        if kept.count < name.count, let lead = kept.lastIndex(where: { $0 & 0xC0 != 0x80 }) {
            let length = kept[lead] >= 0xF0 ? 4 : kept[lead] >= 0xE0 ? 3 : kept[lead] >= 0xC0 ? 2 : 1
            if kept.endIndex - lead < length { kept = kept[..<lead] }
        }
        return Array(kept) + suffix
    }

    /// The xattrs of a node, in the order described above.
    package func extendedAttributes(of node: CimFileID) throws -> Attributes {
        let entry = try image.entry(node)
        var result = Attributes()
        func add(_ name: String, _ value: [UInt8]) {
            if value.count > CimLinuxMapping.maxAttributeValue {
                result.leftOut.append((name, "\(value.count) bytes, over Linux's 64 KiB limit"))
            } else {
                result.list.append((name, value))
            }
        }
        if let descriptor = try image.securityDescriptor(of: node, entry: entry) { add(WriterXattrMapping.securityDescriptorName, descriptor) }
        var word = WriterXattrMapping.attributes(fromEntryFlags: entry.flags)
        // A directory link must say it is one, or it comes back from `cim create` as a file link.
        if entry.isDirectory, symlinks[node] != nil { word |= CimFormat.Attribute.directory }
        if word != 0 { add(WriterXattrMapping.attributesName, withUnsafeBytes(of: word.littleEndian, Array.init)) }
        if let chain = try image.extendedAttributes(of: node, entry: entry), let rest = OriginalNameEA.removing(from: chain) {
            add(WriterXattrMapping.extendedAttributesName, rest)
        }
        let reparse = try image.reparseData(of: node, entry: entry)
        let tagInData = reparse.flatMap { $0.count >= 4 ? UInt32($0[0]) | UInt32($0[1]) << 8 | UInt32($0[2]) << 16 | UInt32($0[3]) << 24 : nil }
        if entry.reparseTag != 0 || reparse != nil, tagInData != entry.reparseTag {
            add(WriterXattrMapping.reparseTagName, withUnsafeBytes(of: entry.reparseTag.littleEndian, Array.init))
        }
        if let reparse {
            // A link the writer turns back into this very buffer needs no copy of it.
            let regenerated = symlinks[node].map { WriterSymlinkReparse.buffer(target: String(decoding: $0, as: UTF8.self)) }
            if regenerated != reparse { add(WriterXattrMapping.reparseName, reparse) }
        }
        if let original = replacedNames[node] {
            add(WindowsName.originalNameAttribute, original.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })
        }
        // Streams last: when space runs out, the Windows metadata above is what survives.
        for stream in try image.alternateStreams(of: node, entry: entry) {
            let units = stream.nameUnits
            let name = WriterXattrMapping.streamPrefix + String(decoding: WindowsName.direct(units, maxBytes: Self.maxStreamNameBytes)
                ?? WindowsName.replacement(units, maxBytes: Self.maxStreamNameBytes), as: UTF8.self)
            guard symlinks[node] == nil else {
                // The kernel refuses user.* xattrs on symlinks, and hides those a filesystem has.
                result.leftOut.append((name, "Linux allows user.* xattrs on files and directories only, this is a symlink"))
                continue
            }
            guard stream.size <= UInt64(CimLinuxMapping.maxAttributeValue) else {
                result.leftOut.append((name, "\(stream.size) bytes, over Linux's 64 KiB limit"))
                continue
            }
            add(name, try image.read(stream.stream, at: 0, length: Int(stream.size), fileID: node))
        }
        return result
    }
}
