#if canImport(Glibc)
import Glibc
#endif

/// Options of `NBDDeviceManager.attach`.
public struct NBDAttachOptions: Sendable {
    /// Export to ask for (the image GUID). Also the backend identifier.
    public var exportName: String
    public var server: NBDServerAddress
    /// nil: the kernel picks a free device.
    public var deviceIndex: UInt32?
    /// Number of TCP/Unix connections (one handshake each), 1…16.
    public var connections: Int
    /// NBD_ATTR_TIMEOUT (seconds), nil = kernel default.
    public var timeoutSeconds: UInt64?
    /// NBD_ATTR_DEAD_CONN_TIMEOUT (seconds), nil = kernel default (0: fail I/O at once).
    public var deadConnTimeoutSeconds: UInt64?
    public var blockSize: UInt64
    /// Bound for connect and each handshake step.
    public var handshakeTimeout: Double
    /// Use the ioctl interface even when netlink is available (testing).
    public var forceIoctl: Bool

    public init(exportName: String, server: NBDServerAddress, deviceIndex: UInt32? = nil, connections: Int = 1,
                timeoutSeconds: UInt64? = nil, deadConnTimeoutSeconds: UInt64? = nil, blockSize: UInt64 = 4096,
                handshakeTimeout: Double = 10, forceIoctl: Bool = false) {
        self.exportName = exportName
        self.server = server
        self.deviceIndex = deviceIndex
        self.connections = connections
        self.timeoutSeconds = timeoutSeconds
        self.deadConnTimeoutSeconds = deadConnTimeoutSeconds
        self.blockSize = blockSize
        self.handshakeTimeout = handshakeTimeout
        self.forceIoctl = forceIoctl
    }
}

public enum NBDAttachMethod: String, Sendable { case netlink, ioctl }

/// A device connected by `attach`.
public struct NBDAttachment: Equatable, Sendable {
    public var index: UInt32
    public var device: String { "/dev/nbd\(index)" }
    public var export: NBDExportInfo
    public var connections: Int
    public var method: NBDAttachMethod
}

/// What `status` reports about one device.
public struct NBDDeviceReport: Equatable, Sendable {
    public var index: UInt32
    public var device: String { "/dev/nbd\(index)" }
    public var connected: Bool
    public var backend: String?
    public var sizeBytes: UInt64?
    public var mountPoints: [String]
}

/// Attach, detach, status and reconnect of kernel NBD devices.
public enum NBDDeviceManager {
    /// Handshakes `options.connections` times and connects a kernel device through netlink
    /// (NBD_CMD_CONNECT), or through the ioctl interface when the netlink family is missing
    /// (then `warn` says so). Throws `.moduleNotLoaded` when neither exists.
    public static func attach(_ options: NBDAttachOptions, sysfs: NBDSysfs = NBDSysfs(),
                              warn: (String) -> Void = { writeToStderr($0) }) throws -> NBDAttachment {
        guard (1...16).contains(options.connections) else {
            throw NBDKernelError.invalidArgument("--connections must be between 1 and 16 (got \(options.connections))")
        }
        var netlink: NBDNetlink?
        if !options.forceIoctl {
            do {
                netlink = try NBDNetlink()
            } catch NBDKernelError.moduleNotLoaded {
                guard !sysfs.deviceIndexes().isEmpty else { throw NBDKernelError.moduleNotLoaded }
                warn("cimnbd: the nbd generic netlink family is missing; falling back to the ioctl interface (NBD_SET_SOCK/NBD_DO_IT)")
            }
        } else if sysfs.deviceIndexes().isEmpty {
            throw NBDKernelError.moduleNotLoaded
        }
        guard geteuid() == 0 else { throw NBDKernelError.notRoot(operation: "attaching an NBD device") }
        if let idx = options.deviceIndex, netlink == nil, !sysfs.exists(idx) {
            throw NBDKernelError.deviceNotFound("/dev/nbd\(idx)")
        }
        if let idx = options.deviceIndex, sysfs.pid(idx) != nil {
            throw NBDKernelError.deviceBusy(device: "/dev/nbd\(idx)")
        }

        let conns = try handshake(server: options.server, exportName: options.exportName,
                                  count: options.connections, timeout: options.handshakeTimeout)
        var info = conns[0].info
        if options.connections > 1 && !info.canMultiConn {
            if info.isReadOnly {
                // A read-only export cannot be inconsistent between connections; the kernel
                // only needs the flag to accept more than one socket.
                info.transmissionFlags |= NBDProtocol.flagCanMultiConn
                warn("cimnbd: server does not advertise NBD_FLAG_CAN_MULTI_CONN; the export is read-only, so \(options.connections) connections are safe")
            } else {
                throw NBDKernelError.invalidArgument("server \(options.server.endpointDescription) does not allow multiple connections (no NBD_FLAG_CAN_MULTI_CONN) and the export is writable: use --connections 1")
            }
        }
        let fds = conns.map(\.fd)

        if let netlink {
            let req = NBDConnectRequest(index: options.deviceIndex, sizeBytes: info.size, blockSizeBytes: options.blockSize,
                                        serverFlags: UInt64(info.transmissionFlags), timeoutSeconds: options.timeoutSeconds,
                                        deadConnTimeoutSeconds: options.deadConnTimeoutSeconds, socketFDs: fds,
                                        backendIdentifier: options.exportName)
            // `conns` owns the descriptors: keep it alive until the kernel has taken its own
            // references (ARC may otherwise release it, closing the sockets, after `fds` is read).
            let index = try withExtendedLifetime(conns) { try netlink.connect(req) }
            return NBDAttachment(index: index, export: info, connections: fds.count, method: .netlink)
        }

        guard let index = options.deviceIndex ?? sysfs.firstFreeDevice() else {
            throw NBDKernelError.deviceBusy(device: "every /dev/nbd* device")
        }
        if options.deadConnTimeoutSeconds != nil {
            warn("cimnbd: --dead-conn-timeout needs the netlink interface; ignored")
        }
        _ = try withExtendedLifetime(conns) {
            try NBDIoctl.attach(device: "/dev/nbd\(index)", sockets: fds, info: info, blockSize: options.blockSize,
                                timeoutSeconds: options.timeoutSeconds)
        }
        // Wait (briefly) until NBD_DO_IT is running, so that the device is usable when we return.
        for _ in 0..<100 where sysfs.pid(index) == nil { usleep(20_000) }
        return NBDAttachment(index: index, export: info, connections: fds.count, method: .ioctl)
    }

