#if canImport(Glibc)
import Glibc
#endif

/// Netlink constants used here (linux/netlink.h, linux/genetlink.h). Netlink integers are in
/// host byte order.
public enum Netlink {
    public static let NETLINK_GENERIC: Int32 = 16
    public static let SOL_NETLINK: Int32 = 270
    public static let NETLINK_ADD_MEMBERSHIP: Int32 = 1
    public static let NETLINK_EXT_ACK: Int32 = 11
    public static let NLM_F_REQUEST: UInt16 = 0x1
    public static let NLM_F_MULTI: UInt16 = 0x2
    public static let NLM_F_ACK: UInt16 = 0x4
    public static let NLMSG_NOOP: UInt16 = 1
    public static let NLMSG_ERROR: UInt16 = 2
    public static let NLMSG_DONE: UInt16 = 3
    public static let NLA_F_NESTED: UInt16 = 1 << 15
    public static let NLA_F_NET_BYTEORDER: UInt16 = 1 << 14
    public static let NLA_TYPE_MASK: UInt16 = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER)
    public static let headerSize = 16      // struct nlmsghdr
    public static let genlHeaderSize = 4   // struct genlmsghdr
    public static let GENL_ID_CTRL: UInt16 = 0x10
    public static let CTRL_CMD_GETFAMILY: UInt8 = 3
    public static let CTRL_ATTR_FAMILY_ID: UInt16 = 1
    public static let CTRL_ATTR_FAMILY_NAME: UInt16 = 2
    public static let CTRL_ATTR_VERSION: UInt16 = 3
    public static let CTRL_ATTR_MCAST_GROUPS: UInt16 = 7
    public static let CTRL_ATTR_MCAST_GRP_NAME: UInt16 = 1
    public static let CTRL_ATTR_MCAST_GRP_ID: UInt16 = 2

    /// NLA_ALIGN / NLMSG_ALIGN: round up to 4.
    public static func align(_ n: Int) -> Int { (n + 3) & ~3 }
}

/// One netlink attribute (struct nlattr + payload). Nested attributes keep their children
/// encoded in `payload`; build them with `nested(_:_:)` and read them with `children()`.
public struct NetlinkAttribute: Equatable, Sendable {
    /// The attribute type without the NLA_F_NESTED / NLA_F_NET_BYTEORDER bits.
    public var type: UInt16
    public var payload: [UInt8]
    /// NLA_F_NESTED is set on the wire.
    public var isNested: Bool

    public init(type: UInt16, payload: [UInt8], isNested: Bool = false) {
        self.type = type
        self.payload = payload
        self.isNested = isNested
    }

    public static func u8(_ type: UInt16, _ v: UInt8) -> Self { .init(type: type, payload: [v]) }
    public static func u16(_ type: UInt16, _ v: UInt16) -> Self { .init(type: type, payload: hostBytes(v)) }
    public static func u32(_ type: UInt16, _ v: UInt32) -> Self { .init(type: type, payload: hostBytes(v)) }
    public static func u64(_ type: UInt16, _ v: UInt64) -> Self { .init(type: type, payload: hostBytes(v)) }
    /// NUL-terminated string (NLA_STRING / NLA_NUL_STRING).
    public static func string(_ type: UInt16, _ s: String) -> Self { .init(type: type, payload: Array(s.utf8) + [0]) }
    public static func nested(_ type: UInt16, _ children: [NetlinkAttribute]) -> Self {
        .init(type: type, payload: children.flatMap { $0.encoded() }, isNested: true)
    }

    /// nla_len = 4 + payload (unpadded); the encoding is padded to 4 bytes.
    public func encoded() -> [UInt8] {
        let len = 4 + payload.count
        let wireType: UInt16 = type | (isNested ? Netlink.NLA_F_NESTED : 0)
        var out: [UInt8] = hostBytes(UInt16(len))
        out += hostBytes(wireType)
        out += payload
        out += [UInt8](repeating: 0, count: Netlink.align(len) - len)
        return out
    }

