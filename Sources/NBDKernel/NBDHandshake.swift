#if canImport(Glibc)
import Glibc
#endif

/// What NBD_OPT_GO (NBD_INFO_EXPORT) told us about an export.
public struct NBDExportInfo: Equatable, Sendable {
    /// Size in bytes.
    public var size: UInt64
    /// Transmission flags (NBD_FLAG_HAS_FLAGS, NBD_FLAG_READ_ONLY, …), as the kernel wants them
    /// in NBD_ATTR_SERVER_FLAGS / NBD_SET_FLAGS.
    public var transmissionFlags: UInt16

    public init(size: UInt64, transmissionFlags: UInt16) {
        self.size = size
        self.transmissionFlags = transmissionFlags
    }

    public var isReadOnly: Bool { transmissionFlags & NBDProtocol.flagReadOnly != 0 }
    public var canMultiConn: Bool { transmissionFlags & NBDProtocol.flagCanMultiConn != 0 }
}

/// Protocol constants (NetworkBlockDevice/nbd doc/proto.md).
public enum NBDProtocol {
    public static let initMagic: UInt64 = 0x4e42_444d_4147_4943      // "NBDMAGIC"
    public static let optionMagic: UInt64 = 0x4948_4156_454f_5054    // "IHAVEOPT"
    public static let replyMagic: UInt64 = 0x0003_e889_0455_65a9
    public static let handshakeFixedNewstyle: UInt16 = 1 << 0
    public static let handshakeNoZeroes: UInt16 = 1 << 1
    public static let optExportName: UInt32 = 1
    public static let optAbort: UInt32 = 2
    public static let optGo: UInt32 = 7
    public static let repAck: UInt32 = 1
    public static let repInfo: UInt32 = 3
    public static let repErrUnsup: UInt32 = 0x8000_0001
    public static let repErrPolicy: UInt32 = 0x8000_0002
    public static let repErrInvalid: UInt32 = 0x8000_0003
    public static let repErrPlatform: UInt32 = 0x8000_0004
    public static let repErrTLSReqd: UInt32 = 0x8000_0005
    public static let repErrUnknown: UInt32 = 0x8000_0006
    public static let repErrShutdown: UInt32 = 0x8000_0007
    public static let repErrBlockSizeReqd: UInt32 = 0x8000_0008
    public static let repErrTooBig: UInt32 = 0x8000_0009
    public static let infoExport: UInt16 = 0
    public static let infoBlockSize: UInt16 = 3
    public static let flagHasFlags: UInt16 = 1 << 0
    public static let flagReadOnly: UInt16 = 1 << 1
    public static let flagSendFlush: UInt16 = 1 << 2
    public static let flagSendTrim: UInt16 = 1 << 5
    public static let flagCanMultiConn: UInt16 = 1 << 8

    /// Text for an NBD_REP_ERR_* code.
    public static func replyErrorName(_ code: UInt32) -> String {
        switch code {
        case repErrUnsup: return "NBD_REP_ERR_UNSUP"
        case repErrPolicy: return "NBD_REP_ERR_POLICY"
        case repErrInvalid: return "NBD_REP_ERR_INVALID"
        case repErrPlatform: return "NBD_REP_ERR_PLATFORM"
        case repErrTLSReqd: return "NBD_REP_ERR_TLS_REQD (the server requires TLS)"
        case repErrUnknown: return "NBD_REP_ERR_UNKNOWN"
        case repErrShutdown: return "NBD_REP_ERR_SHUTDOWN"
        case repErrBlockSizeReqd: return "NBD_REP_ERR_BLOCK_SIZE_REQD"
        case repErrTooBig: return "NBD_REP_ERR_TOO_BIG"
        default: return "error reply 0x\(String(code, radix: 16))"
        }
    }
}

/// A socket that finished the NBD handshake and is in the transmission phase: ready to
/// hand to the kernel. Closes the descriptor when released unless `takeDescriptor()` was called.
public final class NBDConnection {
    public private(set) var fd: Int32
    public let info: NBDExportInfo
    public let server: NBDServerAddress

