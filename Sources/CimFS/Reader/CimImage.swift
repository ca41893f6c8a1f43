#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A CIM image opened for reading.
///
/// Opening reads and validates the `.cim` header, every region file's header,
/// the filesystem object, the upcase table and the file table directory.
/// Everything else is read on demand with `pread` and checked before use;
/// file tables and directory link tables are cached. All methods are safe to
/// call from several threads at once.
public final class CimImage: Sendable {
    /// Path of the `.cim` file.
    public let path: String
    /// Directory that holds the image's files.
    public let directory: String
    /// Image name (file name of the `.cim`).
    public let name: String
    /// Format version of the `.cim` header (1, 2 or 3; the regions' headers may differ).
    public let versionMajor: UInt32
    public let versionMinor: UInt32
    /// Bytes of each file entry this reader decodes (the entry of ``versionMajor``).
    let minimumEntrySize: Int
    /// The image's own region set.
    public let regionSet: CimGUID
    /// Parent region sets, in header order (forked images).
    public let parentRegionSets: [CimGUID]
    /// Region files in RegionOffset index order: parents' first, then the image's own.
    public let regions: [RegionFile]
    /// The root directory's FileID.
    public let rootID: CimFileID
    /// The upcase table names are compared through.
    public let upcase: UpcaseTable

    let tables: [FileTableInfo]
    private let tableCache: Mutex<[[UInt8]?]>
    private let linkCounts: Mutex<[UInt32]?>
    private let directoryCache: Mutex<DirectoryCache>

    struct FileTableInfo: Sendable {
        var offset: UInt64
        var validCount: Int
        var entrySize: Int
    }

    struct DirectoryCache: Sendable {
        var tables: [UInt64: LinkTable] = [:]
        var bytes = 0
        static let limit = 64 << 20
    }

    /// Opens the image `name` in `directory`, as `CimMountImage` addresses it.
    /// `name` may be given with or without the `.cim` extension.
    public convenience init(directory: String, name: String) throws {
        try requireDirectory(directory)
        guard !name.isEmpty, !name.contains("/") else { throw CimError.invalidInput("invalid image name \"\(name)\"") }
        try self.init(path: CimImage.imagePath(directory: directory, name: name))
    }

    /// The `.cim` path `CimMountImage` addresses with `directory` and `name`:
    /// `name` as given when that file exists, else `name` + `.cim`.
    public static func imagePath(directory: String, name: String) -> String {
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        if name.hasSuffix(".cim") || access(base + name, F_OK) == 0 { return base + name }
        return base + name + ".cim"
    }

    /// Opens the image whose `.cim` file is at `path`.
    public convenience init(path: String) throws {
        try self.init(path: path, opening: { try RegionFile(path: $0) })
    }

