import CimFS

/// The tree being built while one layer's members are applied.
struct LayerImportState {
    let input: String
    let root: CimTreeNode
    let writer: CimTreeWriter
    let isBase: Bool
    var entries = 0
    var whiteouts = 0
    var deltaHives: [String] = []
    var newestTime: UInt64 = 0
    /// Descriptors seen, so identical ones share one array.
    var descriptors: [[UInt8]: [UInt8]] = [:]

    init(input: String, root: CimTreeNode, writer: CimTreeWriter, isBase: Bool) {
        self.input = input
        self.root = root
        self.writer = writer
        self.isBase = isBase
    }

    func fail(_ entry: TarEntry, _ problem: String) -> ImportError {
        .badEntry(input: input, entry: entry.path, problem: problem)
    }

    /// The path's components: `/` and `\` separate, `.` and empty ones drop out.
    func components(_ path: String, of entry: TarEntry, what: String = "path") throws -> [String] {
        if path.hasPrefix("/") || path.hasPrefix("\\") {
            throw fail(entry, "\(what) \"\(path)\" is absolute; layer paths are relative to the layer root")
        }
        let parts = path.split(whereSeparator: { $0 == "/" || $0 == "\\" }).map(String.init).filter { $0 != "." }
        if parts.contains("..") { throw fail(entry, "\(what) \"\(path)\" contains \"..\"") }
        if let first = parts.first, first.count == 2, first.hasSuffix(":"), first.first?.isLetter == true {
            throw fail(entry, "\(what) \"\(path)\" is absolute (a drive letter)")
        }
        for part in parts where part.utf16.contains(0) { throw fail(entry, "\(what) contains a NUL character") }
        return parts
    }

    /// The directory holding the last component, created (with the null
    /// descriptor) where the archive skipped it.
    func directory(for parts: ArraySlice<String>, entry: TarEntry, create: Bool) throws -> CimTreeNode? {
        var node = root
        for part in parts {
            let units = Array(part.utf16)
            if let existing = node.child(named: units) {
                guard existing.name == units else {
                    throw fail(entry, "\"\(part)\" differs only in case from the existing \"\(String(decoding: existing.name, as: UTF16.self))\"; CIM names are case-insensitive")
                }
                guard existing.node.kind == .directory else { throw fail(entry, "\"\(part)\" is a file, not a directory") }
                node = existing.node
            } else {
                guard create else { return nil }
                let made = CimTreeNode(kind: .directory)
                made.securityDescriptor = LayerMetadata.nullSecurityDescriptor
                made.attributes = CimFormat.Attribute.directory
                node.setChild(made, named: units)
                node = made
            }
        }
        return node
    }

    func lookup(_ parts: [String]) -> CimTreeNode? {
        var node = root
        for part in parts {
            guard node.kind == .directory, let next = node.child(named: Array(part.utf16)) else { return nil }
            node = next.node
        }
        return node
    }

    mutating func interned(_ descriptor: [UInt8]) -> [UInt8] {
        if let known = descriptors[descriptor] { return known }
        descriptors[descriptor] = descriptor
        return descriptor
    }

