#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Reads a source file in chunks, skipping its holes.
struct WriterSourceReader {
    let fd: Int32
    let path: String
    let buffer: UnsafeMutableRawBufferPointer
    private(set) var bytesRead: UInt64 = 0

    init(fd: Int32, path: String, buffer: UnsafeMutableRawBufferPointer) {
        self.fd = fd
        self.path = path
        self.buffer = buffer
    }

    /// True when the file has no data at all, only holes.
    static func isAllHoles(fd: Int32, size: UInt64, blocks: UInt64, path: String) throws -> Bool {
        guard size > 0 else { return false }
        if lseek(fd, 0, WriterLinux.seekData) >= 0 { return false }
        let code = errno
        if code == ENXIO { return true }
        // No SEEK_DATA support: no allocated blocks is the next best sign
        // (inline-data files also have none, so only trust it when SEEK_DATA fails).
        return blocks == 0
    }

    /// Copies file bytes `[start, end)` into `sink`; holes are skipped, not read.
    mutating func copy(from start: UInt64, to end: UInt64, into sink: inout WriterStreamSink) throws {
        var position = start
        while position < end {
            var dataStart = lseek(fd, off_t(position), WriterLinux.seekData)
            if dataStart < 0 {
                // ENXIO: only a hole remains; other errors: no hole support, copy everything.
                dataStart = errno == ENXIO ? off_t(end) : off_t(position)
            }
            let hole = min(UInt64(dataStart), end) - position
            if hole > 0 {
                sink.skip(hole)
                position += hole
                continue
            }
            var dataEnd = lseek(fd, off_t(position), WriterLinux.seekHole)
            if dataEnd < 0 || UInt64(dataEnd) <= position { dataEnd = off_t(end) }
            let stop = min(UInt64(dataEnd), end)
            while position < stop {
                let want = Int(min(UInt64(buffer.count), stop - position))
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want])
                try readFully(slice, at: position)
                try sink.write(UnsafeRawBufferPointer(slice))
                position += UInt64(want)
            }
        }
    }

    /// Reads the whole (small) file into memory.
    mutating func readAll(_ size: UInt64) throws -> [UInt8] {
        let count = Int(size)
        return try [UInt8](unsafeUninitializedCapacity: count) { storage, initialized in
            try readFully(UnsafeMutableRawBufferPointer(storage), at: 0)
            initialized = count
        }
    }

    private mutating func readFully(_ target: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        var done = 0
        while done < target.count {
            guard let base = target.baseAddress else { return }
            let n = pread(fd, base + done, target.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw CimError.io(path: path, offset: offset + UInt64(done), errno: errno, what: "read")
            }
            if n == 0 {
                throw CimError.fileChanged(path: path, detail: "file ended at offset \(offset + UInt64(done)) while being copied")
            }
            done += n
        }
        bytesRead += UInt64(target.count)
    }
}