    /// Opens the image whose `.cim` file is at `path`, getting it and its
    /// region files from `open` (given each file's path) instead of the file
    /// system: for harnesses that hold an image in memory
    /// (``RegionFile/init(path:unownedContents:size:)``).
    @_spi(Harness)
    public init(path: String, opening open: (String) throws -> RegionFile) throws {
        let cimFile = try open(path)
        let slash = path.lastIndex(of: "/")
        self.path = path
        self.directory = slash.map { String(path[..<$0]) }.flatMap { $0.isEmpty ? "/" : $0 } ?? "."
        self.name = slash.map { String(path[path.index(after: $0)...]) } ?? path

        // Common header + filesystem header.
        guard cimFile.size >= UInt64(CimFormat.filesystemHeaderSize) else {
            if cimFile.size >= 8, try cimFile.read(at: 0, length: 8) != CimFormat.magic {
                throw CimError.badMagic(path: path, found: try cimFile.read(at: 0, length: 8))
            }
            throw CimError.truncated(path: path, offset: cimFile.size, expected: UInt64(CimFormat.filesystemHeaderSize) - cimFile.size)
        }
        let head = LittleEndianBytes(try cimFile.read(at: 0, length: CimFormat.filesystemHeaderSize), path: path, baseOffset: 0)
        let (major, minor) = try CimImage.checkCommonHeader(head, path: path, type: .filesystem)
        versionMajor = major
        versionMinor = minor
        minimumEntrySize = CimFormat.minimumFileEntrySize(major: major)
        let headerLength = try head.u32(8)
        regionSet = try CimImage.regionSet(head, at: 32).guid
        let ownRegionCount = try CimImage.regionSet(head, at: 32).count
        let parentCount = Int(try head.u16(70))
        let neededHeader = UInt64(CimFormat.filesystemHeaderSize + CimFormat.regionSetSize * parentCount)
        guard neededHeader <= cimFile.size else {
            throw CimError.invalidField(path: path, offset: 70, field: "parent count", value: UInt64(parentCount),
                                        expected: "at most \((cimFile.size - 72) / 24) for a \(cimFile.size)-byte file")
        }
        guard UInt64(headerLength) >= UInt64(CimFormat.filesystemHeaderSize), UInt64(headerLength) <= cimFile.size else {
            throw CimError.invalidField(path: path, offset: 8, field: "header length", value: UInt64(headerLength),
                                        expected: "72...\(cimFile.size)")
        }
        var parents: [(guid: CimGUID, count: Int)] = []
        if parentCount > 0 {
            let raw = LittleEndianBytes(try cimFile.read(at: 72, length: CimFormat.regionSetSize * parentCount), path: path, baseOffset: 72)
            for i in 0..<parentCount { parents.append(try CimImage.regionSet(raw, at: i * CimFormat.regionSetSize)) }
        }
        parentRegionSets = parents.map(\.guid)
        let totalRegions = parents.reduce(ownRegionCount) { $0 + $1.count }
        guard totalRegions >= 1, totalRegions <= 65536 else {
            throw CimError.invalidField(path: path, offset: 48, field: "total region count", value: UInt64(totalRegions),
                                        expected: "1...65536")
        }

        // Region files: parents' first, then our own.
        var regionFiles: [RegionFile] = []
        for set in parents + [(regionSet, ownRegionCount)] {
            for index in 0..<set.count {
                let regionPath = (slash == nil ? "" : directory + "/") + CimFormat.regionFileName(set: set.guid, index: index)
                let file = try open(regionPath)
                try CimImage.checkRegionHeader(file)
                regionFiles.append(file)
            }
        }
        regions = regionFiles

        // Filesystem object.
        let fsOffset = try head.u64(56)
        let fsObject = try CimImage.readObject(regions: regionFiles, regionOffset: fsOffset, length: CimFormat.filesystemObjectSize,
                                               what: "filesystem object", source: path, sourceOffset: 56)
        let upcaseOffset = try fsObject.u64(0)
        let directoryOffset = try fsObject.u64(8)
        let tableCount = try fsObject.u32(16)
        rootID = try fsObject.u32(20)

        let upcaseBytes = try CimImage.readObject(regions: regionFiles, regionOffset: upcaseOffset, length: 2 * CimFormat.upcaseTableEntries,
                                                  what: "upcase table", source: fsObject.path, sourceOffset: fsObject.baseOffset)
        upcase = UpcaseTable(table: try upcaseBytes.utf16(0, units: CimFormat.upcaseTableEntries))

        // File table directory. Each table holds ≤1024 entries, FileIDs are u32.
        guard UInt64(tableCount) <= (UInt64(UInt32.max) + 1023) / 1024 else {
            throw CimError.invalidField(path: fsObject.path, offset: fsObject.baseOffset + 16, field: "file table count",
                                        value: UInt64(tableCount), expected: "at most 4194304")
        }
        let tableDir = try CimImage.readObject(regions: regionFiles, regionOffset: directoryOffset,
                                               length: Int(tableCount) * CimFormat.fileTableDirectoryEntrySize,
                                               what: "file table directory", source: fsObject.path, sourceOffset: fsObject.baseOffset + 8)
        let neededEntrySize = CimFormat.minimumFileEntrySize(major: major)
        var infos: [FileTableInfo] = []
        infos.reserveCapacity(Int(tableCount))
        for i in 0..<Int(tableCount) {
            let at = i * CimFormat.fileTableDirectoryEntrySize
            let offset = try tableDir.u64(at)
            let valid = Int(try tableDir.u16(at + 8))
            let entrySize = Int(try tableDir.u16(at + 10))
            guard entrySize >= neededEntrySize else {
                throw CimError.invalidField(path: tableDir.path, offset: tableDir.baseOffset + UInt64(at + 10), field: "file entry size",
                                            value: UInt64(entrySize), expected: "at least \(neededEntrySize), the entry of format version \(major).x")
            }
            guard valid <= CimFormat.filesPerTable else {
                throw CimError.invalidField(path: tableDir.path, offset: tableDir.baseOffset + UInt64(at + 8), field: "valid file count",
                                            value: UInt64(valid), expected: "at most 1024")
            }
            // Validate the table's extent now, so entry reads never go out of bounds.
            _ = try CimImage.locate(regions: regionFiles, regionOffset: offset, length: UInt64(valid * entrySize),
                                    what: "file table \(i)", source: tableDir.path, sourceOffset: tableDir.baseOffset + UInt64(at))
            infos.append(FileTableInfo(offset: offset, validCount: valid, entrySize: entrySize))
        }
        tables = infos
        tableCache = Mutex([[UInt8]?](repeating: nil, count: infos.count))
        linkCounts = Mutex(nil)
        directoryCache = Mutex(DirectoryCache())

        guard isValid(rootID) else {
            throw CimError.invalidFileID(path: fsObject.path, fileID: rootID, problem: "the root FileID does not exist")
        }
        guard try entry(rootID).isDirectory else {
            throw CimError.invalidFileID(path: path, fileID: rootID, problem: "the root is not a directory")
        }
    }

