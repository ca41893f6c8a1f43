#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything that can go wrong while attaching an NBD export to a kernel device.
/// `description` is the text a person reads on stderr: it says what to do next.
public enum NBDKernelError: Error, Equatable, CustomStringConvertible, Sendable {
    /// Neither the generic netlink family `nbd` nor any /dev/nbdN exists.
    case moduleNotLoaded
    /// The operation needs CAP_SYS_ADMIN.
    case notRoot(operation: String)
    /// The requested device is already connected (or being torn down).
    case deviceBusy(device: String)
    /// No such /dev/nbdN, or no device whose backend is the given GUID.
    case deviceNotFound(String)
    /// Refusing to detach a mounted device.
    case deviceMounted(device: String, mountPoint: String)
    /// The server answered the handshake with NBD_REP_ERR_UNKNOWN (or refused the name).
    case unknownExport(name: String, server: String, detail: String)
    /// TCP/Unix connect failed or the server closed the connection during the handshake.
    case serverUnreachable(server: String, reason: String)
    /// The server violated the handshake protocol or refused an option.
    case handshake(server: String, detail: String)
    /// The server answered NBD_REP_ERR_TLS_REQD: it serves only TLS clients,
    /// and the kernel's nbd driver cannot carry TLS.
    case tlsRequired(server: String)
    /// A netlink request failed with an errno.
    case netlink(command: String, errno: Int32)
    /// Malformed netlink traffic (a bug or an incompatible kernel).
    case netlinkProtocol(String)
    /// An ioctl on /dev/nbdN failed.
    case ioctl(request: String, device: String, errno: Int32)
    /// A server URI that cannot be parsed.
    case invalidURI(String, reason: String)
    /// Invalid combination of options.
    case invalidArgument(String)
    /// A system call failed.
    case system(call: String, errno: Int32)

    public var description: String {
        switch self {
        case .moduleNotLoaded:
            return "the nbd kernel module is not loaded (no generic netlink family 'nbd' and no /dev/nbd* devices): run `modprobe nbd` as root, then retry"
        case .notRoot(let op):
            return "\(op) needs root (CAP_SYS_ADMIN): run it as root or with sudo"
        case .deviceBusy(let dev):
            return "\(dev) is busy: it is already connected to a server (detach it first, or omit --device to let the kernel pick a free device)"
        case .deviceNotFound(let what):
            return "no such nbd device: \(what)"
        case .deviceMounted(let dev, let mp):
            return "\(dev) is mounted at \(mp); umount first"
        case .unknownExport(let name, let server, let detail):
            return "server \(server) has no export named '\(name)'" + (detail.isEmpty ? "" : " (server said: \(detail))")
        case .serverUnreachable(let server, let reason):
            return "cannot reach NBD server \(server): \(reason)"
        case .handshake(let server, let detail):
            return "NBD handshake with \(server) failed: \(detail)"
        case .tlsRequired(let server):
            return "server \(server) requires TLS (NBD_REP_ERR_TLS_REQD), and the kernel's nbd driver cannot carry TLS: "
                + NBDKernelError.plainPathAdvice
        case .netlink(let command, let err):
            return "netlink \(command) failed: \(errnoText(err))"
        case .netlinkProtocol(let detail):
            return "unexpected netlink reply: \(detail)"
        case .ioctl(let request, let device, let err):
            return "ioctl \(request) on \(device) failed: \(errnoText(err))"
        case .invalidURI(let uri, let reason):
            return "invalid NBD URI '\(uri)': \(reason) (expected nbd://host[:port]/name or nbd+unix:///name?socket=PATH)"
        case .invalidArgument(let text):
            return text
        case .system(let call, let err):
            return "\(call) failed: \(errnoText(err))"
        }
    }
}

extension NBDKernelError {
    /// Where a kernel device can attach instead of a TLS-only listener.
    static let plainPathAdvice = "attach through a Unix socket of the server (cimnbd serve --socket /run/cimnbd/nbd.sock, "
        + "then cimnbd attach GUID --server 'nbd+unix:///GUID?socket=/run/cimnbd/nbd.sock') "
        + "or a loopback listener that does not require TLS (nbd://127.0.0.1:PORT)"
}

/// "strerror (ENAME)" for an errno value.
func errnoText(_ err: Int32) -> String {
    let text = String(cString: strerror(err))
    let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", EBUSY: "EBUSY", EINVAL: "EINVAL", EACCES: "EACCES",
        ENOSPC: "ENOSPC", ECONNREFUSED: "ECONNREFUSED", ETIMEDOUT: "ETIMEDOUT", ENXIO: "ENXIO",
        EHOSTUNREACH: "EHOSTUNREACH", ENETUNREACH: "ENETUNREACH", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM",
    ]
    return names[err].map { "\(text) (\($0))" } ?? "\(text) (errno \(err))"
}
