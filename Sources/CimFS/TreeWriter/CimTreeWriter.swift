#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Writes a CIM image from an in-memory tree of ``CimTreeNode``s whose file
/// data is streamed into the image while the tree is being built.
///
/// Use: create the writer (its region files open under temporary names),
/// store every file's data with ``storeData(length:what:_:)`` as it arrives
/// and put the returned ``CimStream`` into the node, then call
/// ``finish(root:)`` once. Memory holds the tree's metadata only.
///
/// With a parent (``CimWriterOptions/parentImagePath``) the image is a fork:
/// its header lists the parent's region sets first, in the parent's order, so
/// streams read from the parent (``CimTreeLoader``) stay valid unchanged and
/// their data stays in the parent's regions. New data identical to a parent
/// object listed in its object-id files is referenced, not stored again.
///
/// Nothing appears under the final names until ``finish(root:)`` renames
/// the files (region files, object-id files, the `.cim` last); after a
/// failure, ``abandon()`` (or dropping the writer) removes every file written.
public final class CimTreeWriter {
    public let imagePath: String
    let directory: String
    let options: CimWriterOptions
    let parent: WriterParentImage?
    let guid: CimGUID
    private let regions: [WriterRegionFile]
    private let store: WriterObjectStore
    private var created: Set<String> = []
    private var finished = false
    private var dataBytes: UInt64 = 0

    /// Opens the image's region files under temporary names.
    ///
    /// - Throws: ``CimError``: `.invalidInput` for a path that does not name a
    ///   `NAME.cim` file, an existing image, bad options or a parent in another
    ///   directory; `.missingDirectory`, `.accessDenied`, `.io` as the system says.
    public init(imagePath: String, options: CimWriterOptions = CimWriterOptions()) throws {
        try options.validate()
        let imageName = WriterPaths.fileName(of: imagePath)
        guard imageName.hasSuffix(".cim"), imageName.count > 4 else {
            throw CimError.invalidInput("\(imagePath): the image path must name a NAME.cim file")
        }
        let directory = WriterPaths.directory(of: imagePath)
        let directoryStat: WriterStat
        do { directoryStat = try WriterLinux.stat(directory) } catch CimError.missingFile { throw CimError.missingDirectory(path: directory) }
        guard directoryStat.isDirectory else { throw CimError.notADirectory(path: directory) }
        if access(imagePath, F_OK) == 0 {
            throw CimError.invalidInput("\(imagePath): already exists; remove it first or choose another name")
        }
        var parent: WriterParentImage?
        if let parentPath = options.parentImagePath {
            let loaded = try WriterParentImage(cimPath: parentPath)
            guard let parentDirectory = WriterPaths.resolved(loaded.directory), let ownDirectory = WriterPaths.resolved(directory),
                  parentDirectory == ownDirectory else {
                throw CimError.invalidInput("\(parentPath): a parent image must be in the same directory as the new image (\(directory)), because the child reads the parent's region files from there")
            }
            parent = loaded
        }
        let parentRegions = parent?.totalRegions ?? 0
        let ownRegionCount = 1 + options.dataRegions + (options.smallDataThreshold > 0 ? 1 : 0)
        guard parentRegions + ownRegionCount <= 65536 else {
            throw CimError.invalidInput("\(imagePath): \(parentRegions) parent regions plus \(ownRegionCount) own regions exceed the limit of 65536")
        }
        self.imagePath = imagePath
        self.directory = directory
        self.options = options
        self.parent = parent
        let guid = CimGUID.random()
        self.guid = guid
        var opened: [WriterRegionFile] = []
        var created: Set<String> = []
        func open(_ index: Int, _ type: CimFormat.RegionType) throws {
            let finalName = CimFormat.regionFileName(set: guid, index: index)
            let temporary = WriterImageFiles.temporaryPath(directory: directory, finalName: finalName)
            opened.append(try WriterRegionFile(indexInSet: UInt16(index), type: type, finalPath: WriterPaths.join(directory, finalName),
                                               temporaryPath: temporary, formatVersion: options.formatVersion))
            created.insert(temporary)
        }
        do {
            try open(0, .metadata)
            for index in 1...options.dataRegions { try open(index, .pageAlignedData) }
            if options.smallDataThreshold > 0 { try open(options.dataRegions + 1, .smallData) }
        } catch {
            for path in created { unlink(path) }
            throw error
        }
        regions = opened
        self.created = created
        store = WriterObjectStore(metadata: opened[0], dataRegions: Array(opened[1...options.dataRegions]),
                                  smallRegion: options.smallDataThreshold > 0 ? opened.last : nil,
                                  baseIndex: UInt16(parentRegions), deduplicate: options.deduplicate,
                                  smallDataThreshold: options.smallDataThreshold, parent: parent)
    }

    deinit { if !finished { abandon() } }

