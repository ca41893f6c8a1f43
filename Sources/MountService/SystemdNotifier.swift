import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Tells the service manager about the daemon's state (`sd_notify(3)`'s
/// protocol, without libsystemd): one datagram of `KEY=VALUE` lines to the
/// Unix socket named by `NOTIFY_SOCKET` (a path, or an abstract name when it
/// starts with `@`). Used by `Type=notify` units: `READY=1` once the exports
/// are restored and the sockets answer, `STOPPING=1` when shutting down.
public struct SystemdNotifier: Sendable {
    /// The socket from `NOTIFY_SOCKET`, nil when not run under a service manager.
    public let socketPath: String?

    /// Reads `NOTIFY_SOCKET`.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let path = environment["NOTIFY_SOCKET"] ?? ""
        socketPath = path.isEmpty ? nil : path
    }

    /// Sends `state` (e.g. `"READY=1\nSTATUS=serving 2 exports"`). Does nothing
    /// without `NOTIFY_SOCKET`; throws when the datagram cannot be sent.
    public func notify(_ state: String) throws(NotifyError) {
        guard let socketPath else { return }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(socketPath.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw NotifyError(socket: socketPath, detail: "socket path too long")
        }
        // Abstract namespace: a leading NUL instead of '@', and the length is exact.
        if pathBytes.first == UInt8(ascii: "@") { pathBytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in pathBytes.enumerated() { raw[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2) + socklen_t(pathBytes.count)
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw NotifyError(socket: socketPath, detail: String(cString: strerror(errno))) }
        defer { close(descriptor) }
        let message = Array(state.utf8)
        let sent = message.withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, length)
                }
            }
        }
        guard sent == message.count else {
            throw NotifyError(socket: socketPath, detail: sent < 0 ? String(cString: strerror(errno)) : "short write")
        }
    }
}
