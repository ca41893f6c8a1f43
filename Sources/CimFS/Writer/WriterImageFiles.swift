#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The end of every image write, shared by the directory writer
/// (``CimWriter``) and the tree writer (``CimTreeWriter``): file tables and
/// the filesystem object, then the files renamed into place.
enum WriterImageFiles {
    /// Where a file is written before it is renamed to `finalName`.
    static func temporaryPath(directory: String, finalName: String) -> String {
        WriterPaths.join(directory, ".\(finalName).\(getpid()).partial")
    }

    /// Stores `count` file entries (`entry(index)` gives the bytes of FileID
    /// index + 1) in tables of 1024, the table directory, and the filesystem
    /// object; returns the filesystem object's RegionOffset.
    static func storeFileTables(count: Int, entrySize: Int, upcase: UInt64, store: WriterObjectStore,
                                entry: (Int) throws -> [UInt8]) throws -> UInt64 {
        var tableDirectory = WriterByteBuffer()
        var table = WriterByteBuffer(capacity: CimFormat.filesPerTable * entrySize)
        var entriesInTable = 0
        for index in 0..<count {
            table.append(try entry(index))
            entriesInTable += 1
            if entriesInTable == CimFormat.filesPerTable || index == count - 1 {
                let offset = try store.storeMetadata(table.bytes)
                tableDirectory.u64(offset)
                tableDirectory.u16(UInt16(entriesInTable))
                tableDirectory.u16(UInt16(entrySize))
                tableDirectory.u32(0)
                table = WriterByteBuffer(capacity: CimFormat.filesPerTable * entrySize)
                entriesInTable = 0
            }
        }
        let tableCount = (count + CimFormat.filesPerTable - 1) / CimFormat.filesPerTable
        let tableDirectoryOffset = try store.storeMetadata(tableDirectory.bytes)
        var filesystem = WriterByteBuffer(capacity: CimFormat.filesystemObjectSize)
        filesystem.u64(upcase)
        filesystem.u64(tableDirectoryOffset)
        filesystem.u32(UInt32(tableCount))
        filesystem.u32(1)  // root FileID
        return try store.storeMetadata(filesystem.bytes)
    }

    /// Region files, then object-id files, then the `.cim`: a reader never
    /// finds a `.cim` whose regions are not complete. Every path created or
    /// renamed is tracked in `created` (for cleanup after a failure).
    ///
    /// - Returns: the object-id files' final paths, in index order.
    static func publish(regions: [WriterRegionFile], guid: CimGUID, parentSets: [WriterRegionSet], filesystemOffset: UInt64,
                        formatVersion: UInt32, directory: String, imagePath: String, created: inout Set<String>) throws -> [String] {
        func rename(_ from: String, _ to: String) throws {
            if Glibc.rename(from, to) != 0 {
                throw CimError.io(path: to, offset: 0, errno: errno, what: "rename from \(from)")
            }
            created.remove(from)
            created.insert(to)
        }
        for region in regions { try region.finish() }
        var objectIDFiles: [(temporary: String, final: String)] = []
        for region in regions {
            let finalName = CimFormat.objectIDFileName(set: guid, index: Int(region.indexInSet))
            let temporary = temporaryPath(directory: directory, finalName: finalName)
            created.insert(temporary)
            try WriterImageJob.writeFile(temporary, bytes: region.objectIDFileBytes(formatVersion: formatVersion))
            objectIDFiles.append((temporary, WriterPaths.join(directory, finalName)))
        }
        var header = WriterByteBuffer()
        WriterRegionFile.commonHeader(&header, length: UInt32(CimFormat.filesystemHeaderSize + CimFormat.regionSetSize * parentSets.count),
                                      type: .filesystem, version: formatVersion)
        header.append(guid.bytes)
        header.u16(UInt16(regions.count))
        header.u16(0)
        header.u32(0)
        header.u64(filesystemOffset)
        header.u32(0)
        header.u16(0)
        header.u16(UInt16(parentSets.count))
        for set in parentSets {
            header.append(set.guid.bytes)
            header.u16(set.regionCount)
            header.u16(0)
            header.u32(0)
        }
        let cimTemporary = temporaryPath(directory: directory, finalName: WriterPaths.fileName(of: imagePath))
        created.insert(cimTemporary)
        try WriterImageJob.writeFile(cimTemporary, bytes: header.bytes)

        for region in regions { try rename(region.temporaryPath, region.finalPath) }
        for file in objectIDFiles { try rename(file.temporary, file.final) }
        // link() instead of rename(): fails rather than replaces if a .cim of
        // that name appeared meanwhile.
        if link(cimTemporary, imagePath) != 0 {
            let code = errno
            if code == EEXIST { throw CimError.invalidInput("\(imagePath): already exists; remove it first or choose another name") }
            throw CimError.io(path: imagePath, offset: 0, errno: code, what: "link \(cimTemporary)")
        }
        created.insert(imagePath)
        unlink(cimTemporary)
        created.remove(cimTemporary)
        WriterImageJob.syncDirectory(directory)
        return objectIDFiles.map(\.final)
    }
}
