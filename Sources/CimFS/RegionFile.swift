#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One open file of an image (a region file, usually), read with `pread`.
///
/// A harness (the fuzzer) may instead give a file's bytes in memory
/// (``init(path:unownedContents:size:)``); such a file has no descriptor.
///
/// The file stays open for the life of the object, so the bytes served come
/// from the inode that was opened even if the name is replaced. The identity
/// recorded at open time (device, inode, size, mtime) can be re-checked with
/// ``checkUnchanged()``: a changed or truncated file must make reads fail
/// rather than serve mixed bytes.
public final class RegionFile: @unchecked Sendable, CustomStringConvertible {
    /// The path the file was opened by.
    public let path: String
    /// The open descriptor. Valid until the object is deinitialized; -1 for
    /// a file held in memory.
    public let fileDescriptor: Int32
    /// The size in bytes at open time.
    public let size: UInt64
    private let device: UInt64
    private let inode: UInt64
    private let modificationSeconds: Int
    private let modificationNanoseconds: Int
    /// The bytes of a file held in memory (past their end, up to ``size``, zeros); nil for a real file.
    private let contents: UnsafeRawBufferPointer?

    /// Opens `path` read-only.
    public init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            if code == ENOENT { throw CimError.missingFile(path: path) }
            if code == EACCES || code == EPERM { throw CimError.accessDenied(path: path) }
            throw CimError.io(path: path, offset: 0, errno: code, what: "open")
        }
        var st = stat()
        if fstat(fd, &st) != 0 {
            let code = errno
            close(fd)
            throw CimError.io(path: path, offset: 0, errno: code, what: "fstat")
        }
        if (st.st_mode & S_IFMT) != S_IFREG {
            close(fd)
            throw CimError.notARegularFile(path: path)
        }
        self.path = path
        self.fileDescriptor = fd
        self.size = UInt64(max(0, st.st_size))
        self.device = UInt64(st.st_dev)
        self.inode = UInt64(st.st_ino)
        self.modificationSeconds = Int(st.st_mtim.tv_sec)
        self.modificationNanoseconds = Int(st.st_mtim.tv_nsec)
        self.contents = nil
    }

    /// A file held in memory, named `path` in errors: `contents`, then zeros
    /// up to `size` (at least `contents.count`). `contents` is not copied:
    /// it must stay valid and unchanged for the life of the object. For
    /// harnesses that feed the reader bytes instead of files: the fuzzer
    /// opens thousands of images a second, and writing each to files (or
    /// allocating its bytes anew) would cost more than reading it.
    @_spi(Harness)
    public init(path: String, unownedContents contents: UnsafeRawBufferPointer, size: UInt64) {
        self.path = path
        self.fileDescriptor = -1
        self.size = max(size, UInt64(contents.count))
        self.device = 0
        self.inode = 0
        self.modificationSeconds = 0
        self.modificationNanoseconds = 0
        self.contents = contents
    }

    deinit {
        if fileDescriptor >= 0 { close(fileDescriptor) }
    }

    /// Copies `buffer.count` bytes at `offset` of a file held in memory
    /// (the caller has checked the range against ``size``).
    private func copy(_ contents: UnsafeRawBufferPointer, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) {
        guard let base = buffer.baseAddress else { return }
        let stored = UInt64(contents.count)
        let copied = offset < stored ? Int(min(stored - offset, UInt64(buffer.count))) : 0
        if copied > 0, let from = contents.baseAddress {
            base.copyMemory(from: from + Int(offset), byteCount: copied)
        }
        if copied < buffer.count { (base + copied).initializeMemory(as: UInt8.self, repeating: 0, count: buffer.count - copied) }
    }

    public var description: String { path }

    /// Reads exactly `buffer.count` bytes at `offset`; a short file is an error.
    ///
    /// Every read first checks (one `fstat`) that the file still has the size
    /// and modification time it had when opened, so a file rewritten or
    /// truncated under a reader gives ``CimError/fileChanged(path:detail:)``
    /// instead of mixed bytes.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        guard buffer.count > 0 else { return }
        try checkContentUnchanged()
        guard offset <= size, UInt64(buffer.count) <= size - offset else {
            throw CimError.outOfBounds(path: path, offset: offset, length: UInt64(buffer.count), fileSize: size, what: "read")
        }
        if let contents { return copy(contents, into: buffer, at: offset) }
        var done = 0
        while done < buffer.count {
            guard let base = buffer.baseAddress else { return }
            let n = pread(fileDescriptor, base + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw CimError.io(path: path, offset: offset + UInt64(done), errno: errno, what: "read")
            }
            if n == 0 {
                throw CimError.truncated(path: path, offset: offset + UInt64(done), expected: UInt64(buffer.count - done))
            }
            done += n
        }
    }

    /// Like ``read(into:at:)``, but only from the page cache (`preadv2` with
    /// `RWF_NOWAIT`): returns false when some of the bytes are not cached, or
    /// the system cannot read without blocking, leaving `buffer` in an
    /// unspecified state. For callers on an event loop, which then read on a
    /// thread that may block.
    public func readWithoutBlocking(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Bool {
        guard buffer.count > 0 else { return true }
        if contents != nil {
            try read(into: buffer, at: offset)
            return true
        }
        guard let preadv2 = Self.preadv2, let base = buffer.baseAddress else { return false }
        try checkContentUnchanged()
        guard offset <= size, UInt64(buffer.count) <= size - offset else {
            throw CimError.outOfBounds(path: path, offset: offset, length: UInt64(buffer.count), fileSize: size, what: "read")
        }
        var done = 0
        while done < buffer.count {
            var vector = iovec(iov_base: base + done, iov_len: buffer.count - done)
            let n = preadv2(fileDescriptor, &vector, 1, off_t(offset) + off_t(done), Self.readNoWait)
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                // EAGAIN: not (all) in the page cache; the others: no RWF_NOWAIT here.
                if code == EAGAIN || code == EOPNOTSUPP || code == ENOSYS { return false }
                throw CimError.io(path: path, offset: offset + UInt64(done), errno: code, what: "read")
            }
            if n == 0 {
                throw CimError.truncated(path: path, offset: offset + UInt64(done), expected: UInt64(buffer.count - done))
            }
            done += n
        }
        return true
    }

    /// `RWF_NOWAIT` of <linux/fs.h> (not exported by the Glibc module).
    private static let readNoWait: Int32 = 0x0000_0008

    private typealias PReadV2 = @convention(c) (Int32, UnsafePointer<iovec>?, Int32, off_t, Int32) -> Int

    /// glibc's `preadv2` (2.26+), looked up once: the Glibc module does not
    /// export it (it is a GNU extension). Nil where it does not exist.
    private static let preadv2: PReadV2? = {
        #if os(Linux)
        guard let program = dlopen(nil, RTLD_NOW), let symbol = dlsym(program, "preadv2") else { return nil }
        return unsafeBitCast(symbol, to: PReadV2.self)
        #else
        return nil
        #endif
    }()

    /// Reads `length` bytes at `offset` into a new array.
    public func read(at offset: UInt64, length: Int) throws -> [UInt8] {
        guard length >= 0 else { throw CimError.outOfBounds(path: path, offset: offset, length: 0, fileSize: size, what: "read") }
        return try [UInt8](unsafeUninitializedCapacity: length) { buffer, initialized in
            try read(into: UnsafeMutableRawBufferPointer(buffer), at: offset)
            initialized = length
        }
    }

    /// Throws ``CimError/fileChanged(path:detail:)`` when the open file's size
    /// or modification time differs from what it was at open time (one `fstat`;
    /// cheap enough for every read, and what callers that send the descriptor's
    /// bytes with `sendfile` must call first).
    public func checkContentUnchanged() throws {
        guard contents == nil else { return }
        var st = stat()
        if fstat(fileDescriptor, &st) != 0 {
            throw CimError.io(path: path, offset: 0, errno: errno, what: "fstat")
        }
        if UInt64(max(0, st.st_size)) != size {
            throw CimError.fileChanged(path: path, detail: "size changed from \(size) to \(st.st_size) bytes")
        }
        if Int(st.st_mtim.tv_sec) != modificationSeconds || Int(st.st_mtim.tv_nsec) != modificationNanoseconds {
            throw CimError.fileChanged(path: path, detail: "modification time changed")
        }
    }

    /// Like ``checkContentUnchanged()``, and also that the path still names the
    /// opened file (not replaced by a rename).
    public func checkUnchanged() throws {
        try checkContentUnchanged()
        guard contents == nil else { return }
        var byName = stat()
        if stat(path, &byName) == 0 {
            if UInt64(byName.st_dev) != device || UInt64(byName.st_ino) != inode {
                throw CimError.fileChanged(path: path, detail: "the name now refers to another file")
            }
        }
    }
}