    mutating func apply(_ entry: TarEntry, tar: TarReader, buffer: UnsafeMutableRawBufferPointer) throws {
        entries += 1
        let parts = try components(entry.path, of: entry)
        guard let leaf = parts.last else { return }  // the layer root itself ("./") carries nothing to store
        let parentParts = parts.dropLast()
        for part in parentParts where part.contains(":") { throw fail(entry, "directory name \"\(part)\" contains ':'") }

        if leaf.hasPrefix(".wh.") {
            let target = String(leaf.dropFirst(4))
            if target == ".wh..opq" || target.hasPrefix(".wh.") {
                throw fail(entry, "opaque-directory whiteouts (.wh..wh..opq) are not part of Windows layers; hcsshim has none, so this layer cannot be imported faithfully")
            }
            guard !target.isEmpty else { throw fail(entry, "whiteout names no file") }
            whiteouts += 1
            if let directory = try self.directory(for: parentParts, entry: entry, create: false) {
                directory.removeChild(named: Array(target.utf16))
            }
            return
        }
        var metadata = try LayerMetadata(entry: entry, input: input)
        metadata.securityDescriptor = interned(metadata.securityDescriptor)
        newestTime = max(newestTime, metadata.lastWriteTime)

        if let colon = leaf.firstIndex(of: ":") {
            try applyStream(entry, parentParts: parentParts, fileName: String(leaf[..<colon]),
                            streamPart: String(leaf[leaf.index(after: colon)...]), tar: tar, buffer: buffer)
            return
        }
        guard let directory = try directory(for: parentParts, entry: entry, create: true) else { return }
        let units = Array(leaf.utf16)
        let existing = directory.child(named: units)
        if let existing, existing.name != units {
            throw fail(entry, "\"\(leaf)\" differs only in case from the existing \"\(String(decoding: existing.name, as: UTF16.self))\"; CIM names are case-insensitive")
        }
        if !isBase && isDeltaHive(parts) { deltaHives.append(leaf) }

        switch entry.kind {
        case .directory:
            let node: CimTreeNode
            if let existing, existing.node.kind == .directory, existing.node.reparseData == nil {
                node = existing.node  // keeps its entries: a child layer restates its parents' directories
            } else {
                node = CimTreeNode(kind: .directory)
                directory.setChild(node, named: units)
            }
            set(metadata, on: node, reparse: nil)
        case .regular:
            let node = CimTreeNode(kind: .file)
            set(metadata, on: node, reparse: nil)
            node.data = try copyData(entry, tar: tar, buffer: buffer, what: entry.path)
            directory.setChild(node, named: units)
        case .symbolicLink:
            guard !entry.linkName.isEmpty else { throw fail(entry, "symlink has no target") }
            let isDirectory = metadata.isMountPoint || metadata.attributes & CimFormat.Attribute.directory != 0
            let node = CimTreeNode(kind: isDirectory ? .directory : .file)
            set(metadata, on: node, reparse: WindowsReparse.buffer(target: entry.linkName, mountPoint: metadata.isMountPoint))
            directory.setChild(node, named: units)
        case .hardLink:
            let targetParts = try components(entry.linkName, of: entry, what: "hard link target")
            guard let target = lookup(targetParts) else {
                throw fail(entry, "hard link target \"\(entry.linkName)\" does not exist in this layer or its parents")
            }
            guard target.kind == .file else { throw fail(entry, "hard link target \"\(entry.linkName)\" is a directory") }
            guard target !== existing?.node else { return }
            directory.setChild(target, named: units)
        case .other(let type):
            let what: String
            switch type {
            case UInt8(ascii: "3"): what = "a character device"
            case UInt8(ascii: "4"): what = "a block device"
            case UInt8(ascii: "6"): what = "a FIFO"
            case UInt8(ascii: "S"): what = "a GNU sparse file"
            default: what = "of tar type '\(Unicode.Scalar(type).escaped(asASCII: true))'"
            }
            throw fail(entry, "is \(what); Windows layers hold only files, directories and links")
        }
    }

    mutating func applyStream(_ entry: TarEntry, parentParts: ArraySlice<String>, fileName: String, streamPart: String,
                              tar: TarReader, buffer: UnsafeMutableRawBufferPointer) throws {
        var streamName = streamPart
        if streamName.hasSuffix(":$DATA") { streamName.removeLast(6) }
        guard !streamName.isEmpty else { throw fail(entry, "names the default stream (::$DATA); store it as the file itself") }
        guard !streamName.contains(":") else { throw fail(entry, "stream \"\(streamPart)\" has a type other than $DATA") }
        guard entry.kind == .regular else { throw fail(entry, "an alternate data stream must be a regular tar member") }
        guard let directory = try directory(for: parentParts, entry: entry, create: false),
              let file = directory.child(named: Array(fileName.utf16)) else {
            throw fail(entry, "alternate data stream of \"\(fileName)\", which does not exist (the file must come first)")
        }
        let stream = try copyData(entry, tar: tar, buffer: buffer, what: entry.path)
        file.node.setAlternateStream(stream, named: Array(streamName.utf16))
    }