    // MARK: Header checks

    static func checkCommonHeader(_ raw: LittleEndianBytes, path: String, type: CimFormat.FileType) throws -> (UInt32, UInt32) {
        let magic = try raw.slice(0, 8)
        guard magic == CimFormat.magic else { throw CimError.badMagic(path: path, found: magic) }
        let fileType = try raw.u8(12)
        guard fileType == type.rawValue else {
            throw CimError.invalidField(path: path, offset: 12, field: "file type", value: UInt64(fileType),
                                        expected: "\(type.rawValue) (\(type))")
        }
        let major = try raw.u32(16), minor = try raw.u32(20)
        guard CimFormat.knownMajorVersions.contains(major) else { throw CimError.unsupportedVersion(path: path, major: major, minor: minor) }
        return (major, minor)
    }

    static func regionSet(_ raw: LittleEndianBytes, at offset: Int) throws -> (guid: CimGUID, count: Int) {
        let bytes = try raw.slice(offset, 16)
        guard let guid = CimGUID(bytes: bytes) else {
            throw CimError.truncated(path: raw.path, offset: raw.baseOffset + UInt64(offset), expected: 16)
        }
        return (guid, Int(try raw.u16(offset + 16)))
    }

    /// Checks a region file's header. The region is the one its file name's
    /// `n` says; the header's index field is not checked, because Windows
    /// writes 0 there in every region file.
    static func checkRegionHeader(_ file: RegionFile) throws {
        guard file.size >= UInt64(CimFormat.regionHeaderSize) else {
            if file.size >= 8, try file.read(at: 0, length: 8) != CimFormat.magic {
                throw CimError.badMagic(path: file.path, found: try file.read(at: 0, length: 8))
            }
            throw CimError.truncated(path: file.path, offset: file.size, expected: UInt64(CimFormat.regionHeaderSize) - file.size)
        }
        let raw = LittleEndianBytes(try file.read(at: 0, length: CimFormat.regionHeaderSize), path: file.path, baseOffset: 0)
        _ = try checkCommonHeader(raw, path: file.path, type: .region)
        let regionType = try raw.u8(34)
        guard CimFormat.RegionType(rawValue: regionType) != nil else {
            throw CimError.invalidField(path: file.path, offset: 34, field: "region type", value: UInt64(regionType), expected: "0, 1 or 2")
        }
    }

    // MARK: Objects

