#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One region file of the image being written, open under a temporary name.
///
/// Objects are appended at `end`, aligned to the region's alignment. An
/// object that turns out to be a duplicate can be withdrawn with
/// ``rollBack(to:)`` because nothing was recorded for it yet.
final class WriterRegionFile {
    /// Index within this image's own region set.
    let indexInSet: UInt16
    let type: CimFormat.RegionType
    let alignment: UInt64
    let finalPath: String
    let temporaryPath: String
    private(set) var fileDescriptor: Int32
    /// First free byte.
    private(set) var end: UInt64
    /// Every object stored, for the object-id file.
    private(set) var objects: [CimObjectIDFile.Entry] = []

    /// Creates the file and writes its header. Format 1 headers carry index 0
    /// in every region, as Windows writes them; later versions the real index.
    init(indexInSet: UInt16, type: CimFormat.RegionType, finalPath: String, temporaryPath: String, formatVersion: UInt32) throws {
        self.indexInSet = indexInSet
        self.type = type
        self.alignment = type == .pageAlignedData ? 4096 : 8
        self.finalPath = finalPath
        self.temporaryPath = temporaryPath
        self.fileDescriptor = try WriterRegionFile.create(temporaryPath)
        self.end = 0
        var header = WriterByteBuffer(capacity: CimFormat.regionHeaderSize)
        WriterRegionFile.commonHeader(&header, length: UInt32(CimFormat.regionHeaderSize), type: .region, version: formatVersion)
        header.u16(formatVersion == 1 ? 0 : indexInSet)
        header.u8(type.rawValue)
        header.u8(0)
        header.u32(0)
        try write(header.bytes, at: 0)
        end = UInt64(header.count)
    }

    deinit { closeFile() }

    func closeFile() {
        if fileDescriptor >= 0 { close(fileDescriptor); fileDescriptor = -1 }
    }

    /// Creates `path` exclusively: an existing file is never overwritten.
    static func create(_ path: String) throws -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 {
            let code = errno
            if code == EACCES || code == EPERM || code == EROFS { throw CimError.accessDenied(path: path) }
            if code == ENOENT { throw CimError.missingDirectory(path: path) }
            throw CimError.io(path: path, offset: 0, errno: code, what: "create")
        }
        return fd
    }

    /// The 32-byte common header.
    static func commonHeader(_ buffer: inout WriterByteBuffer, length: UInt32, type: CimFormat.FileType, version: UInt32) {
        buffer.append(CimFormat.magic)
        buffer.u32(length)
        buffer.u8(type.rawValue)
        buffer.u8(0)
        buffer.u16(0)
        buffer.u32(version)
        buffer.u32(0)
        buffer.u64(0)
    }

    /// The offset the next object will get.
    var nextObjectOffset: UInt64 { (end + alignment - 1) / alignment * alignment }

    /// Writes `bytes` at `offset` (any position; used by streaming copies).
    func write(_ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }

    func write(_ raw: UnsafeRawBufferPointer, at offset: UInt64) throws {
        var done = 0
        while done < raw.count {
            guard let base = raw.baseAddress else { return }
            let n = pwrite(fileDescriptor, base + done, raw.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw CimError.io(path: temporaryPath, offset: offset + UInt64(done), errno: errno, what: "write")
            }
            done += n
        }
        end = max(end, offset + UInt64(raw.count))
    }

    /// Records an object written at `offset` and makes it permanent.
    func commit(offset: UInt64, length: UInt64, digest: [UInt8]) {
        objects.append(CimObjectIDFile.Entry(length: length, digest: digest, offset: offset))
        end = max(end, offset + length)
    }

    /// Forgets bytes written after `offset` (a duplicate that is not kept).
    /// The file is cut there at once so that holes left in later objects read
    /// as zeros, not as the withdrawn bytes.
    func rollBack(to offset: UInt64) throws {
        end = offset
        if ftruncate(fileDescriptor, off_t(offset)) != 0 {
            throw CimError.io(path: temporaryPath, offset: offset, errno: errno, what: "truncate")
        }
    }

    /// Appends a whole object; returns its offset.
    func append(_ bytes: [UInt8], digest: [UInt8]) throws -> UInt64 {
        let offset = nextObjectOffset
        try write(bytes, at: offset)
        commit(offset: offset, length: UInt64(bytes.count), digest: digest)
        return offset
    }

    /// Cuts the file at `end` (dropping rolled-back bytes) and syncs it.
    func finish() throws {
        if ftruncate(fileDescriptor, off_t(end)) != 0 {
            throw CimError.io(path: temporaryPath, offset: end, errno: errno, what: "truncate")
        }
        if fsync(fileDescriptor) != 0 {
            throw CimError.io(path: temporaryPath, offset: 0, errno: errno, what: "fsync")
        }
        closeFile()
    }

    /// The object-id file for this region (format section 4): its real index,
    /// and the entries sorted by (length, digest) as Windows sorts them.
    func objectIDFileBytes(formatVersion: UInt32) -> [UInt8] {
        var buffer = WriterByteBuffer(capacity: CimFormat.objectIDHeaderSize + objects.count * CimFormat.objectIDEntrySize)
        WriterRegionFile.commonHeader(&buffer, length: UInt32(CimFormat.objectIDHeaderSize), type: .objectID, version: formatVersion)
        buffer.u16(indexInSet)
        buffer.u8(type.rawValue)
        buffer.u8(0)
        buffer.u32(0)
        buffer.u32(UInt32(CimFormat.objectIDHeaderSize))
        buffer.u32(UInt32(objects.count))
        for object in objects.sorted(by: CimObjectIDFile.precedes) {
            buffer.u64(object.length)
            buffer.append(object.digest)
            buffer.u64(object.offset)
        }
        return buffer.bytes
    }
}