    func set(_ metadata: LayerMetadata, on node: CimTreeNode, reparse: [UInt8]?) {
        // Only reparse points keep the attribute; directory-ness follows from the node.
        node.attributes = metadata.attributes & ~(CimFormat.Attribute.reparsePoint | CimFormat.Attribute.directory)
        node.creationTime = metadata.creationTime
        node.lastWriteTime = metadata.lastWriteTime
        node.changeTime = metadata.changeTime
        node.lastAccessTime = metadata.lastAccessTime
        node.securityDescriptor = metadata.securityDescriptor
        node.extendedAttributes = metadata.extendedAttributes
        node.reparseData = reparse
    }

    func copyData(_ entry: TarEntry, tar: TarReader, buffer: UnsafeMutableRawBufferPointer, what: String) throws -> CimStream {
        try writer.storeData(length: entry.size, what: "\(input): \(what)") { sink in
            while true {
                let n = try tar.readData(into: buffer)
                if n == 0 { break }
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                // Sparse files arrive as data: their zero runs become holes in the region file.
                if chunk.allSatisfy({ $0 == 0 }) { sink.writeZeros(UInt64(n)) } else { try sink.write(chunk) }
            }
        }
    }

    func isDeltaHive(_ parts: [String]) -> Bool {
        guard parts.count == 2, parts[0].uppercased() == "HIVES" else { return false }
        return LayerImporter.hives.contains { $0.delta == parts[1].uppercased() }
    }

    /// Base-layer extras: the `layout` file and the hive links.
    mutating func finishTree() throws {
        guard isBase else { return }
        let layoutName = Array("layout".utf16)
        if root.child(named: layoutName) == nil {
            let layout = CimTreeNode(kind: .file)
            layout.securityDescriptor = LayerMetadata.nullSecurityDescriptor
            layout.attributes = CimFormat.Attribute.archive
            layout.creationTime = newestTime
            layout.lastWriteTime = newestTime
            layout.changeTime = newestTime
            layout.lastAccessTime = newestTime
            layout.data = try writer.storeData(LayerImporter.layoutContent, what: "\(input): layout")
            root.setChild(layout, named: layoutName)
        }
        guard let config = lookup(["Files", "Windows", "System32", "config"]), config.kind == .directory else { return }
        for hive in LayerImporter.hives {
            guard let registry = config.child(named: Array(hive.name.utf16)), registry.node.kind == .file else { continue }
            let hivesName = Array("Hives".utf16)
            var hivesDirectory = root.child(named: hivesName)?.node
            if hivesDirectory == nil {
                let made = CimTreeNode(kind: .directory)
                made.securityDescriptor = LayerMetadata.nullSecurityDescriptor
                made.creationTime = newestTime
                made.lastWriteTime = newestTime
                made.changeTime = newestTime
                made.lastAccessTime = newestTime
                root.setChild(made, named: hivesName)
                hivesDirectory = made
            }
            guard let hivesDirectory, hivesDirectory.kind == .directory else { continue }
            let baseName = Array(hive.base.utf16)
            if hivesDirectory.child(named: baseName) == nil { hivesDirectory.setChild(registry.node, named: baseName) }
        }
    }

    func warnings() -> [String] {
        var lines: [String] = []
        if !deltaHives.isEmpty {
            lines.append(LayerImporter.deltaHiveWarning(input: input, hives: deltaHives))
        }
        return lines
    }
}
