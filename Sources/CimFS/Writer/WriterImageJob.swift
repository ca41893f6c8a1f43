#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One run of the writer: owns the temporary files until they are renamed.
struct WriterImageJob {
    let directory: String
    let imagePath: String
    let options: CimWriterOptions
    let parent: WriterParentImage?
    let tree: WriterSourceTree
    let copyBufferSize: Int
    let guid = CimGUID.random()
    /// Every path created so far (temporary or already renamed), for cleanup.
    private var created: Set<String> = []
    private var dataBytes: UInt64 = 0
    private var sparseFiles = 0
    private var peImageFiles = 0
    private var bytesRead: UInt64 = 0

    init(directory: String, imagePath: String, options: CimWriterOptions, parent: WriterParentImage?,
         tree: WriterSourceTree, copyBufferSize: Int) {
        self.directory = directory
        self.imagePath = imagePath
        self.options = options
        self.parent = parent
        self.tree = tree
        self.copyBufferSize = copyBufferSize
    }

    /// Removes every file this job created (after a failure).
    func removeEverything() {
        for path in created { unlink(path) }
    }


    private mutating func openRegion(index: Int, type: CimFormat.RegionType) throws -> WriterRegionFile {
        let finalName = CimFormat.regionFileName(set: guid, index: index)
        let temporary = WriterImageFiles.temporaryPath(directory: directory, finalName: finalName)
        let region = try WriterRegionFile(indexInSet: UInt16(index), type: type, finalPath: WriterPaths.join(directory, finalName),
                                          temporaryPath: temporary, formatVersion: options.formatVersion)
        created.insert(temporary)
        return region
    }

    mutating func run() throws -> CimWriteSummary {
        let parentRegions = parent?.totalRegions ?? 0
        let ownRegionCount = 1 + options.dataRegions + (options.smallDataThreshold > 0 ? 1 : 0)
        guard parentRegions + ownRegionCount <= 65536 else {
            throw CimError.invalidInput("\(imagePath): \(parentRegions) parent regions plus \(ownRegionCount) own regions exceed the limit of 65536")
        }
        let metadata = try openRegion(index: 0, type: .metadata)
        var dataRegions: [WriterRegionFile] = []
        for index in 1...options.dataRegions { dataRegions.append(try openRegion(index: index, type: .pageAlignedData)) }
        let small = options.smallDataThreshold > 0 ? try openRegion(index: options.dataRegions + 1, type: .smallData) : nil
        let regions = [metadata] + dataRegions + (small.map { [$0] } ?? [])
        if options.failAfterCreatingTemporaries {
            throw CimError.io(path: metadata.temporaryPath, offset: 0, errno: EIO, what: "injected failure")
        }
        let store = WriterObjectStore(metadata: metadata, dataRegions: dataRegions, smallRegion: small,
                                      baseIndex: UInt16(parentRegions), deduplicate: options.deduplicate,
                                      smallDataThreshold: options.smallDataThreshold, parent: parent)

        let upcase = try store.storeMetadata(WriterUpcaseTable.bytes)
        let copyBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: copyBufferSize, alignment: 4096)
        defer { copyBuffer.deallocate() }

        let total = tree.records.count
        let filesystemOffset = try WriterImageFiles.storeFileTables(count: total, entrySize: options.effectiveEntrySize, upcase: upcase, store: store) { index in
            if index % 1024 == 1023 {
                options.progress?(CimWriteProgress(phase: "write", filesDone: index, filesTotal: total, bytesDone: bytesRead))
            }
            return try entry(for: tree.records[index], store: store, buffer: copyBuffer)
        }
        options.progress?(CimWriteProgress(phase: "finish", filesDone: total, filesTotal: total, bytesDone: bytesRead))
        let objectIDFiles = try WriterImageFiles.publish(regions: regions, guid: guid, parentSets: parent?.regionSets ?? [],
                                                         filesystemOffset: filesystemOffset, formatVersion: options.formatVersion,
                                                         directory: directory, imagePath: imagePath, created: &created)