    init(fd: Int32, info: NBDExportInfo, server: NBDServerAddress) {
        self.fd = fd
        self.info = info
        self.server = server
    }

    /// Gives up ownership: the caller closes the descriptor.
    public func takeDescriptor() -> Int32 {
        let d = fd
        fd = -1
        return d
    }

    public func close() {
        if fd >= 0 { _ = Glibc.close(fd); fd = -1 }
    }

    deinit { close() }
}

/// A small blocking NBD client that performs the fixed-newstyle handshake only.
public enum NBDHandshake {
    /// Connects to `server`, negotiates `exportName` with NBD_OPT_GO (falling back to
    /// NBD_OPT_EXPORT_NAME when the server does not know NBD_OPT_GO), and returns the socket in
    /// the transmission phase. `timeout` bounds connect and every read/write of the handshake.
    public static func connect(to server: NBDServerAddress, exportName: String, timeout: Double = 10) throws -> NBDConnection {
        let fd = try openSocket(server, timeout: timeout)
        var ok = false
        defer { if !ok { _ = Glibc.close(fd) } }
        let io = HandshakeIO(fd: fd, server: server.endpointDescription, timeout: timeout)
        let info = try negotiate(io, exportName: exportName)
        ok = true
        return NBDConnection(fd: fd, info: info, server: server)
    }

    static func negotiate(_ io: HandshakeIO, exportName: String) throws -> NBDExportInfo {
        let magic = try io.readU64()
        guard magic == NBDProtocol.initMagic else {
            throw io.protocolError("not an NBD server (bad initial magic 0x\(String(magic, radix: 16)))")
        }
        let second = try io.readU64()
        guard second == NBDProtocol.optionMagic else {
            if second == 0x0000_4202_8186_1253 {
                throw io.protocolError("server speaks the old-style handshake, which has no export names")
            }
            throw io.protocolError("bad option magic 0x\(String(second, radix: 16))")
        }
        let handshakeFlags = try io.readU16()
        guard handshakeFlags & NBDProtocol.handshakeFixedNewstyle != 0 else {
            throw io.protocolError("server does not support fixed newstyle negotiation")
        }
        let noZeroes = handshakeFlags & NBDProtocol.handshakeNoZeroes != 0
        var clientFlags: UInt32 = 1  // NBD_FLAG_C_FIXED_NEWSTYLE
        if noZeroes { clientFlags |= 2 }  // NBD_FLAG_C_NO_ZEROES
        var out = ByteWriter()
        out.u32(clientFlags)
        try io.write(out.bytes)

        // NBD_OPT_GO: u32 name length, name, u16 number of info requests, u16 each.
        let name = Array(exportName.utf8)
        var opt = ByteWriter()
        opt.u64(NBDProtocol.optionMagic)
        opt.u32(NBDProtocol.optGo)
        opt.u32(UInt32(4 + name.count + 2 + 2))
        opt.u32(UInt32(name.count))
        opt.append(name)
        opt.u16(1)
        opt.u16(NBDProtocol.infoExport)
        try io.write(opt.bytes)

        var info: NBDExportInfo?
        while true {
            let (type, data) = try readOptionReply(io, option: NBDProtocol.optGo)
            switch type {
            case NBDProtocol.repInfo:
                guard data.count >= 2 else { throw io.protocolError("short NBD_REP_INFO") }
                var r = ByteReader(data)
                let infoType = try r.u16()
                if infoType == NBDProtocol.infoExport {
                    guard data.count >= 12 else { throw io.protocolError("short NBD_INFO_EXPORT") }
                    info = NBDExportInfo(size: try r.u64(), transmissionFlags: try r.u16())
                }
            case NBDProtocol.repAck:
                guard let info else { throw io.protocolError("NBD_OPT_GO acknowledged without NBD_INFO_EXPORT") }
                return info
            case NBDProtocol.repErrUnsup:
                // An old server without NBD_OPT_GO: NBD_OPT_EXPORT_NAME has no error path.
                return try exportNameFallback(io, name: name, noZeroes: noZeroes, exportName: exportName)
            case NBDProtocol.repErrUnknown:
                throw NBDKernelError.unknownExport(name: exportName, server: io.server, detail: String(decoding: data, as: UTF8.self))
            case NBDProtocol.repErrTLSReqd:
                throw NBDKernelError.tlsRequired(server: io.server)
            default:
                if type & 0x8000_0000 != 0 {
                    let msg = String(decoding: data, as: UTF8.self)
                    if type == NBDProtocol.repErrPolicy || type == NBDProtocol.repErrInvalid {
                        // nbdkit's exportname filter and others answer a wrong name this way.
                        throw NBDKernelError.unknownExport(name: exportName, server: io.server,
                            detail: NBDProtocol.replyErrorName(type) + (msg.isEmpty ? "" : ": \(msg)"))
                    }
                    throw io.protocolError("server refused NBD_OPT_GO: \(NBDProtocol.replyErrorName(type))" + (msg.isEmpty ? "" : ": \(msg)"))
                }
                // Unknown non-error replies are to be ignored.
            }
        }
    }