    /// `count` handshakes with the same export; all must report the same size.
    public static func handshake(server: NBDServerAddress, exportName: String, count: Int, timeout: Double) throws -> [NBDConnection] {
        var conns: [NBDConnection] = []
        for _ in 0..<count {
            let c = try NBDHandshake.connect(to: server, exportName: exportName, timeout: timeout)
            if let first = conns.first, first.info.size != c.info.size {
                throw NBDKernelError.handshake(server: server.endpointDescription, detail: "connections disagree on the export size (\(first.info.size) vs \(c.info.size))")
            }
            conns.append(c)
        }
        return conns
    }

    /// "/dev/nbdN", "nbdN" or a backend GUID → device index.
    public static func resolve(_ target: String, sysfs: NBDSysfs = NBDSysfs()) throws -> UInt32 {
        var name = Substring(target)
        if name.hasPrefix("/dev/") { name = name.dropFirst(5) }
        if name.hasPrefix("nbd"), let idx = UInt32(name.dropFirst(3)) {
            guard sysfs.exists(idx) else {
                if sysfs.deviceIndexes().isEmpty { throw NBDKernelError.moduleNotLoaded }
                throw NBDKernelError.deviceNotFound(target)
            }
            return idx
        }
        if target.hasPrefix("/") { throw NBDKernelError.deviceNotFound("\(target) is not an nbd device") }
        if let idx = sysfs.device(withBackend: target) { return idx }
        if sysfs.deviceIndexes().isEmpty { throw NBDKernelError.moduleNotLoaded }
        throw NBDKernelError.deviceNotFound("no /dev/nbd* has backend \(target) (see `cimnbd status`)")
    }

    /// Refuses when mounted; then NBD_CMD_DISCONNECT (or NBD_DISCONNECT by ioctl without
    /// the netlink family). Returns the device path.
    @discardableResult
    public static func detach(_ target: String, sysfs: NBDSysfs = NBDSysfs()) throws -> String {
        let index = try resolve(target, sysfs: sysfs)
        let device = "/dev/nbd\(index)"
        if let mp = sysfs.mountPoints(index).first {
            throw NBDKernelError.deviceMounted(device: device, mountPoint: mp)
        }
        guard geteuid() == 0 else { throw NBDKernelError.notRoot(operation: "detaching \(device)") }
        if let netlink = try? NBDNetlink() {
            try netlink.disconnect(index: index)
        } else {
            try NBDIoctl.detach(device: device)
        }
        // The kernel tears the device down asynchronously; wait (up to 5 s) until it is free,
        // so that an attach right after us can use it.
        for _ in 0..<100 where sysfs.pid(index) != nil { usleep(50_000) }
        return device
    }

