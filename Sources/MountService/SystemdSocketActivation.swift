import Foundation
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Listening sockets handed over by systemd (or `systemd-socket-activate`),
/// read the way `sd_listen_fds_with_names(3)` reads them, without libsystemd:
/// `LISTEN_PID` must be this process, `LISTEN_FDS` sockets start at
/// descriptor 3, and `LISTEN_FDNAMES` names them (colon-separated; systemd's
/// `FileDescriptorName=`).
///
/// The daemon's roles are chosen by name: `control` is the control socket,
/// `metrics` the Prometheus listener, and every other name (`nbd` in the
/// shipped units, or systemd's default, the socket unit's name) an NBD
/// listener.
public struct SystemdSocketActivation: Sendable {
    /// One inherited listening socket.
    public struct Socket: Sendable {
        /// The descriptor (3, 4, …).
        public var descriptor: CInt
        /// Its name from `LISTEN_FDNAMES` (`unknown` when none was given).
        public var name: String
        /// The address it is bound to, when it is a TCP or Unix socket.
        public var localAddress: SocketAddress?
    }

    /// The first descriptor passed (`SD_LISTEN_FDS_START`).
    public static let firstDescriptor: CInt = 3
    /// More descriptors than this are refused as a garbled environment.
    static let maximumCount = 256

    /// Every socket passed, in descriptor order.
    public var sockets: [Socket]

    /// The sockets that serve NBD clients.
    public var nbdSockets: [Socket] { sockets.filter { $0.name != "control" && $0.name != "metrics" } }
    /// The control socket, if one was passed.
    public var controlSocket: Socket? { sockets.first { $0.name == "control" } }
    /// The metrics listener, if one was passed.
    public var metricsSocket: Socket? { sockets.first { $0.name == "metrics" } }

    /// Reads the activation variables. Returns nil when the process was not
    /// socket-activated (no `LISTEN_FDS` or `LISTEN_PID`, or the `LISTEN_PID`
    /// of another process, as when the variables leaked from a parent). Each descriptor
    /// is checked to be a listening stream socket and marked close-on-exec.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment,
                                       processID: pid_t = getpid()) throws(SocketActivationError) -> SystemdSocketActivation? {
        guard let countText = environment["LISTEN_FDS"], let pidText = environment["LISTEN_PID"] else { return nil }
        guard let pid = pid_t(pidText) else { throw .malformed(variable: "LISTEN_PID", value: pidText) }
        guard pid == processID else { return nil }
        guard let count = Int(countText), count >= 0, count <= maximumCount else {
            throw .malformed(variable: "LISTEN_FDS", value: countText)
        }
        var names = [String](repeating: "unknown", count: count)
        if let namesText = environment["LISTEN_FDNAMES"] {
            let given = namesText.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard given.count == count else {
                throw .malformed(variable: "LISTEN_FDNAMES", value: "\(namesText) (\(given.count) names for \(count) descriptors)")
            }
            names = given
        }
        var sockets: [Socket] = []
        for (index, name) in names.enumerated() {
            let descriptor = firstDescriptor + CInt(index)
            try checkListeningStream(descriptor, name: name)
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            sockets.append(Socket(descriptor: descriptor, name: name, localAddress: localAddress(of: descriptor)))
        }
        return SystemdSocketActivation(sockets: sockets)
    }

    /// Removes the variables, so that programs this process starts do not
    /// take them for their own (`sd_listen_fds(unset_environment: 1)`).
    public static func unsetEnvironment() {
        for variable in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(variable) }
    }

    private static func checkListeningStream(_ descriptor: CInt, name: String) throws(SocketActivationError) {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw .notASocket(descriptor: descriptor, name: name, detail: String(cString: strerror(errno)))
        }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw .notASocket(descriptor: descriptor, name: name, detail: "not a socket")
        }
        var type: CInt = 0, listening: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_TYPE, &type, &length) == 0, type == CInt(SOCK_STREAM.rawValue) else {
            throw .notASocket(descriptor: descriptor, name: name, detail: "not a stream socket (use ListenStream=)")
        }
        length = socklen_t(MemoryLayout<CInt>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0, listening != 0 else {
            throw .notASocket(descriptor: descriptor, name: name, detail: "not listening (Accept=yes is not supported)")
        }
    }

    /// The address `descriptor` is bound to (TCP or Unix), nil when unknown.
    static func localAddress(of descriptor: CInt) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard result == 0 else { return nil }
        switch CInt(storage.ss_family) {
        case AF_INET:
            let address = withUnsafeBytes(of: storage) { $0.loadUnaligned(as: sockaddr_in.self) }
            var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            var raw = address.sin_addr
            guard inet_ntop(AF_INET, &raw, &text, socklen_t(text.count)) != nil else { return nil }
            return SocketAddress(address, host: String(cString: text))
        case AF_INET6:
            let address = withUnsafeBytes(of: storage) { $0.loadUnaligned(as: sockaddr_in6.self) }
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            var raw = address.sin6_addr
            guard inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count)) != nil else { return nil }
            return SocketAddress(address, host: String(cString: text))
        case AF_UNIX:
            let address = withUnsafeBytes(of: storage) { $0.loadUnaligned(as: sockaddr_un.self) }
            let path = withUnsafeBytes(of: address.sun_path) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            return path.isEmpty ? nil : try? SocketAddress(unixDomainSocketPath: path)
        default:
            return nil
        }
    }
}