        return CimWriteSummary(
            imagePath: imagePath, regionSet: guid, regionFiles: regions.map(\.finalPath), objectIDFiles: objectIDFiles,
            parentRegionCount: parentRegions, fileCount: total,
            directoryCount: tree.records.filter { $0.kind == .directory }.count, linkCount: tree.linkCount,
            dataBytes: dataBytes, storedDataBytes: store.storedDataBytes, deduplicatedBytes: store.deduplicatedBytes,
            sparseFiles: sparseFiles, peImageFiles: peImageFiles, skipped: tree.skipped, renamed: tree.renamed)
    }

    // MARK: - File entries

    private mutating func entry(for record: WriterFileRecord, store: WriterObjectStore, buffer: UnsafeMutableRawBufferPointer) throws -> [UInt8] {
        let xattrs = record.xattrs
        var defaultStream: [UInt8]
        switch record.kind {
        case .symlink where xattrs.isDirectory:
            // A directory link (`mklink /D`, a junction): a directory without entries.
            let linkTable = WriterLinkTable.build([])
            defaultStream = WriterLinkTable.stream(offset: try store.storeMetadata(linkTable), length: UInt64(linkTable.count), type: .linkTable)
        case .directory:
            let links = record.children.map { child -> WriterLinkTable.Link in
                var id = WriterByteBuffer(capacity: 4)
                id.u32(child.id)
                return WriterLinkTable.Link(name: child.name, entry: id.bytes)
            }
            let linkTable = WriterLinkTable.build(links)
            defaultStream = WriterLinkTable.stream(offset: try store.storeMetadata(linkTable), length: UInt64(linkTable.count), type: .linkTable)
        case .regular:
            defaultStream = try fileData(record, store: store, buffer: buffer)
        case .symlink:
            defaultStream = WriterLinkTable.stream(offset: 0, length: 0, type: .data)
        }
        var securityDescriptor: UInt64 = 0
        if let descriptor = xattrs.securityDescriptor {
            var object = WriterByteBuffer(capacity: descriptor.count + 2)
            object.u16(UInt16(descriptor.count))
            object.append(descriptor)
            securityDescriptor = try store.storeMetadata(object.bytes)
        }
        var extendedAttributes: UInt64 = 0
        let eaLength = UInt16(xattrs.extendedAttributes?.count ?? 0)
        if let ea = xattrs.extendedAttributes, !ea.isEmpty {
            extendedAttributes = try store.storeMetadata(ea)
        }
        var reparseBuffer = xattrs.reparse
        if reparseBuffer == nil, let target = record.symlinkTarget {
            reparseBuffer = WriterSymlinkReparse.buffer(target: target)
        }
        var reparse: UInt64 = 0
        var reparseTag: UInt32 = xattrs.reparseTag ?? 0
        if let buffer = reparseBuffer {
            if xattrs.reparseTag == nil {
                reparseTag = try WriterByteReader(bytes: buffer, path: record.sourcePath).u32(0)
            }
            guard buffer.count <= Int(UInt16.max) else {
                throw CimError.invalidInput("\(record.sourcePath): reparse buffer is \(buffer.count) bytes, at most 65535 fit")
            }
            var object = WriterByteBuffer(capacity: buffer.count + 2)
            object.u16(UInt16(buffer.count))
            object.append(buffer)
            reparse = try store.storeMetadata(object.bytes)
        }
        var streamTable: UInt64 = 0
        if !xattrs.streams.isEmpty {
            var links: [WriterLinkTable.Link] = []
            for stream in xattrs.streams {
                dataBytes += UInt64(stream.value.count)
                let offset = try store.storeData(stream.value)
                links.append(WriterLinkTable.Link(name: stream.name,
                                                  entry: WriterLinkTable.stream(offset: offset, length: UInt64(stream.value.count), type: .data)))
            }
            let linkTable = WriterLinkTable.build(links)
            var object = WriterByteBuffer(capacity: linkTable.count + 4)
            object.u32(UInt32(linkTable.count))
            object.append(linkTable)
            streamTable = try store.storeMetadata(object.bytes)
        }
        let stat = record.stat
        let entrySize = options.effectiveEntrySize
        var entry = WriterByteBuffer(capacity: entrySize)
        entry.u16(xattrs.entryFlags)
        entry.u16(eaLength)
        entry.u32(reparseTag)
        entry.u64(WriterFileTime.ticks(stat.birthTime ?? stat.modificationTime))
        entry.u64(WriterFileTime.ticks(stat.modificationTime))
        entry.u64(WriterFileTime.ticks(stat.changeTime))
        entry.u64(WriterFileTime.ticks(stat.accessTime))
        entry.append(defaultStream)
        entry.u64(securityDescriptor)
        entry.u64(extendedAttributes)
        entry.u64(reparse)
        entry.u64(streamTable)
        // Format 1.x entries end here; 2.x and 3.x add parent FileID and base region index.
        if options.formatVersion >= 2 {
            entry.u32(record.parentID)
            entry.u16(store.baseIndex)
            entry.u16(0)
        }
        entry.zeros(entrySize - entry.count)
        return entry.bytes
    }

    /// The default stream of a regular file, its data stored.
    private mutating func fileData(_ record: WriterFileRecord, store: WriterObjectStore, buffer: UnsafeMutableRawBufferPointer) throws -> [UInt8] {
        let size = record.stat.size
        guard size > 0 else { return WriterLinkTable.stream(offset: 0, length: 0, type: .data) }
        guard size <= CimFormat.lengthMask else {
            throw CimError.invalidInput("\(record.sourcePath): \(size) bytes exceed the 48-bit stream length")
        }
        dataBytes += size
        let path = record.sourcePath
        // O_NOATIME keeps the copy from moving the source's access times; it
        // needs ownership or CAP_FOWNER, so fall back without it.
        var fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | WriterLinux.noAccessTime)
        if fd < 0 && errno == EPERM { fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
        guard fd >= 0 else {
            let code = errno
            if code == EACCES || code == EPERM { throw CimError.accessDenied(path: path) }
            if code == ENOENT { throw CimError.missingFile(path: path) }
            throw CimError.io(path: path, offset: 0, errno: code, what: "open")
        }
        defer { close(fd) }

        if options.isPEImage(record.relativePath) {
            let layout = try WriterPELayout(fileLength: size, path: path)
            var reader = WriterSourceReader(fd: fd, path: path, buffer: buffer)
            let imageData = try store.storeStreamed(length: layout.imageLength, what: path) { sink in
                for index in layout.mappings.indices {
                    if index > 0 { sink.skip(WriterPELayout.gap) }
                    let segment = layout.segment(index)
                    try reader.copy(from: segment.start, to: segment.end, into: &sink)
                }
            }
            bytesRead += reader.bytesRead
            peImageFiles += 1
            let object = try store.storeMetadata(layout.object(imageDataOffset: imageData))
            return WriterLinkTable.stream(offset: object, length: size, type: .peImage)
        }
        if try WriterSourceReader.isAllHoles(fd: fd, size: size, blocks: record.stat.blocks, path: path) {
            sparseFiles += 1
            return WriterLinkTable.stream(offset: 0, length: size, type: .data, sparse: true)
        }
        var reader = WriterSourceReader(fd: fd, path: path, buffer: buffer)
        let offset: UInt64
        if store.isSmall(size) {
            offset = try store.storeData(try reader.readAll(size))
        } else {
            offset = try store.storeStreamed(length: size, what: path) { sink in
                try reader.copy(from: 0, to: size, into: &sink)
            }
        }
        bytesRead += reader.bytesRead
        return WriterLinkTable.stream(offset: offset, length: size, type: .data)
    }

    // MARK: - Files

    static func writeFile(_ path: String, bytes: [UInt8]) throws {
        let fd = try WriterRegionFile.create(path)
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return pwrite(fd, base + done, raw.count - done, off_t(done))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw CimError.io(path: path, offset: UInt64(done), errno: errno, what: "write")
            }
            done += n
        }
        if fsync(fd) != 0 { throw CimError.io(path: path, offset: 0, errno: errno, what: "fsync") }
    }

    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }
}
