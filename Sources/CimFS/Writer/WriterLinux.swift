#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A timestamp as Linux reports it: seconds and nanoseconds since 1970.
struct WriterTimespec: Equatable, Sendable {
    var seconds: Int64
    var nanoseconds: UInt32
}

/// What the writer needs from `statx` about one file (not following symlinks).
struct WriterStat: Sendable {
    var mode: UInt32
    var device: UInt64
    var inode: UInt64
    var linkCount: UInt32
    var size: UInt64
    var blocks: UInt64
    var accessTime: WriterTimespec
    /// Nil when the filesystem does not record a birth time.
    var birthTime: WriterTimespec?
    var changeTime: WriterTimespec
    var modificationTime: WriterTimespec

    var isDirectory: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFDIR) }
    var isRegular: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFREG) }
    var isSymlink: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFLNK) }
}

/// Calls that the Swift Glibc module does not import on this platform.
///
/// `statx`, `llistxattr`, `lgetxattr` and `lsetxattr` are declared only under
/// `_GNU_SOURCE` or in headers the module map leaves out, so they are looked up
/// in the C library at run time. Their ABI is stable (glibc ≥ 2.28 for statx).
enum WriterLinux {
    static let seekData: Int32 = 3
    static let seekHole: Int32 = 4
    static let utimeOmit: Int = (1 << 30) - 2
    /// O_NOATIME (not imported by the Glibc module); same value on x86-64 and arm64.
    static let noAccessTime: Int32 = 0o1000000
    private static let statxBasicStats: UInt32 = 0x7FF
    private static let statxBirthTime: UInt32 = 0x800
    private static let statxBufferSize = 256

    private typealias StatxFunction = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UInt32, UnsafeMutableRawPointer) -> Int32
    private typealias ListXattrFunction = @convention(c) (UnsafePointer<CChar>, UnsafeMutablePointer<CChar>?, Int) -> Int
    private typealias GetXattrFunction = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int
    private typealias SetXattrFunction = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeRawPointer?, Int, Int32) -> Int32

    private struct Symbols: @unchecked Sendable {
        let statx: StatxFunction?
        let listXattr: ListXattrFunction?
        let getXattr: GetXattrFunction?
        let setXattr: SetXattrFunction?
    }

    private static let symbols: Symbols = {
        let handle = dlopen(nil, RTLD_NOW)
        func lookup<T>(_ name: String, as type: T.Type) -> T? {
            guard let pointer = dlsym(handle, name) else { return nil }
            return unsafeBitCast(pointer, to: type)
        }
        return Symbols(
            statx: lookup("statx", as: StatxFunction.self),
            listXattr: lookup("llistxattr", as: ListXattrFunction.self),
            getXattr: lookup("lgetxattr", as: GetXattrFunction.self),
            setXattr: lookup("lsetxattr", as: SetXattrFunction.self))
    }()

    private static func missingSymbol(_ name: String, path: String) -> CimError {
        CimError.io(path: path, offset: 0, errno: ENOSYS, what: name)
    }

    /// `statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, BASIC|BTIME)`.
    static func stat(_ path: String) throws -> WriterStat {
        guard let function = symbols.statx else { throw missingSymbol("statx", path: path) }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: statxBufferSize, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: statxBufferSize)
        let result = function(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, statxBasicStats | statxBirthTime, buffer)
        if result != 0 {
            let code = errno
            if code == ENOENT { throw CimError.missingFile(path: path) }
            if code == EACCES || code == EPERM { throw CimError.accessDenied(path: path) }
            throw CimError.io(path: path, offset: 0, errno: code, what: "statx")
        }
        // Offsets are those of `struct statx` in <linux/stat.h>.
        func time(_ offset: Int) -> WriterTimespec {
            WriterTimespec(seconds: buffer.load(fromByteOffset: offset, as: Int64.self),
                           nanoseconds: buffer.load(fromByteOffset: offset + 8, as: UInt32.self))
        }
        let mask = buffer.load(fromByteOffset: 0, as: UInt32.self)
        let devMajor = UInt64(buffer.load(fromByteOffset: 136, as: UInt32.self))
        let devMinor = UInt64(buffer.load(fromByteOffset: 140, as: UInt32.self))
        return WriterStat(
            mode: UInt32(buffer.load(fromByteOffset: 28, as: UInt16.self)),
            device: devMajor << 32 | devMinor,
            inode: buffer.load(fromByteOffset: 32, as: UInt64.self),
            linkCount: buffer.load(fromByteOffset: 16, as: UInt32.self),
            size: buffer.load(fromByteOffset: 40, as: UInt64.self),
            blocks: buffer.load(fromByteOffset: 48, as: UInt64.self),
            accessTime: time(64),
            birthTime: mask & statxBirthTime != 0 ? time(80) : nil,
            changeTime: time(96),
            modificationTime: time(112))
    }

    /// Names of the extended attributes of `path` (the link itself for symlinks).
    static func listXattrs(_ path: String) throws -> [String] {
        guard let function = symbols.listXattr else { throw missingSymbol("llistxattr", path: path) }
        while true {
            let size = function(path, nil, 0)
            if size < 0 {
                if errno == ENOTSUP { return [] }
                throw CimError.io(path: path, offset: 0, errno: errno, what: "llistxattr")
            }
            if size == 0 { return [] }
            var buffer = [CChar](repeating: 0, count: size)
            let got = function(path, &buffer, size)
            if got < 0 {
                if errno == ERANGE { continue }  // grew between the two calls
                throw CimError.io(path: path, offset: 0, errno: errno, what: "llistxattr")
            }
            var names: [String] = []
            var start = 0
            for index in 0..<got where buffer[index] == 0 {
                let bytes = buffer[start..<index].map { UInt8(bitPattern: $0) }
                guard let name = String(validating: bytes, as: UTF8.self) else {
                    throw CimError.invalidInput("\(path): extended attribute name is not valid UTF-8")
                }
                names.append(name)
                start = index + 1
            }
            return names
        }
    }

    /// The value of one extended attribute of `path` (not following symlinks).
    static func getXattr(_ path: String, name: String) throws -> [UInt8] {
        guard let function = symbols.getXattr else { throw missingSymbol("lgetxattr", path: path) }
        while true {
            let size = function(path, name, nil, 0)
            if size < 0 { throw CimError.io(path: path, offset: 0, errno: errno, what: "lgetxattr \(name)") }
            if size == 0 { return [] }
            var buffer = [UInt8](repeating: 0, count: size)
            let got = buffer.withUnsafeMutableBytes { function(path, name, $0.baseAddress, size) }
            if got < 0 {
                if errno == ERANGE { continue }
                throw CimError.io(path: path, offset: 0, errno: errno, what: "lgetxattr \(name)")
            }
            return Array(buffer[0..<got])
        }
    }

    /// Sets one extended attribute of `path` (not following symlinks).
    static func setXattr(_ path: String, name: String, value: [UInt8]) throws {
        guard let function = symbols.setXattr else { throw missingSymbol("lsetxattr", path: path) }
        let result = value.withUnsafeBytes { function(path, name, $0.baseAddress, value.count, 0) }
        if result != 0 {
            throw CimError.io(path: path, offset: 0, errno: errno, what: "lsetxattr \(name) (\(value.count) bytes)")
        }
    }
}