    /// Validates a RegionOffset + length and returns the region file and byte offset.
    static func locate(regions: [RegionFile], regionOffset: UInt64, length: UInt64, what: @autoclosure () -> String,
                       source: String, sourceOffset: UInt64) throws -> (index: Int, file: RegionFile, offset: UInt64) {
        let (regionIndex, offset) = CimFormat.split(regionOffset: regionOffset)
        guard regionOffset != 0 else {
            throw CimError.corrupt(path: source, offset: sourceOffset, problem: "\(what()) has a null RegionOffset")
        }
        guard Int(regionIndex) < regions.count else {
            throw CimError.invalidField(path: source, offset: sourceOffset, field: "region index of \(what())", value: UInt64(regionIndex),
                                        expected: "below \(regions.count)")
        }
        let file = regions[Int(regionIndex)]
        guard offset >= UInt64(CimFormat.regionHeaderSize) || length == 0 else {
            throw CimError.invalidField(path: source, offset: sourceOffset, field: "byte offset of \(what())", value: offset,
                                        expected: "past the 40-byte region header")
        }
        guard offset <= file.size, length <= file.size - offset else {
            throw CimError.outOfBounds(path: file.path, offset: offset, length: length, fileSize: file.size, what: what())
        }
        return (Int(regionIndex), file, offset)
    }

    static func readObject(regions: [RegionFile], regionOffset: UInt64, length: Int, what: @autoclosure () -> String,
                           source: String, sourceOffset: UInt64) throws -> LittleEndianBytes {
        let (_, file, offset) = try locate(regions: regions, regionOffset: regionOffset, length: UInt64(length), what: what(),
                                           source: source, sourceOffset: sourceOffset)
        return LittleEndianBytes(try file.read(at: offset, length: length), path: file.path, baseOffset: offset)
    }

    func readObject(_ regionOffset: UInt64, length: Int, what: @autoclosure () -> String, source: String, sourceOffset: UInt64) throws -> LittleEndianBytes {
        try CimImage.readObject(regions: regions, regionOffset: regionOffset, length: length, what: what(), source: source, sourceOffset: sourceOffset)
    }

    /// Reads a u16-length-prefixed object (security descriptor, reparse buffer).
    func readCountedObject(_ regionOffset: UInt64, what: String, fileID: CimFileID) throws -> [UInt8] {
        let prefix = try readObject(regionOffset, length: 2, what: what, source: path, sourceOffset: 0)
        let count = Int(try prefix.u16(0))
        let body = try readObject(regionOffset &+ 2, length: count, what: "\(what) of FileID \(fileID)", source: prefix.path,
                                  sourceOffset: prefix.baseOffset)
        return body.bytes
    }

    // MARK: File entries

    /// The number of FileIDs the file tables define (with gaps where tables are not full).
    public var maxFileID: CimFileID {
        guard let last = tables.last else { return 0 }
        return CimFileID((tables.count - 1) * CimFormat.filesPerTable + last.validCount)
    }

    /// True when `id` names an entry of a file table.
    public func isValid(_ id: CimFileID) -> Bool {
        guard id >= 1 else { return false }
        let table = Int(id - 1) / CimFormat.filesPerTable, slot = Int(id - 1) % CimFormat.filesPerTable
        return table < tables.count && slot < tables[table].validCount
    }

    /// The file entry of `id`.
    public func entry(_ id: CimFileID) throws -> CimFileEntry {
        guard isValid(id) else { throw CimError.invalidFileID(path: path, fileID: id, problem: "no such FileID (the image has \(maxFileID))") }
        let tableIndex = Int(id - 1) / CimFormat.filesPerTable, slot = Int(id - 1) % CimFormat.filesPerTable
        let info = tables[tableIndex]
        let table = try tableBytes(tableIndex)
        let start = slot * info.entrySize
        // The table was read whole (validCount × entrySize bytes, entrySize ≥
        // minimumEntrySize) but check anyway: this is the one place entries are decoded.
        guard start >= 0, start <= table.count - minimumEntrySize else {
            let (region, offset) = CimFormat.split(regionOffset: info.offset)
            throw CimError.truncated(path: regions[Int(region)].path, offset: offset + UInt64(start), expected: UInt64(minimumEntrySize))
        }
        let major = versionMajor
        return table.withUnsafeBytes { CimFileEntry(table: $0, at: start, major: major) }
    }

    private func tableBytes(_ index: Int) throws -> [UInt8] {
        if let cached = tableCache.withLock({ $0[index] }) { return cached }
        let info = tables[index]
        let raw = try readObject(info.offset, length: info.validCount * info.entrySize, what: "file table \(index)",
                                 source: path, sourceOffset: 0)
        tableCache.withLock { $0[index] = raw.bytes }
        return raw.bytes
    }

    // MARK: Directories

