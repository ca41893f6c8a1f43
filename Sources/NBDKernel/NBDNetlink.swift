#if canImport(Glibc)
import Glibc
#endif

/// The kernel's generic netlink family "nbd" (linux/nbd-netlink.h).
public enum NBDNetlinkConstants {
    public static let familyName = "nbd"
    public static let multicastGroupName = "nbd_mc_group"
    public static let version: UInt8 = 1
    // commands
    public static let CMD_CONNECT: UInt8 = 1
    public static let CMD_DISCONNECT: UInt8 = 2
    public static let CMD_RECONFIGURE: UInt8 = 3
    public static let CMD_LINK_DEAD: UInt8 = 4
    public static let CMD_STATUS: UInt8 = 5
    // NBD_ATTR_*
    public static let ATTR_INDEX: UInt16 = 1
    public static let ATTR_SIZE_BYTES: UInt16 = 2
    public static let ATTR_BLOCK_SIZE_BYTES: UInt16 = 3
    public static let ATTR_TIMEOUT: UInt16 = 4
    public static let ATTR_SERVER_FLAGS: UInt16 = 5
    public static let ATTR_CLIENT_FLAGS: UInt16 = 6
    public static let ATTR_SOCKETS: UInt16 = 7
    public static let ATTR_DEAD_CONN_TIMEOUT: UInt16 = 8
    public static let ATTR_DEVICE_LIST: UInt16 = 9
    public static let ATTR_BACKEND_IDENTIFIER: UInt16 = 10
    // nested
    public static let SOCK_ITEM: UInt16 = 1
    public static let SOCK_FD: UInt16 = 1
    public static let DEVICE_ITEM: UInt16 = 1
    public static let DEVICE_INDEX: UInt16 = 1
    public static let DEVICE_CONNECTED: UInt16 = 2
}

/// Parameters of NBD_CMD_CONNECT.
public struct NBDConnectRequest: Equatable, Sendable {
    /// nil: let the kernel pick a free device (the reply names it).
    public var index: UInt32?
    public var sizeBytes: UInt64
    public var blockSizeBytes: UInt64 = 4096
    public var serverFlags: UInt64
    /// Request timeout in seconds (NBD_ATTR_TIMEOUT).
    public var timeoutSeconds: UInt64?
    /// How long I/O waits for a reconnect after all connections died (NBD_ATTR_DEAD_CONN_TIMEOUT).
    public var deadConnTimeoutSeconds: UInt64?
    public var clientFlags: UInt64?
    public var socketFDs: [Int32]
    /// Shown in /sys/block/nbdN/backend (kernel ≥ 5.13).
    public var backendIdentifier: String?

    public init(index: UInt32? = nil, sizeBytes: UInt64, blockSizeBytes: UInt64 = 4096, serverFlags: UInt64,
                timeoutSeconds: UInt64? = nil, deadConnTimeoutSeconds: UInt64? = nil, clientFlags: UInt64? = nil,
                socketFDs: [Int32], backendIdentifier: String? = nil) {
        self.index = index
        self.sizeBytes = sizeBytes
        self.blockSizeBytes = blockSizeBytes
        self.serverFlags = serverFlags
        self.timeoutSeconds = timeoutSeconds
        self.deadConnTimeoutSeconds = deadConnTimeoutSeconds
        self.clientFlags = clientFlags
        self.socketFDs = socketFDs
        self.backendIdentifier = backendIdentifier
    }

    /// The attributes in the order the message carries them.
    public var attributes: [NetlinkAttribute] {
        typealias K = NBDNetlinkConstants
        var a: [NetlinkAttribute] = []
        if let index { a.append(.u32(K.ATTR_INDEX, index)) }
        a.append(.u64(K.ATTR_SIZE_BYTES, sizeBytes))
        a.append(.u64(K.ATTR_BLOCK_SIZE_BYTES, blockSizeBytes))
        a.append(.u64(K.ATTR_SERVER_FLAGS, serverFlags))
        if let timeoutSeconds { a.append(.u64(K.ATTR_TIMEOUT, timeoutSeconds)) }
        if let deadConnTimeoutSeconds { a.append(.u64(K.ATTR_DEAD_CONN_TIMEOUT, deadConnTimeoutSeconds)) }
        if let clientFlags { a.append(.u64(K.ATTR_CLIENT_FLAGS, clientFlags)) }
        a.append(NBDNetlink.socketsAttribute(socketFDs))
        if let backendIdentifier { a.append(.string(K.ATTR_BACKEND_IDENTIFIER, backendIdentifier)) }
        return a
    }
}