    /// Parses a run of attributes (e.g. the payload after the genl header).
    public static func parse<C: Collection>(_ bytes: C) throws -> [NetlinkAttribute] where C.Element == UInt8 {
        let b = Array(bytes)
        var out: [NetlinkAttribute] = []
        var pos = 0
        while pos + 4 <= b.count {
            let len = Int(readHost(UInt16.self, b, pos))
            let rawType = readHost(UInt16.self, b, pos + 2)
            guard len >= 4, pos + len <= b.count else {
                throw NBDKernelError.netlinkProtocol("attribute of length \(len) at offset \(pos) in \(b.count) bytes")
            }
            out.append(NetlinkAttribute(type: rawType & Netlink.NLA_TYPE_MASK, payload: Array(b[(pos + 4)..<(pos + len)]),
                                        isNested: rawType & Netlink.NLA_F_NESTED != 0))
            pos += Netlink.align(len)
        }
        return out
    }

    public func children() throws -> [NetlinkAttribute] { try Self.parse(payload) }

    public var u8Value: UInt8? { payload.count >= 1 ? payload[0] : nil }
    public var u16Value: UInt16? { payload.count >= 2 ? readHost(UInt16.self, payload, 0) : nil }
    public var u32Value: UInt32? { payload.count >= 4 ? readHost(UInt32.self, payload, 0) : nil }
    public var u64Value: UInt64? { payload.count >= 8 ? readHost(UInt64.self, payload, 0) : nil }
    public var stringValue: String {
        String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self)
    }
}

extension Array where Element == NetlinkAttribute {
    public func first(type: UInt16) -> NetlinkAttribute? { first { $0.type == type } }
}

/// A generic netlink message: nlmsghdr + genlmsghdr + attributes.
public struct GenericNetlinkMessage: Equatable, Sendable {
    public var family: UInt16       // nlmsg_type
    public var flags: UInt16
    public var sequence: UInt32
    public var portID: UInt32
    public var command: UInt8
    public var version: UInt8
    public var attributes: [NetlinkAttribute]

    public init(family: UInt16, flags: UInt16 = Netlink.NLM_F_REQUEST | Netlink.NLM_F_ACK, sequence: UInt32 = 0,
                portID: UInt32 = 0, command: UInt8, version: UInt8 = 1, attributes: [NetlinkAttribute] = []) {
        self.family = family
        self.flags = flags
        self.sequence = sequence
        self.portID = portID
        self.command = command
        self.version = version
        self.attributes = attributes
    }

    public func encoded() -> [UInt8] {
        var body: [UInt8] = [command, version, 0, 0]
        for a in attributes { body += a.encoded() }
        let len = Netlink.headerSize + body.count
        var out: [UInt8] = hostBytes(UInt32(len))
        out += hostBytes(family)
        out += hostBytes(flags)
        out += hostBytes(sequence)
        out += hostBytes(portID)
        out += body
        return out
    }
}

/// One message read from a netlink socket.
public enum NetlinkReply: Equatable, Sendable {
    case message(GenericNetlinkMessage)
    /// NLMSG_ERROR: errno 0 is an ACK. `errno` is positive here.
    case error(sequence: UInt32, errno: Int32, extAckMessage: String?)
    case done(sequence: UInt32)