    private static func exportNameFallback(_ io: HandshakeIO, name: [UInt8], noZeroes: Bool, exportName: String) throws -> NBDExportInfo {
        var opt = ByteWriter()
        opt.u64(NBDProtocol.optionMagic)
        opt.u32(NBDProtocol.optExportName)
        opt.u32(UInt32(name.count))
        opt.append(name)
        try io.write(opt.bytes)
        let data: [UInt8]
        do {
            data = try io.read(10)
        } catch NBDKernelError.serverUnreachable {
            throw NBDKernelError.unknownExport(name: exportName, server: io.server, detail: "server closed the connection after NBD_OPT_EXPORT_NAME")
        }
        var r = ByteReader(data)
        let info = NBDExportInfo(size: try r.u64(), transmissionFlags: try r.u16())
        if !noZeroes { _ = try io.read(124) }
        return info
    }

    private static func readOptionReply(_ io: HandshakeIO, option: UInt32) throws -> (UInt32, [UInt8]) {
        let header = try io.read(20)
        var r = ByteReader(header)
        let magic = try r.u64()
        guard magic == NBDProtocol.replyMagic else { throw io.protocolError("bad option reply magic 0x\(String(magic, radix: 16))") }
        let opt = try r.u32()
        guard opt == option else { throw io.protocolError("reply for option \(opt), expected \(option)") }
        let type = try r.u32()
        let length = try r.u32()
        guard length <= 1 << 20 else { throw io.protocolError("option reply of \(length) bytes") }
        return (type, try io.read(Int(length)))
    }

    // MARK: sockets

    static func openSocket(_ server: NBDServerAddress, timeout: Double) throws -> Int32 {
        let desc = server.endpointDescription
        switch server.endpoint {
        case .unix(let path):
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw NBDKernelError.system(call: "socket(AF_UNIX)", errno: errno) }
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
                _ = Glibc.close(fd)
                throw NBDKernelError.invalidArgument("socket path too long: \(path)")
            }
            withUnsafeMutableBytes(of: &addr.sun_path) { buf in
                for (i, b) in bytes.enumerated() { buf[i] = b }
                buf[bytes.count] = 0
            }
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            if rc != 0 {
                let e = errno
                _ = Glibc.close(fd)
                throw NBDKernelError.serverUnreachable(server: desc, reason: errnoText(e))
            }
            return fd
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var res: UnsafeMutablePointer<addrinfo>?
            let gai = getaddrinfo(host, String(port), &hints, &res)
            guard gai == 0, let first = res else {
                throw NBDKernelError.serverUnreachable(server: desc, reason: "cannot resolve \(host): \(String(cString: gai_strerror(gai)))")
            }
            defer { freeaddrinfo(first) }
            var lastError: Int32 = ECONNREFUSED
            var cur: UnsafeMutablePointer<addrinfo>? = first
            while let ai = cur {
                cur = ai.pointee.ai_next
                let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), ai.pointee.ai_protocol)
                if fd < 0 { lastError = errno; continue }
                if let e = connectWithTimeout(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen, timeout: timeout) {
                    lastError = e
                    _ = Glibc.close(fd)
                    continue
                }
                var one: Int32 = 1
                _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return fd
            }
            throw NBDKernelError.serverUnreachable(server: desc, reason: errnoText(lastError))
        }
    }

    /// Non-blocking connect bounded by `timeout`; leaves the socket blocking. Returns errno on failure.
    private static func connectWithTimeout(_ fd: Int32, _ addr: UnsafeMutablePointer<sockaddr>?, _ len: socklen_t, timeout: Double) -> Int32? {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(fd, F_SETFL, flags) }
        if Glibc.connect(fd, addr, len) == 0 { return nil }
        guard errno == EINPROGRESS else { return errno }
        var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let rc = poll(&pfd, 1, Int32(timeout * 1000))
        if rc == 0 { return ETIMEDOUT }
        if rc < 0 { return errno }
        var soError: Int32 = 0
        var sl = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &sl)
        return soError == 0 ? nil : soError
    }
}