/// One entry of NBD_CMD_STATUS.
public struct NBDDeviceStatus: Equatable, Sendable {
    public var index: UInt32
    public var connected: Bool
    public init(index: UInt32, connected: Bool) { self.index = index; self.connected = connected }
}

/// NBD_CMD_* over generic netlink.
public final class NBDNetlink {
    public let socket: GenericNetlinkSocket
    public let family: GenericNetlinkSocket.Family

    /// Resolves the "nbd" family. Throws `.moduleNotLoaded` when it is not registered.
    public init() throws {
        let sock = try GenericNetlinkSocket()
        guard let fam = try sock.resolveFamily(NBDNetlinkConstants.familyName) else { throw NBDKernelError.moduleNotLoaded }
        self.socket = sock
        self.family = fam
    }

    /// True when the kernel has registered the "nbd" family (the module is loaded).
    public static func isAvailable() -> Bool {
        guard let sock = try? GenericNetlinkSocket(), let family = try? sock.resolveFamily(NBDNetlinkConstants.familyName) else { return false }
        return family.id != 0
    }

    static func socketsAttribute(_ fds: [Int32]) -> NetlinkAttribute {
        .nested(NBDNetlinkConstants.ATTR_SOCKETS, fds.map {
            .nested(NBDNetlinkConstants.SOCK_ITEM, [.u32(NBDNetlinkConstants.SOCK_FD, UInt32(bitPattern: $0))])
        })
    }

    public func message(_ command: UInt8, _ attributes: [NetlinkAttribute]) -> GenericNetlinkMessage {
        GenericNetlinkMessage(family: family.id, command: command, version: NBDNetlinkConstants.version, attributes: attributes)
    }

    private func run(_ name: String, _ command: UInt8, _ attrs: [NetlinkAttribute], device: String) throws -> [GenericNetlinkMessage] {
        do {
            return try socket.request(message(command, attrs), commandName: name)
        } catch NBDKernelError.netlink(_, let err) where err == EPERM || err == EACCES {
            throw NBDKernelError.notRoot(operation: name)
        } catch NBDKernelError.netlink(_, let err) where err == EBUSY {
            throw NBDKernelError.deviceBusy(device: device)
        }
    }

    /// NBD_CMD_CONNECT. Returns the device index (from the reply when none was requested).
    public func connect(_ request: NBDConnectRequest) throws -> UInt32 {
        let device = request.index.map { "/dev/nbd\($0)" } ?? "a free nbd device"
        let replies = try run("NBD_CMD_CONNECT", NBDNetlinkConstants.CMD_CONNECT, request.attributes, device: device)
        if let idx = replies.lazy.compactMap({ $0.attributes.first(type: NBDNetlinkConstants.ATTR_INDEX)?.u32Value }).first {
            return idx
        }
        if let index = request.index { return index }
        throw NBDKernelError.netlinkProtocol("NBD_CMD_CONNECT reply without NBD_ATTR_INDEX")
    }

    /// NBD_CMD_DISCONNECT.
    public func disconnect(index: UInt32) throws {
        _ = try run("NBD_CMD_DISCONNECT", NBDNetlinkConstants.CMD_DISCONNECT, [.u32(NBDNetlinkConstants.ATTR_INDEX, index)], device: "/dev/nbd\(index)")
    }