    /// Splits a datagram into messages.
    public static func parse(_ bytes: [UInt8]) throws -> [NetlinkReply] {
        var out: [NetlinkReply] = []
        var pos = 0
        while pos + Netlink.headerSize <= bytes.count {
            let len = Int(readHost(UInt32.self, bytes, pos))
            guard len >= Netlink.headerSize, pos + len <= bytes.count else {
                throw NBDKernelError.netlinkProtocol("message of length \(len) at offset \(pos) in \(bytes.count) bytes")
            }
            let type = readHost(UInt16.self, bytes, pos + 4)
            let flags = readHost(UInt16.self, bytes, pos + 6)
            let seq = readHost(UInt32.self, bytes, pos + 8)
            let pid = readHost(UInt32.self, bytes, pos + 12)
            let body = Array(bytes[(pos + Netlink.headerSize)..<(pos + len)])
            switch type {
            case Netlink.NLMSG_ERROR:
                guard body.count >= 4 else { throw NBDKernelError.netlinkProtocol("short NLMSG_ERROR") }
                let err = Int32(bitPattern: readHost(UInt32.self, body, 0))
                var ext: String?
                // NLM_F_ACK_TLVS (0x200): extended ack attributes follow the (capped) original message.
                if flags & 0x200 != 0, body.count >= 4 + Netlink.headerSize {
                    let origLen = Int(readHost(UInt32.self, body, 4))
                    let capped = flags & 0x100 != 0  // NLM_F_CAPPED: only the header was echoed
                    let skip = 4 + (capped ? Netlink.headerSize : Netlink.align(origLen))
                    if skip <= body.count, let attrs = try? NetlinkAttribute.parse(body[skip...]),
                       let msg = attrs.first(type: 1) {  // NLMSGERR_ATTR_MSG
                        ext = msg.stringValue
                    }
                }
                out.append(.error(sequence: seq, errno: -err, extAckMessage: ext))
            case Netlink.NLMSG_DONE:
                out.append(.done(sequence: seq))
            case Netlink.NLMSG_NOOP:
                break
            default:
                guard body.count >= Netlink.genlHeaderSize else { throw NBDKernelError.netlinkProtocol("short generic netlink message") }
                let attrs = try NetlinkAttribute.parse(body[Netlink.genlHeaderSize...])
                out.append(.message(GenericNetlinkMessage(family: type, flags: flags, sequence: seq, portID: pid,
                                                          command: body[0], version: body[1], attributes: attrs)))
            }
            pos += Netlink.align(len)
        }
        return out
    }
}

/// A raw AF_NETLINK / NETLINK_GENERIC socket.
public final class GenericNetlinkSocket {
    public let fd: Int32
    private var nextSequence: UInt32