    /// Removes every file written so far (temporary or renamed).
    public func abandon() {
        for region in regions { region.closeFile() }
        for path in created { unlink(path) }
        created.removeAll()
        finished = true
    }

    /// Regions of all parents: streams of the parent tree use indices below this.
    public var parentRegionCount: Int { Int(store.baseIndex) }

    /// Stores a data object of exactly `length` bytes produced by `fill`
    /// (it must write exactly that many) and returns its stream. Identical
    /// content already stored here or in a parent is referenced instead.
    ///
    /// - Parameter what: names the object in errors (e.g. the tar entry).
    public func storeData(length: UInt64, what: String, _ fill: (inout CimDataSink) throws -> Void) throws -> CimStream {
        guard length <= CimFormat.lengthMask else {
            throw CimError.invalidInput("\(what): \(length) bytes exceed the 48-bit stream length")
        }
        guard length > 0 else { return CimTreeWriter.emptyStream }
        dataBytes += length
        if store.isSmall(length) {
            var sink = CimDataSink(target: .memory([]))
            try fill(&sink)
            guard case .memory(let bytes) = sink.target, UInt64(bytes.count) == length else {
                throw CimError.fileChanged(path: what, detail: "expected \(length) bytes, got \(sink.count)")
            }
            let offset = try store.storeData(bytes)
            return CimStream(dataOffset: offset, length: length, rawType: CimFormat.StreamType.data.rawValue, isSparse: false)
        }
        let offset = try store.storeStreamed(length: length, what: what) { regionSink in
            var sink = CimDataSink(target: .region(regionSink))
            try fill(&sink)
            if case .region(let inner) = sink.target { regionSink = inner }
        }
        return CimStream(dataOffset: offset, length: length, rawType: CimFormat.StreamType.data.rawValue, isSparse: false)
    }

    /// Stores bytes held in memory as a data object.
    public func storeData(_ bytes: [UInt8], what: String) throws -> CimStream {
        try storeData(length: UInt64(bytes.count), what: what) { sink in
            try bytes.withUnsafeBytes { try sink.write($0) }
        }
    }

    static let emptyStream = CimStream(dataOffset: 0, length: 0, rawType: CimFormat.StreamType.data.rawValue, isSparse: false)

    /// Writes the file tables for the tree below `root`, then renames every
    /// file into place. The writer cannot be used afterwards.
    ///
    /// - Throws: ``CimError/invalidInput(_:)`` for a tree the format cannot
    ///   hold (a hard-linked directory, a name over 255 or a path over 32767
    ///   UTF-16 units, a stream outside the image's regions, a reparse buffer
    ///   shorter than its tag); the image's files are removed then.
    @discardableResult
    public func finish(root: CimTreeNode) throws -> CimWriteSummary {
        guard !finished else { throw CimError.invalidInput("\(imagePath): the writer has already finished") }
        do {
            let summary = try writeTablesAndRename(root: root)
            finished = true
            return summary
        } catch {
            abandon()
            throw error
        }
    }

    private func writeTablesAndRename(root: CimTreeNode) throws -> CimWriteSummary {
        guard root.kind == .directory else { throw CimError.invalidInput("\(imagePath): the root must be a directory") }
        let layout = try CimTreeLayout(root: root, imagePath: imagePath)
        let totalRegions = UInt64(store.baseIndex) + UInt64(regions.count)
        let upcase = try store.storeMetadata(WriterUpcaseTable.bytes)
        let total = layout.nodes.count
        let filesystemOffset = try WriterImageFiles.storeFileTables(count: total, entrySize: options.effectiveEntrySize, upcase: upcase, store: store) { index in
            if index % 1024 == 1023 {
                options.progress?(CimWriteProgress(phase: "write", filesDone: index, filesTotal: total, bytesDone: dataBytes))
            }
            return try entry(index: index, layout: layout, totalRegions: totalRegions)
        }
        let objectIDFiles = try WriterImageFiles.publish(regions: regions, guid: guid, parentSets: parent?.regionSets ?? [],
                                                         filesystemOffset: filesystemOffset, formatVersion: options.formatVersion,
                                                         directory: directory, imagePath: imagePath, created: &created)
        return CimWriteSummary(
            imagePath: imagePath, regionSet: guid, regionFiles: regions.map(\.finalPath), objectIDFiles: objectIDFiles,
            parentRegionCount: Int(store.baseIndex), fileCount: total,
            directoryCount: layout.nodes.filter { $0.kind == .directory }.count, linkCount: layout.linkCount,
            dataBytes: dataBytes, storedDataBytes: store.storedDataBytes, deduplicatedBytes: store.deduplicatedBytes,
            sparseFiles: 0, peImageFiles: 0, skipped: [])
    }