    /// NBD_CMD_RECONFIGURE: hands new sockets to a connected device; the kernel uses them
    /// to replace dead connections (and ignores the rest).
    /// `backendIdentifier` must repeat the one given at connect time (the kernel refuses
    /// a reconfigure without it, or with another one: EINVAL).
    public func reconfigure(index: UInt32, socketFDs: [Int32], backendIdentifier: String?, timeoutSeconds: UInt64? = nil,
                            deadConnTimeoutSeconds: UInt64? = nil) throws {
        typealias K = NBDNetlinkConstants
        var attrs: [NetlinkAttribute] = [.u32(K.ATTR_INDEX, index)]
        if let backendIdentifier { attrs.append(.string(K.ATTR_BACKEND_IDENTIFIER, backendIdentifier)) }
        if let timeoutSeconds { attrs.append(.u64(K.ATTR_TIMEOUT, timeoutSeconds)) }
        if let deadConnTimeoutSeconds { attrs.append(.u64(K.ATTR_DEAD_CONN_TIMEOUT, deadConnTimeoutSeconds)) }
        attrs.append(Self.socketsAttribute(socketFDs))
        _ = try run("NBD_CMD_RECONFIGURE", K.CMD_RECONFIGURE, attrs, device: "/dev/nbd\(index)")
    }

    /// NBD_CMD_STATUS for all devices (or one).
    public func status(index: UInt32? = nil) throws -> [NBDDeviceStatus] {
        let attrs: [NetlinkAttribute] = index.map { [.u32(NBDNetlinkConstants.ATTR_INDEX, $0)] } ?? []
        let replies = try run("NBD_CMD_STATUS", NBDNetlinkConstants.CMD_STATUS, attrs, device: index.map { "/dev/nbd\($0)" } ?? "nbd")
        var out: [NBDDeviceStatus] = []
        for reply in replies {
            out += try Self.parseDeviceList(reply.attributes)
        }
        return out.sorted { $0.index < $1.index }
    }

    /// NBD_ATTR_DEVICE_LIST → NBD_DEVICE_ITEM { NBD_DEVICE_INDEX u32, NBD_DEVICE_CONNECTED u8 }.
    public static func parseDeviceList(_ attributes: [NetlinkAttribute]) throws -> [NBDDeviceStatus] {
        typealias K = NBDNetlinkConstants
        guard let list = attributes.first(type: K.ATTR_DEVICE_LIST) else { return [] }
        var out: [NBDDeviceStatus] = []
        for item in try list.children() where item.type == K.DEVICE_ITEM {
            let fields = try item.children()
            guard let idx = fields.first(type: K.DEVICE_INDEX)?.u32Value else {
                throw NBDKernelError.netlinkProtocol("NBD_DEVICE_ITEM without NBD_DEVICE_INDEX")
            }
            out.append(NBDDeviceStatus(index: idx, connected: (fields.first(type: K.DEVICE_CONNECTED)?.u8Value ?? 0) != 0))
        }
        return out
    }

    /// Subscribes to "nbd_mc_group" and calls `handler` with the device index of every
    /// NBD_CMD_LINK_DEAD event (a connection of that device died), and with nil every
    /// `tick` seconds without events. Blocks until `handler` returns false. Uses its own socket.
    public func watchLinkDead(tick: Double = 2, _ handler: (UInt32?) throws -> Bool) throws {
        guard let group = family.multicastGroups[NBDNetlinkConstants.multicastGroupName] else {
            throw NBDKernelError.netlinkProtocol("family nbd has no multicast group \(NBDNetlinkConstants.multicastGroupName)")
        }
        let sock = try GenericNetlinkSocket()
        try sock.addMembership(group: group)
        while true {
            let datagram: [UInt8]
            do {
                datagram = try sock.receive(timeout: tick, what: "NBD_CMD_LINK_DEAD")
            } catch NBDKernelError.netlink(_, let err) where err == ETIMEDOUT {
                if try !handler(nil) { return }
                continue
            }
            for reply in try NetlinkReply.parse(datagram) {
                guard case .message(let m) = reply, m.family == family.id, m.command == NBDNetlinkConstants.CMD_LINK_DEAD,
                      let idx = m.attributes.first(type: NBDNetlinkConstants.ATTR_INDEX)?.u32Value else { continue }
                if try !handler(idx) { return }
            }
        }
    }
}

/// Writes one line to standard error (unbuffered).
public func writeToStderr(_ text: String) {
    var line = Array(text.utf8)
    if line.last != UInt8(ascii: "\n") { line.append(UInt8(ascii: "\n")) }
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
