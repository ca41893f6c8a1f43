#if canImport(Glibc)
import Glibc
#endif
import CZlib

/// A bounds-checked reader of zip archives (MSIX packages are zip files):
/// the central directory (ZIP64 included) is read and checked, each entry's
/// local header is checked against it, and data is inflated (stored or
/// deflate) in chunks with its CRC-32 and size verified.
final class ZipArchive {
    struct Entry {
        var name: String
        var method: UInt16
        var flags: UInt16
        var crc32: UInt32
        var compressedSize: UInt64
        var size: UInt64
        var localHeaderOffset: UInt64
        var dosTime: UInt16
        var dosDate: UInt16
        var isDirectory: Bool { name.hasSuffix("/") }
    }

    let path: String
    private let fd: Int32
    let fileSize: UInt64
    private(set) var entries: [Entry] = []

    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ImportError.io(path: path, errno: errno, what: "open") }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let code = errno
            close(fd)
            throw ImportError.io(path: path, errno: code, what: "stat")
        }
        fileSize = UInt64(status.st_size)
        do { try readCentralDirectory() } catch { close(fd); throw error }
    }

    deinit { close(fd) }

    func fail(_ problem: String, entry: String? = nil) -> ImportError { .badPackage(path: path, entry: entry, problem: problem) }

    func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        guard offset <= fileSize, UInt64(count) <= fileSize - offset else {
            throw fail("needs \(count) bytes at offset \(offset), the file has \(fileSize) (truncated or corrupt)")
        }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { raw in pread(fd, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ImportError.io(path: path, errno: errno, what: "read at byte \(offset)")
            }
            if n == 0 { throw fail("ends at byte \(offset + UInt64(done)) while \(count) bytes were read") }
            done += n
        }
        return bytes
    }

    static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 { UInt32(u16(b, at)) | UInt32(u16(b, at + 2)) << 16 }
    static func u64(_ b: [UInt8], _ at: Int) -> UInt64 { UInt64(u32(b, at)) | UInt64(u32(b, at + 4)) << 32 }

    private func readCentralDirectory() throws {
        guard fileSize >= 22 else { throw fail("is \(fileSize) bytes, too short for a zip archive") }
        let tailLength = Int(min(fileSize, 65535 + 22))
        let tail = try read(at: fileSize - UInt64(tailLength), count: tailLength)
        var eocd: Int?
        var index = tail.count - 22
        while index >= 0 {
            if ZipArchive.u32(tail, index) == 0x0605_4B50 { eocd = index; break }
            index -= 1
        }
        guard let end = eocd else { throw fail("has no end-of-central-directory record: not a zip archive (or truncated)") }
        var count = UInt64(ZipArchive.u16(tail, end + 10))
        var directorySize = UInt64(ZipArchive.u32(tail, end + 12))
        var directoryOffset = UInt64(ZipArchive.u32(tail, end + 16))
        let eocdOffset = fileSize - UInt64(tailLength) + UInt64(end)
        if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF, eocdOffset >= 20 {
            let locator = try read(at: eocdOffset - 20, count: 20)
            if ZipArchive.u32(locator, 0) == 0x0706_4B50 {
                let record = try read(at: ZipArchive.u64(locator, 8), count: 56)
                guard ZipArchive.u32(record, 0) == 0x0606_4B50 else { throw fail("ZIP64 end-of-central-directory record is missing") }
                count = ZipArchive.u64(record, 32)
                directorySize = ZipArchive.u64(record, 40)
                directoryOffset = ZipArchive.u64(record, 48)
            }
        }
        guard directoryOffset <= fileSize, directorySize <= fileSize - directoryOffset, directorySize <= 1 << 30 else {
            throw fail("central directory (\(directorySize) bytes at \(directoryOffset)) lies outside the file")
        }
        guard count <= directorySize / 46 else { throw fail("claims \(count) entries in a \(directorySize)-byte central directory") }
        let directory = try read(at: directoryOffset, count: Int(directorySize))
        var at = 0
        for number in 0..<Int(count) {
            guard at + 46 <= directory.count, ZipArchive.u32(directory, at) == 0x0201_4B50 else {
                throw fail("central directory entry \(number + 1) is malformed")
            }
            let nameLength = Int(ZipArchive.u16(directory, at + 28))
            let extraLength = Int(ZipArchive.u16(directory, at + 30))
            let commentLength = Int(ZipArchive.u16(directory, at + 32))
            guard at + 46 + nameLength + extraLength + commentLength <= directory.count else {
                throw fail("central directory entry \(number + 1) runs past the directory")
            }
            let nameBytes = directory[(at + 46)..<(at + 46 + nameLength)]
            guard let name = String(validating: nameBytes, as: UTF8.self) else {
                throw fail("central directory entry \(number + 1) has a name that is not UTF-8")
            }
            var entry = Entry(name: name, method: ZipArchive.u16(directory, at + 10), flags: ZipArchive.u16(directory, at + 8),
                              crc32: ZipArchive.u32(directory, at + 16), compressedSize: UInt64(ZipArchive.u32(directory, at + 20)),
                              size: UInt64(ZipArchive.u32(directory, at + 24)), localHeaderOffset: UInt64(ZipArchive.u32(directory, at + 42)),
                              dosTime: ZipArchive.u16(directory, at + 12), dosDate: ZipArchive.u16(directory, at + 14))
            // ZIP64 extra field: the 0xFFFFFFFF fields, in this order.
            var extra = at + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = ZipArchive.u16(directory, extra)
                let length = Int(ZipArchive.u16(directory, extra + 2))
                guard extra + 4 + length <= extraEnd else { break }
                if id == 0x0001 {
                    var field = extra + 4
                    func next() throws -> UInt64 {
                        guard field + 8 <= extra + 4 + length else { throw fail("ZIP64 extra field too short", entry: name) }
                        defer { field += 8 }
                        return ZipArchive.u64(directory, field)
                    }
                    if entry.size == 0xFFFF_FFFF { entry.size = try next() }
                    if entry.compressedSize == 0xFFFF_FFFF { entry.compressedSize = try next() }
                    if entry.localHeaderOffset == 0xFFFF_FFFF { entry.localHeaderOffset = try next() }
                }
                extra += 4 + length
            }
            entries.append(entry)
            at += 46 + nameLength + extraLength + commentLength
        }
    }

    /// Streams the uncompressed bytes of `entry` to `body`, checking size and CRC-32.
    func extract(_ entry: Entry, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard entry.flags & 1 == 0 else { throw fail("is encrypted", entry: entry.name) }
        guard entry.method == 0 || entry.method == 8 else {
            throw fail("uses compression method \(entry.method); only stored (0) and deflate (8) are supported", entry: entry.name)
        }
        let local = try read(at: entry.localHeaderOffset, count: 30)
        guard ZipArchive.u32(local, 0) == 0x0403_4B50 else { throw fail("local header is missing", entry: entry.name) }
        let dataStart = entry.localHeaderOffset + 30 + UInt64(ZipArchive.u16(local, 26)) + UInt64(ZipArchive.u16(local, 28))
        guard dataStart <= fileSize, entry.compressedSize <= fileSize - dataStart else {
            throw fail("data (\(entry.compressedSize) bytes at \(dataStart)) lies outside the file", entry: entry.name)
        }
        if entry.method == 0 && entry.compressedSize != entry.size {
            throw fail("is stored but its sizes differ (\(entry.compressedSize) vs \(entry.size))", entry: entry.name)
        }
        var crc = crc32(0, nil, 0)
        var produced: UInt64 = 0
        let chunk = 1 << 16
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { output.deallocate() }
        func emit(_ bytes: UnsafeRawBufferPointer) throws {
            guard bytes.count > 0 else { return }
            produced += UInt64(bytes.count)
            guard produced <= entry.size else { throw fail("inflates to more than the \(entry.size) bytes the directory says", entry: entry.name) }
            crc = crc32(crc, bytes.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(bytes.count))
            try body(bytes)
        }
        var position = dataStart
        let end = dataStart + entry.compressedSize
        if entry.method == 0 {
            while position < end {
                let input = try read(at: position, count: Int(min(UInt64(chunk), end - position)))
                position += UInt64(input.count)
                try input.withUnsafeBytes { try emit($0) }
            }
        } else {
            var stream = z_stream()
            guard inflateInit2_(&stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw fail("zlib could not be initialised", entry: entry.name)
            }
            defer { inflateEnd(&stream) }
            var finished = false
            while !finished {
                var input = [UInt8]()
                if position < end {
                    input = try read(at: position, count: Int(min(UInt64(chunk), end - position)))
                    position += UInt64(input.count)
                }
                try input.withUnsafeMutableBytes { raw in
                    stream.next_in = raw.baseAddress?.assumingMemoryBound(to: Bytef.self)
                    stream.avail_in = uInt(raw.count)
                    repeat {
                        stream.next_out = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
                        stream.avail_out = uInt(chunk)
                        let status = inflate(&stream, Z_NO_FLUSH)
                        let made = chunk - Int(stream.avail_out)
                        try emit(UnsafeRawBufferPointer(rebasing: output[0..<made]))
                        if status == Z_STREAM_END { finished = true; return }
                        if status == Z_BUF_ERROR {
                            if raw.isEmpty { throw fail("compressed data ends early (truncated)", entry: entry.name) }
                            return
                        }
                        guard status == Z_OK else {
                            let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                            throw fail("corrupt deflate data: \(message)", entry: entry.name)
                        }
                        if made == 0 && stream.avail_in == 0 { return }
                    } while stream.avail_out == 0 || stream.avail_in > 0
                }
            }
        }
        guard produced == entry.size else { throw fail("holds \(produced) bytes, the directory says \(entry.size)", entry: entry.name) }
        guard crc == uLong(entry.crc32) else { throw fail("CRC-32 mismatch (data corrupt)", entry: entry.name) }
    }
}