    func linkTable(_ stream: CimStream, entrySize: Int, what: String, fileID: CimFileID) throws -> LinkTable {
        if stream.length == 0 || stream.dataOffset == 0 { return .empty }
        guard !stream.isSparse else {
            throw CimError.corrupt(path: path, offset: 0, problem: "\(what) of FileID \(fileID) is marked sparse")
        }
        guard stream.length <= UInt64(Int32.max) else {
            throw CimError.invalidField(path: path, offset: 0, field: "\(what) length of FileID \(fileID)", value: stream.length,
                                        expected: "below 2 GiB")
        }
        if let cached = directoryCache.withLock({ $0.tables[stream.dataOffset] }) { return cached }
        let raw = try readObject(stream.dataOffset, length: Int(stream.length), what: "\(what) of FileID \(fileID)", source: path, sourceOffset: 0)
        let table = try LinkTable(raw, entrySize: entrySize)
        directoryCache.withLock { cache in
            if cache.bytes + Int(stream.length) > DirectoryCache.limit {
                cache.tables.removeAll(keepingCapacity: true)
                cache.bytes = 0
            }
            cache.tables[stream.dataOffset] = table
            cache.bytes += Int(stream.length)
        }
        return table
    }

    func directoryTable(_ id: CimFileID) throws -> LinkTable {
        let e = try entry(id)
        guard e.isDirectory else { throw CimError.notADirectory(path: "FileID \(id)") }
        return try linkTable(e.defaultStream, entrySize: 4, what: "link table", fileID: id)
    }

    /// The entries of directory `id`, in on-disk order. Every FileID is checked to exist.
    public func children(of id: CimFileID) throws -> [CimDirectoryEntry] {
        let table = try directoryTable(id)
        var result: [CimDirectoryEntry] = []
        result.reserveCapacity(table.count)
        for i in 0..<table.count {
            let child = LittleEndianBytes(table.entryBytes[i], path: path, baseOffset: 0)
            let childID = try child.u32(0)
            guard isValid(childID) else {
                throw CimError.invalidFileID(path: path, fileID: childID, problem: "referenced by entry \(i) of directory FileID \(id) but does not exist")
            }
            let units = table.names[i]
            result.append(CimDirectoryEntry(name: CimImage.decodeName(units), nameUnits: units, fileID: childID))
        }
        return result
    }

    /// `String(decoding: units, as: UTF16.self)`, without the general decoder
    /// for the usual all-ASCII name.
    static func decodeName(_ units: [UInt16]) -> String {
        guard units.allSatisfy({ $0 < 0x80 }) else { return String(decoding: units, as: UTF16.self) }
        return String(unsafeUninitializedCapacity: units.count) { buffer in
            for (i, unit) in units.enumerated() { buffer[i] = UInt8(truncatingIfNeeded: unit) }
            return units.count
        }
    }

    /// Looks up one name in directory `id`, case-insensitively through the upcase table.
    public func lookup(_ name: String, in id: CimFileID) throws -> CimFileID? {
        let table = try directoryTable(id)
        guard let index = table.index(of: Array(name.utf16), upcase: upcase) else { return nil }
        let childID = try LittleEndianBytes(table.entryBytes[index], path: path, baseOffset: 0).u32(0)
        guard isValid(childID) else {
            throw CimError.invalidFileID(path: path, fileID: childID, problem: "referenced by directory FileID \(id) but does not exist")
        }
        return childID
    }

    /// Resolves a path (`\` or `/` separated, relative to the root) to a FileID.
    public func lookup(path imagePath: String) throws -> CimFileID {
        guard imagePath.utf16.count <= CimFormat.maxPathUnits else { throw CimError.notFound(path: imagePath) }
        var current = rootID
        let components = imagePath.split(whereSeparator: { $0 == "\\" || $0 == "/" })
        for component in components where component != "." {
            guard try entry(current).isDirectory else { throw CimError.notADirectory(path: imagePath) }
            guard let next = try lookup(String(component), in: current) else { throw CimError.notFound(path: imagePath) }
            current = next
        }
        return current
    }

    // MARK: Metadata