    public init() throws {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Netlink.NETLINK_GENERIC)
        guard fd >= 0 else { throw NBDKernelError.system(call: "socket(AF_NETLINK, NETLINK_GENERIC)", errno: errno) }
        // Bind to get a unique port id. An unbound socket has port id 0, the kernel's own,
        // and netlink_broadcast skips it: multicast events (NBD_CMD_LINK_DEAD) would never arrive.
        // struct sockaddr_nl { u16 nl_family; u16 nl_pad; u32 nl_pid = 0 (autobind); u32 nl_groups = 0 }
        var addr = [UInt8](repeating: 0, count: 12)
        addr[0] = UInt8(AF_NETLINK & 0xff)
        addr[1] = UInt8((AF_NETLINK >> 8) & 0xff)
        let rc = addr.withUnsafeBytes { raw in
            Glibc.bind(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
        }
        guard rc == 0 else {
            let e = errno
            _ = Glibc.close(fd)
            throw NBDKernelError.system(call: "bind(AF_NETLINK)", errno: e)
        }
        self.fd = fd
        var one: Int32 = 1
        _ = setsockopt(fd, Netlink.SOL_NETLINK, Netlink.NETLINK_EXT_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        self.nextSequence = UInt32(truncatingIfNeeded: time(nil))
    }

    deinit { _ = Glibc.close(fd) }

    /// Sends a request and collects the replies until the ACK (or error) for its sequence number.
    /// Returns the data messages. Throws `.netlink(command:errno:)` for an NLMSG_ERROR.
    public func request(_ message: GenericNetlinkMessage, commandName: String, timeout: Double = 30) throws -> [GenericNetlinkMessage] {
        var msg = message
        nextSequence &+= 1
        msg.sequence = nextSequence
        msg.flags |= Netlink.NLM_F_REQUEST | Netlink.NLM_F_ACK
        let bytes = msg.encoded()
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, bytes.count, 0) }
        guard n == bytes.count else { throw NBDKernelError.system(call: "send(netlink \(commandName))", errno: errno) }
        var replies: [GenericNetlinkMessage] = []
        while true {
            for reply in try NetlinkReply.parse(try receive(timeout: timeout, what: commandName)) {
                switch reply {
                case .message(let m) where m.sequence == msg.sequence:
                    replies.append(m)
                case .error(let seq, let err, let ext) where seq == msg.sequence:
                    if err == 0 { return replies }
                    if let ext, !ext.isEmpty { writeToStderr("netlink \(commandName): kernel says: \(ext)") }
                    throw NBDKernelError.netlink(command: commandName, errno: err)
                case .done(let seq) where seq == msg.sequence:
                    return replies
                default:
                    continue  // multicast or stale replies
                }
            }
        }
    }

    /// Reads one datagram (waits at most `timeout` seconds; nil = forever).
    public func receive(timeout: Double?, what: String) throws -> [UInt8] {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let rc = poll(&pfd, 1, timeout.map { Int32($0 * 1000) } ?? -1)
            if rc > 0 { break }
            if rc == 0 { throw NBDKernelError.netlink(command: what, errno: ETIMEDOUT) }
            if errno != EINTR { throw NBDKernelError.system(call: "poll(netlink)", errno: errno) }
        }
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
        guard n >= 0 else { throw NBDKernelError.system(call: "recv(netlink)", errno: errno) }
        return Array(buf.prefix(n))
    }

    public func addMembership(group: UInt32) throws {
        var g = group
        guard setsockopt(fd, Netlink.SOL_NETLINK, Netlink.NETLINK_ADD_MEMBERSHIP, &g, socklen_t(MemoryLayout<UInt32>.size)) == 0 else {
            throw NBDKernelError.system(call: "setsockopt(NETLINK_ADD_MEMBERSHIP)", errno: errno)
        }
    }

    /// A generic netlink family as the controller describes it.
    public struct Family: Equatable, Sendable {
        public var id: UInt16
        public var version: UInt32
        public var multicastGroups: [String: UInt32]
    }

    /// CTRL_CMD_GETFAMILY. Returns nil when the family is not registered (ENOENT).
    public func resolveFamily(_ name: String) throws -> Family? {
        let req = GenericNetlinkMessage(family: Netlink.GENL_ID_CTRL, command: Netlink.CTRL_CMD_GETFAMILY, version: 1,
                                        attributes: [.string(Netlink.CTRL_ATTR_FAMILY_NAME, name)])
        let replies: [GenericNetlinkMessage]
        do {
            replies = try request(req, commandName: "CTRL_CMD_GETFAMILY(\(name))")
        } catch NBDKernelError.netlink(_, let err) where err == ENOENT {
            return nil
        }
        guard let reply = replies.first, let id = reply.attributes.first(type: Netlink.CTRL_ATTR_FAMILY_ID)?.u16Value else {
            throw NBDKernelError.netlinkProtocol("CTRL_CMD_GETFAMILY reply without CTRL_ATTR_FAMILY_ID")
        }
        return Family(id: id, version: reply.attributes.first(type: Netlink.CTRL_ATTR_VERSION)?.u32Value ?? 0,
                      multicastGroups: try Self.multicastGroups(reply.attributes))
    }

    static func multicastGroups(_ attrs: [NetlinkAttribute]) throws -> [String: UInt32] {
        var groups: [String: UInt32] = [:]
        guard let list = attrs.first(type: Netlink.CTRL_ATTR_MCAST_GROUPS) else { return groups }
        for item in try list.children() {
            let fields = try item.children()
            if let name = fields.first(type: Netlink.CTRL_ATTR_MCAST_GRP_NAME)?.stringValue,
               let id = fields.first(type: Netlink.CTRL_ATTR_MCAST_GRP_ID)?.u32Value {
                groups[name] = id
            }
        }
        return groups
    }
}

// MARK: host byte order helpers

@inline(__always) func hostBytes<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
    withUnsafeBytes(of: v) { Array($0) }
}

@inline(__always) func readHost<T: FixedWidthInteger>(_: T.Type, _ b: [UInt8], _ offset: Int) -> T {
    var v: T = 0
    withUnsafeMutableBytes(of: &v) { dst in
        for i in 0..<MemoryLayout<T>.size { dst[i] = b[offset + i] }
    }
    return v
}