    private func checkStream(_ stream: CimStream, totalRegions: UInt64, path: String) throws {
        guard stream.dataOffset != 0 else { return }
        let region = stream.dataOffset >> 48
        guard region < totalRegions else {
            throw CimError.invalidInput("\(path): stream refers to region \(region), the image has \(totalRegions)")
        }
    }

    private func entry(index: Int, layout: CimTreeLayout, totalRegions: UInt64) throws -> [UInt8] {
        let node = layout.nodes[index]
        let path = layout.paths[index]
        var defaultStream: [UInt8]
        switch node.kind {
        case .directory:
            let links = layout.children[index].map { child -> WriterLinkTable.Link in
                var id = WriterByteBuffer(capacity: 4)
                id.u32(child.id)
                return WriterLinkTable.Link(name: child.name, entry: id.bytes)
            }
            let linkTable = WriterLinkTable.build(links)
            defaultStream = WriterLinkTable.stream(offset: try store.storeMetadata(linkTable), length: UInt64(linkTable.count), type: .linkTable)
        case .file:
            try checkStream(node.data, totalRegions: totalRegions, path: path)
            defaultStream = CimTreeWriter.encode(node.data)
        }
        var securityDescriptor: UInt64 = 0
        if let descriptor = node.securityDescriptor {
            guard descriptor.count <= Int(UInt16.max) else {
                throw CimError.invalidInput("\(path): security descriptor is \(descriptor.count) bytes, at most 65535 fit")
            }
            var object = WriterByteBuffer(capacity: descriptor.count + 2)
            object.u16(UInt16(descriptor.count))
            object.append(descriptor)
            securityDescriptor = try store.storeMetadata(object.bytes)
        }
        var extendedAttributes: UInt64 = 0
        var eaLength: UInt16 = 0
        if let ea = node.extendedAttributes, !ea.isEmpty {
            guard ea.count <= Int(UInt16.max) else {
                throw CimError.invalidInput("\(path): extended attributes are \(ea.count) bytes, at most 65535 fit")
            }
            eaLength = UInt16(ea.count)
            extendedAttributes = try store.storeMetadata(ea)
        }
        var reparse: UInt64 = 0
        var reparseTag: UInt32 = 0
        if let buffer = node.reparseData {
            guard buffer.count >= 8, buffer.count <= Int(UInt16.max) else {
                throw CimError.invalidInput("\(path): reparse buffer is \(buffer.count) bytes, 8 to 65535 are allowed")
            }
            reparseTag = try WriterByteReader(bytes: buffer, path: path).u32(0)
            var object = WriterByteBuffer(capacity: buffer.count + 2)
            object.u16(UInt16(buffer.count))
            object.append(buffer)
            reparse = try store.storeMetadata(object.bytes)
        }
        var streamTable: UInt64 = 0
        if !node.alternateStreams.isEmpty {
            var links: [WriterLinkTable.Link] = []
            for stream in node.alternateStreams {
                try WriterSourceTree.checkName(stream.name, path: path + ":" + String(decoding: stream.name, as: UTF16.self))
                try checkStream(stream.stream, totalRegions: totalRegions, path: path)
                links.append(WriterLinkTable.Link(name: stream.name, entry: CimTreeWriter.encode(stream.stream)))
            }
            let linkTable = WriterLinkTable.build(links)
            var object = WriterByteBuffer(capacity: linkTable.count + 4)
            object.u32(UInt32(linkTable.count))
            object.append(linkTable)
            streamTable = try store.storeMetadata(object.bytes)
        }
        var entry = WriterByteBuffer(capacity: options.effectiveEntrySize)
        entry.u16(WriterXattrMapping.entryFlags(fromAttributes: node.attributes))
        entry.u16(eaLength)
        entry.u32(reparseTag)
        entry.u64(node.creationTime)
        entry.u64(node.lastWriteTime)
        entry.u64(node.changeTime)
        entry.u64(node.lastAccessTime)
        entry.append(defaultStream)
        entry.u64(securityDescriptor)
        entry.u64(extendedAttributes)
        entry.u64(reparse)
        entry.u64(streamTable)
        if options.formatVersion >= 2 {
            // Format 1.0 entries end before parent FileID and base region index.
            entry.u32(layout.parentIDs[index])
            entry.u16(store.baseIndex)
            entry.u16(0)
        }
        entry.zeros(max(0, options.effectiveEntrySize - entry.count))
        return entry.bytes
    }

    static func encode(_ stream: CimStream) -> [UInt8] {
        var buffer = WriterByteBuffer(capacity: CimFormat.streamSize)
        buffer.u64(stream.dataOffset)
        var word = (stream.length & CimFormat.lengthMask) | (UInt64(stream.rawType) << 48)
        if stream.isSparse { word |= CimFormat.sparseStreamBit }
        buffer.u64(word)
        return buffer.bytes
    }
}