    /// What `stat` reports, including the link count (entries referencing the FileID).
    public func stat(_ id: CimFileID) throws -> CimFileStat {
        let e = try entry(id)
        let links = try linkCount(of: id)
        return CimFileStat(fileID: id, isDirectory: e.isDirectory, attributes: e.attributes, size: e.defaultStream.length,
                           creationTime: e.creationTime, lastWriteTime: e.lastWriteTime, changeTime: e.changeTime,
                           lastAccessTime: e.lastAccessTime, linkCount: links, reparseTag: e.reparseTag,
                           isSparse: e.defaultStream.isSparse)
    }

    /// Number of directory entries that reference `id` (1 for the root).
    public func linkCount(of id: CimFileID) throws -> Int {
        let counts = try allLinkCounts()
        guard Int(id) < counts.count else { return 0 }
        return Int(counts[Int(id)]) + (id == rootID ? 1 : 0)
    }

    private func allLinkCounts() throws -> [UInt32] {
        if let counts = linkCounts.withLock({ $0 }) { return counts }
        var counts = [UInt32](repeating: 0, count: Int(maxFileID) + 1)
        try walk { _, entry, _ in counts[Int(entry.fileID)] &+= 1 }
        linkCounts.withLock { $0 = counts }
        return counts
    }

    /// Visits every directory entry below the root (or below the directory
    /// `start`), depth first, in on-disk order. Directory cycles and
    /// directories reached twice are errors, so the walk always ends. The
    /// callback gets the parent FileID, the entry and its path components
    /// (relative to where the walk starts).
    public func walk(from start: CimFileID? = nil, _ visit: (CimFileID, CimDirectoryEntry, [String]) throws -> Void) throws {
        try traverse(from: start, origin: [String](),
                     extend: { components, child in components + [child.name] },
                     visit: { dir, child, _, components, _ in try visit(dir, child, components) },
                     reachedTwice: { _, child, components in
                         "directory FileID \(child.fileID) is reached twice (a cycle or a hard-linked directory) at \\\(components.joined(separator: "\\"))"
                     })
    }

    /// Visits every directory entry below `start` (default: the root) like
    /// ``walk(from:_:)``, but gives the depth of the entry's directory (0 for
    /// `start`) instead of its path, so no path is built per entry; the
    /// callback also gets the child's file entry, decoded once for both.
    package func walkDepths(from start: CimFileID? = nil, _ visit: (CimDirectoryEntry, CimFileEntry, _ depth: Int) throws -> Void) throws {
        try traverse(from: start, origin: (),
                     extend: { _, _ in () },
                     visit: { _, child, entry, _, depth in try visit(child, entry, depth) },
                     reachedTwice: { dir, child, _ in
                         "directory FileID \(child.fileID) is reached twice (a cycle or a hard-linked directory), from directory FileID \(dir)"
                     })
    }

    /// The one traversal behind ``walk(from:_:)`` and ``walkDepths(from:_:)``:
    /// each directory's entries in on-disk order, then its subdirectories;
    /// every directory entered once and nesting bounded, so it always ends.
    /// `Trail` is what a walk carries down to each entry (its path, or nothing);
    /// `visit` gets the parent FileID, the entry, its file entry, its trail and
    /// the depth of the parent (0 for `start`).
    private func traverse<Trail>(from start: CimFileID?, origin: Trail,
                                 extend: (Trail, CimDirectoryEntry) -> Trail,
                                 visit: (CimFileID, CimDirectoryEntry, CimFileEntry, Trail, Int) throws -> Void,
                                 reachedTwice: (CimFileID, CimDirectoryEntry, Trail) -> String) throws {
        let originID = start ?? rootID
        var visited = [Bool](repeating: false, count: Int(maxFileID) + 1)
        if Int(originID) < visited.count { visited[Int(originID)] = true }
        var stack: [(CimFileID, Trail, Int)] = [(originID, origin, 0)]
        var subdirectories: [(CimFileID, Trail, Int)] = []
        while let (dir, trail, depth) = stack.popLast() {
            subdirectories.removeAll(keepingCapacity: true)
            for child in try children(of: dir) {
                let childTrail = extend(trail, child)
                let entry = try self.entry(child.fileID)
                try visit(dir, child, entry, childTrail, depth)
                guard entry.isDirectory else { continue }
                // children(of:) checked the FileID, so it indexes `visited`.
                guard !visited[Int(child.fileID)] else {
                    throw CimError.corrupt(path: path, offset: 0, problem: reachedTwice(dir, child, childTrail))
                }
                visited[Int(child.fileID)] = true
                guard depth + 1 < CimFormat.maxPathUnits / 2 else {
                    throw CimError.corrupt(path: path, offset: 0, problem: "directory nesting deeper than a path allows")
                }
                subdirectories.append((child.fileID, childTrail, depth + 1))
            }
            stack.append(contentsOf: subdirectories.reversed())
        }
    }

