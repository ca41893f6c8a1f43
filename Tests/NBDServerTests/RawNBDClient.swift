import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A byte-level NBD client on a blocking TCP socket, for sending what libnbd
/// never would. Reads time out after a few seconds so a hung server fails the
/// test instead of blocking it.
final class RawNBDClient {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    struct OptionReply {
        var option: UInt32
        var type: UInt32
        var data: [UInt8]
        var text: String { String(decoding: data, as: UTF8.self) }
    }

    private var fd: Int32

    /// Connects to 127.0.0.1:`port`. `bufferSizes` (receive, send) are set
    /// before connecting, so that TCP's window scale can use them.
    init(port: Int, bufferSizes: (receive: Int32, send: Int32)? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        if let bufferSizes { setBufferSizes(receive: bufferSizes.receive, send: bufferSizes.send) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port)).bigEndian
        address.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw Failure(description: "connect: errno \(errno)")
        }
    }

    deinit { closeNow() }

    /// Closes the socket at once (replies not read are dropped).
    func closeNow() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    /// Kernel buffer sizes (as root beyond the sysctl limits), so that a flood
    /// can be sent, and answered, without anybody reading.
    private func setBufferSizes(receive: Int32, send: Int32) {
        var receive = receive, send = send
        let size = socklen_t(MemoryLayout<Int32>.size)
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receive, size) != 0 { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive, size) }
        if setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &send, size) != 0 { setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send, size) }
    }

    /// Bytes received by the kernel and not read yet.
    func queuedBytes() -> Int {
        var count: Int32 = 0
        return ioctl(fd, UInt(FIONREAD), &count) == 0 ? Int(count) : -1
    }

    /// Reads `count` bytes; nil on EOF (or reset) before the first byte; fewer
    /// bytes when the connection ends part-way.
    func receiveUnlessClosed(_ count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer.withUnsafeMutableBytes { raw in recv(fd, raw.baseAddress! + got, count - got, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            got += n
        }
        if got == 0 { return nil }
        return Array(buffer.prefix(got))
    }

    /// Reads and drops up to `count` bytes; returns how many arrived before
    /// EOF, an error or the read timeout.
    func receiveCounting(_ count: Int) -> Int {
        var scratch = [UInt8](repeating: 0, count: 1 << 20)
        var got = 0
        while got < count {
            let n = scratch.withUnsafeMutableBytes { raw in recv(fd, raw.baseAddress!, min(raw.count, count - got), 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            got += n
        }
        return got
    }

    /// `count` request headers in one buffer (handles 0, 1, 2, ...).
    static func requests(count: Int, type: UInt16, flags: UInt16 = 0, length: UInt32, offset: (UInt64) -> UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count * 28)
        bytes.withUnsafeMutableBytes { raw in
            for index in 0..<count {
                let base = index * 28
                raw.storeBytes(of: UInt32(0x2560_9513).bigEndian, toByteOffset: base, as: UInt32.self)
                raw.storeBytes(of: flags.bigEndian, toByteOffset: base + 4, as: UInt16.self)
                raw.storeBytes(of: type.bigEndian, toByteOffset: base + 6, as: UInt16.self)
                raw.storeBytes(of: UInt64(index).bigEndian, toByteOffset: base + 8, as: UInt64.self)
                raw.storeBytes(of: offset(UInt64(index)).bigEndian, toByteOffset: base + 16, as: UInt64.self)
                raw.storeBytes(of: length.bigEndian, toByteOffset: base + 24, as: UInt32.self)
            }
        }
        return bytes
    }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "send: errno \(errno)")
            }
            sent += n
        }
    }

    /// Reads exactly `count` bytes; throws on EOF or timeout.
    func receive(_ count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer.withUnsafeMutableBytes { raw in
                recv(fd, raw.baseAddress! + got, count - got, 0)
            }
            if n == 0 { throw Failure(description: "EOF after \(got) of \(count) bytes") }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "recv: errno \(errno)")
            }
            got += n
        }
        return buffer
    }

    /// True when the server closed the connection (EOF or reset) before the
    /// read timeout, discarding any bytes that still arrive first.
    func closedByServer() -> Bool {
        var scratch = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 {
                if errno == EINTR { continue }
                return errno == ECONNRESET
            }
        }
    }

    // MARK: Handshake

    /// Reads the greeting and returns the handshake flags.
    func readGreeting() throws -> UInt16 {
        let greeting = try receive(18)
        guard Array(greeting[0..<8]) == Array("NBDMAGIC".utf8), Array(greeting[8..<16]) == Array("IHAVEOPT".utf8) else {
            throw Failure(description: "not a newstyle greeting: \(greeting)")
        }
        return UInt16(greeting[16]) << 8 | UInt16(greeting[17])
    }

    /// Greeting plus client flags (fixed newstyle + no zeroes by default).
    func handshake(clientFlags: UInt32 = 3) throws {
        _ = try readGreeting()
        try send(Self.be32(clientFlags))
    }

    func sendOption(_ option: UInt32, data: [UInt8] = [], declaredLength: UInt32? = nil) throws {
        try send(Array("IHAVEOPT".utf8) + Self.be32(option) + Self.be32(declaredLength ?? UInt32(data.count)) + data)
    }

    func readOptionReply() throws -> OptionReply {
        let header = try receive(20)
        let magic = Self.readBE64(header, 0)
        guard magic == 0x0003_e889_0455_65a9 else { throw Failure(description: "bad option reply magic \(magic)") }
        let length = Self.readBE32(header, 16)
        return OptionReply(option: Self.readBE32(header, 8), type: Self.readBE32(header, 12), data: try receive(Int(length)))
    }

    /// Sends NBD_OPT_LIST and returns the export names, checking the final ACK.
    func list() throws -> [String] {
        try sendOption(3)
        var names: [String] = []
        while true {
            let reply = try readOptionReply()
            if reply.type == 1 { return names }
            guard reply.type == 2, reply.data.count >= 4 else { throw Failure(description: "unexpected LIST reply \(reply.type)") }
            let length = Int(Self.readBE32(reply.data, 0))
            names.append(String(decoding: reply.data[4..<(4 + length)], as: UTF8.self))
        }
    }

    /// Enters transmission with NBD_OPT_EXPORT_NAME; returns (size, flags).
    func exportName(_ name: String, noZeroes: Bool = true) throws -> (UInt64, UInt16) {
        try sendOption(1, data: Array(name.utf8))
        let reply = try receive(noZeroes ? 10 : 134)
        if !noZeroes { precondition(reply[10...].allSatisfy { $0 == 0 }) }
        return (Self.readBE64(reply, 0), UInt16(reply[8]) << 8 | UInt16(reply[9]))
    }

    // MARK: Transmission

    func sendRequest(type: UInt16, flags: UInt16 = 0, handle: UInt64, offset: UInt64, length: UInt32, magic: UInt32 = 0x2560_9513) throws {
        try send(Self.be32(magic) + Self.be16(flags) + Self.be16(type) + Self.be64(handle) + Self.be64(offset) + Self.be32(length))
    }

    /// Reads a simple reply header: (error, handle).
    func readSimpleReply() throws -> (error: UInt32, handle: UInt64) {
        let header = try receive(16)
        let magic = Self.readBE32(header, 0)
        guard magic == 0x6744_6698 else { throw Failure(description: "bad simple reply magic \(String(magic, radix: 16))") }
        return (Self.readBE32(header, 4), Self.readBE64(header, 8))
    }

    // MARK: Byte helpers

    static func be16(_ value: UInt16) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
    static func be32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
    static func be64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
    static func readBE32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        bytes[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }
    static func readBE64(_ bytes: [UInt8], _ at: Int) -> UInt64 {
        bytes[at..<(at + 8)].reduce(0) { $0 << 8 | UInt64($1) }
    }
}