    /// All devices the kernel knows, with sysfs details. Netlink NBD_CMD_STATUS when
    /// available, otherwise sysfs alone.
    public static func status(sysfs: NBDSysfs = NBDSysfs()) throws -> [NBDDeviceReport] {
        let list: [NBDDeviceStatus]
        if let netlink = try? NBDNetlink() {
            list = try netlink.status()
        } else {
            let idx = sysfs.deviceIndexes()
            guard !idx.isEmpty else { throw NBDKernelError.moduleNotLoaded }
            list = idx.map { NBDDeviceStatus(index: $0, connected: sysfs.pid($0) != nil || (sysfs.sizeBytes($0) ?? 0) > 0) }
        }
        return list.map {
            NBDDeviceReport(index: $0.index, connected: $0.connected, backend: $0.connected ? sysfs.backend($0.index) : nil,
                            sizeBytes: sysfs.sizeBytes($0.index), mountPoints: sysfs.mountPoints($0.index))
        }
    }

    /// Re-handshakes and hands the new sockets to the kernel (NBD_CMD_RECONFIGURE); the
    /// kernel replaces dead connections with them. `exportName` defaults to the device's backend.
    /// Returns the device index.
    @discardableResult
    public static func reconnect(_ target: String, server: NBDServerAddress, exportName: String? = nil, connections: Int,
                                 handshakeTimeout: Double = 10, sysfs: NBDSysfs = NBDSysfs()) throws -> UInt32 {
        let index = try resolve(target, sysfs: sysfs)
        guard let name = exportName ?? server.exportName ?? sysfs.backend(index) else {
            throw NBDKernelError.invalidArgument("/dev/nbd\(index) has no backend identifier: give the export name")
        }
        guard geteuid() == 0 else { throw NBDKernelError.notRoot(operation: "reconnecting /dev/nbd\(index)") }
        let netlink = try NBDNetlink()
        try reconnect(index: index, netlink: netlink, server: server, exportName: name, connections: connections,
                      handshakeTimeout: handshakeTimeout, sysfs: sysfs)
        return index
    }

    static func reconnect(index: UInt32, netlink: NBDNetlink, server: NBDServerAddress, exportName: String, connections: Int,
                          handshakeTimeout: Double, sysfs: NBDSysfs) throws {
        let conns = try handshake(server: server, exportName: exportName, count: connections, timeout: handshakeTimeout)
        if let current = sysfs.sizeBytes(index), current != 0, current != conns[0].info.size {
            throw NBDKernelError.handshake(server: server.endpointDescription,
                                           detail: "export \(exportName) is now \(conns[0].info.size) bytes, the device has \(current)")
        }
        let backend = sysfs.backend(index)
        try withExtendedLifetime(conns) {
            try netlink.reconfigure(index: index, socketFDs: conns.map(\.fd), backendIdentifier: backend)
        }
    }

    /// Stays alive and repairs `target`: on every NBD_CMD_LINK_DEAD for it, handshakes again
    /// (retrying every `retryInterval` seconds while the server is down) and sends
    /// NBD_CMD_RECONFIGURE. Returns when the device is disconnected. `log` gets one line per event.
    public static func supervise(_ target: String, server: NBDServerAddress, exportName: String? = nil, connections: Int,
                                 retryInterval: Double = 1, handshakeTimeout: Double = 5, sysfs: NBDSysfs = NBDSysfs(),
                                 log: (String) -> Void) throws {
        let index = try resolve(target, sysfs: sysfs)
        guard let name = exportName ?? server.exportName ?? sysfs.backend(index) else {
            throw NBDKernelError.invalidArgument("/dev/nbd\(index) has no backend identifier: give the export name")
        }
        guard geteuid() == 0 else { throw NBDKernelError.notRoot(operation: "reconnecting /dev/nbd\(index)") }
        let netlink = try NBDNetlink()
        log("watching /dev/nbd\(index) (export \(name) at \(server.endpointDescription)) for dead connections")
        try netlink.watchLinkDead { event in
            guard let event else {
                // periodic check: stop when the device was detached
                return try netlink.status(index: index).first?.connected ?? false
            }
            guard event == index else { return true }
            log("link dead on /dev/nbd\(index); re-handshaking with \(server.endpointDescription)")
            var attempt = 0
            var lastError = ""
            while true {
                attempt += 1
                do {
                    try reconnect(index: index, netlink: netlink, server: server, exportName: name, connections: connections,
                                  handshakeTimeout: handshakeTimeout, sysfs: sysfs)
                    log("reconnected /dev/nbd\(index) with \(connections) new connection(s) after \(attempt) attempt(s)")
                    return true
                } catch {
                    // Server still down (or refusing): keep trying while the device is attached.
                    let text = "\(error)"
                    if text != lastError { log("attempt \(attempt): \(text); retrying every \(retryInterval)s"); lastError = text }
                    if !(try netlink.status(index: index).first?.connected ?? false) { return false }
                    usleep(UInt32(retryInterval * 1_000_000))
                }
            }
        }
        log("/dev/nbd\(index) is no longer connected; stopping")
    }
}