    /// The raw self-relative security descriptor, or nil when the file has none.
    public func securityDescriptor(of id: CimFileID) throws -> [UInt8]? {
        try securityDescriptor(of: id, entry: entry(id))
    }

    /// ``securityDescriptor(of:)`` for a caller that has decoded the entry of `id`.
    package func securityDescriptor(of id: CimFileID, entry e: CimFileEntry) throws -> [UInt8]? {
        guard e.securityDescriptorOffset != 0 else { return nil }
        return try readCountedObject(e.securityDescriptorOffset, what: "security descriptor", fileID: id)
    }

    /// The raw FILE_FULL_EA_INFORMATION chain, or nil when the file has none.
    public func extendedAttributes(of id: CimFileID) throws -> [UInt8]? {
        try extendedAttributes(of: id, entry: entry(id))
    }

    /// ``extendedAttributes(of:)`` for a caller that has decoded the entry of `id`.
    package func extendedAttributes(of id: CimFileID, entry e: CimFileEntry) throws -> [UInt8]? {
        guard e.extendedAttributesOffset != 0 else { return nil }
        return try readObject(e.extendedAttributesOffset, length: Int(e.eaLength), what: "extended attributes of FileID \(id)",
                              source: path, sourceOffset: 0).bytes
    }

    /// The whole REPARSE_DATA_BUFFER, or nil when the file is not a reparse point.
    public func reparseData(of id: CimFileID) throws -> [UInt8]? {
        try reparseData(of: id, entry: entry(id))
    }

    /// ``reparseData(of:)`` for a caller that has decoded the entry of `id`.
    package func reparseData(of id: CimFileID, entry e: CimFileEntry) throws -> [UInt8]? {
        guard e.reparseDataOffset != 0 else { return nil }
        return try readCountedObject(e.reparseDataOffset, what: "reparse data", fileID: id)
    }

    /// Alternate data streams, in on-disk order.
    public func alternateStreams(of id: CimFileID) throws -> [CimAlternateStream] {
        try alternateStreams(of: id, entry: entry(id))
    }

    /// ``alternateStreams(of:)`` for a caller that has decoded the entry of `id`.
    package func alternateStreams(of id: CimFileID, entry e: CimFileEntry) throws -> [CimAlternateStream] {
        guard e.streamTableOffset != 0 else { return [] }
        let prefix = try readObject(e.streamTableOffset, length: 4, what: "stream table of FileID \(id)", source: path, sourceOffset: 0)
        let count = UInt64(try prefix.u32(0))
        if count == 0 { return [] }
        let table = try linkTable(CimStream(dataOffset: e.streamTableOffset &+ 4, length: count, rawType: 1, isSparse: false),
                                  entrySize: CimFormat.streamSize, what: "stream table", fileID: id)
        var result: [CimAlternateStream] = []
        for i in 0..<table.count {
            let raw = LittleEndianBytes(table.entryBytes[i], path: path, baseOffset: 0)
            let stream = CimStream(dataOffset: try raw.u64(0), lengthWord: try raw.u64(8))
            result.append(CimAlternateStream(name: String(decoding: table.names[i], as: UTF16.self), nameUnits: table.names[i], stream: stream))
        }
        return result
    }

    /// Finds an alternate stream by name, case-insensitively.
    public func alternateStream(named name: String, of id: CimFileID) throws -> CimAlternateStream? {
        let wanted = Array(name.utf16)
        return try alternateStreams(of: id).first { LinkTable.compare($0.nameUnits, wanted, upcase: upcase) == 0 }
    }
}

/// Throws unless `path` is an accessible directory.
private func requireDirectory(_ path: String) throws {
    var info = stat()
    guard stat(path, &info) == 0 else {
        if errno == EACCES { throw CimError.accessDenied(path: path) }
        throw CimError.missingDirectory(path: path)
    }
    guard info.st_mode & S_IFMT == S_IFDIR else { throw CimError.missingDirectory(path: path) }
}