/// Blocking reads and writes with a poll timeout (no SO_RCVTIMEO: the kernel would inherit it).
struct HandshakeIO {
    let fd: Int32
    let server: String
    let timeout: Double

    func protocolError(_ detail: String) -> NBDKernelError { .handshake(server: server, detail: detail) }

    private func waitFor(_ events: Int32) throws {
        var pfd = pollfd(fd: fd, events: Int16(events), revents: 0)
        while true {
            let rc = poll(&pfd, 1, Int32(timeout * 1000))
            if rc > 0 { return }
            if rc == 0 { throw NBDKernelError.serverUnreachable(server: server, reason: "no answer within \(timeout)s during the handshake") }
            if errno != EINTR { throw NBDKernelError.system(call: "poll", errno: errno) }
        }
    }

    func read(_ count: Int) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            try waitFor(Int32(POLLIN))
            let n = buf.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress! + got, count - got, 0) }
            if n == 0 { throw NBDKernelError.serverUnreachable(server: server, reason: "the server closed the connection during the handshake") }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw NBDKernelError.serverUnreachable(server: server, reason: errnoText(errno))
            }
            got += n
        }
        return buf
    }

    func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            try waitFor(Int32(POLLOUT))
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw NBDKernelError.serverUnreachable(server: server, reason: errnoText(errno))
            }
            sent += n
        }
    }

    func readU64() throws -> UInt64 { var r = ByteReader(try read(8)); return try r.u64() }
    func readU16() throws -> UInt16 { var r = ByteReader(try read(2)); return try r.u16() }
}

/// Big-endian writer (the NBD wire order).
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xff)) }
    mutating func u32(_ v: UInt32) { for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8((v >> UInt32(s)) & 0xff)) } }
    mutating func u64(_ v: UInt64) { for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((v >> UInt64(s)) & 0xff)) } }
    mutating func append(_ b: [UInt8]) { bytes += b }
}

/// Big-endian reader.
struct ByteReader {
    let data: [UInt8]
    var pos = 0
    init(_ data: [UInt8]) { self.data = data }
    mutating func u16() throws -> UInt16 {
        guard pos + 2 <= data.count else { throw NBDKernelError.handshake(server: "", detail: "short read") }
        defer { pos += 2 }
        return UInt16(data[pos]) << 8 | UInt16(data[pos + 1])
    }
    mutating func u32() throws -> UInt32 {
        guard pos + 4 <= data.count else { throw NBDKernelError.handshake(server: "", detail: "short read") }
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(data[pos + i]) }
        pos += 4
        return v
    }
    mutating func u64() throws -> UInt64 {
        guard pos + 8 <= data.count else { throw NBDKernelError.handshake(server: "", detail: "short read") }
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(data[pos + i]) }
        pos += 8
        return v
    }
}
