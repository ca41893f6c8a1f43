#if canImport(Glibc)
import Glibc
#endif
import CNetlink

/// The old ioctl interface of /dev/nbdN (linux/nbd.h), used when the netlink family is missing.
public enum NBDIoctl {
    static func io(_ nr: UInt) -> UInt { (0xab << 8) | nr }   // _IO(0xab, nr)
    public static let SET_SOCK = io(0)
    public static let SET_BLKSIZE = io(1)
    public static let SET_SIZE = io(2)
    public static let DO_IT = io(3)
    public static let CLEAR_SOCK = io(4)
    public static let CLEAR_QUE = io(5)
    public static let DISCONNECT = io(8)
    public static let SET_TIMEOUT = io(9)
    public static let SET_FLAGS = io(10)

    private static func call(_ fd: Int32, _ request: UInt, _ arg: UInt, name: String, device: String) throws {
        if cnetlink_ioctl(fd, request, arg) < 0 {
            let e = errno
            if e == EBUSY { throw NBDKernelError.deviceBusy(device: device) }
            if e == EPERM || e == EACCES { throw NBDKernelError.notRoot(operation: "ioctl \(name)") }
            throw NBDKernelError.ioctl(request: name, device: device, errno: e)
        }
    }

    /// Configures `device` with the handshaken sockets, then forks a child that sits in
    /// NBD_DO_IT for as long as the device is connected (the ioctl interface needs a live
    /// process). Returns the child's pid.
    public static func attach(device: String, sockets: [Int32], info: NBDExportInfo, blockSize: UInt64,
                              timeoutSeconds: UInt64?) throws -> pid_t {
        let fd = open(device, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT || e == ENXIO { throw NBDKernelError.deviceNotFound(device) }
            if e == EACCES || e == EPERM { throw NBDKernelError.notRoot(operation: "opening \(device)") }
            throw NBDKernelError.system(call: "open(\(device))", errno: e)
        }
        var handedOver = false
        defer { if !handedOver { _ = close(fd) } }
        try call(fd, SET_BLKSIZE, UInt(blockSize), name: "NBD_SET_BLKSIZE", device: device)
        try call(fd, SET_SIZE, UInt(info.size), name: "NBD_SET_SIZE", device: device)
        try call(fd, CLEAR_SOCK, 0, name: "NBD_CLEAR_SOCK", device: device)
        try call(fd, SET_FLAGS, UInt(info.transmissionFlags), name: "NBD_SET_FLAGS", device: device)
        if let t = timeoutSeconds { try call(fd, SET_TIMEOUT, UInt(t), name: "NBD_SET_TIMEOUT", device: device) }
        for s in sockets {
            try call(fd, SET_SOCK, UInt(s), name: "NBD_SET_SOCK", device: device)
        }
        let child = fork()
        if child < 0 { throw NBDKernelError.system(call: "fork", errno: errno) }
        if child == 0 {
            // The child: serve the device until it is disconnected, then clean up.
            _ = setsid()
            // Let go of the caller's stdio (e.g. a `$(cimnbd attach …)` pipe).
            let null = open("/dev/null", O_RDWR)
            if null >= 0 { _ = dup2(null, 0); _ = dup2(null, 1); _ = dup2(null, 2) }
            _ = cnetlink_ioctl(fd, DO_IT, 0)
            _ = cnetlink_ioctl(fd, CLEAR_QUE, 0)
            _ = cnetlink_ioctl(fd, CLEAR_SOCK, 0)
            _exit(0)
        }
        handedOver = true
        _ = close(fd)
        // NBD_DO_IT sets the pid file once the device is running; wait briefly for it.
        return child
    }

    /// NBD_DISCONNECT + NBD_CLEAR_SOCK.
    public static func detach(device: String) throws {
        let fd = open(device, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw NBDKernelError.system(call: "open(\(device))", errno: errno) }
        defer { _ = close(fd) }
        try call(fd, DISCONNECT, 0, name: "NBD_DISCONNECT", device: device)
        _ = cnetlink_ioctl(fd, CLEAR_SOCK, 0)
    }
}
