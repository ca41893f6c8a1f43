import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The CLI's side of the control API.
public struct ControlClient: Sendable {
    /// Default control socket of `cimnbd serve`.
    public static let defaultPath = "/run/cimnbd/control.sock"
    public let path: String

    public init(path: String = ControlClient.defaultPath) {
        self.path = path
    }

    /// Sends one request and waits for the answer.
    public func send(_ request: ControlRequest) throws -> ControlResponse {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MountError.failed(detail: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = try ControlServer.address(path)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if connected != 0 {
            let code = errno
            if code == EACCES || code == EPERM { throw MountError.accessDenied(path: "\(path) (the control socket; mounting needs root)") }
            throw ControlClientError.daemonUnreachable(path: path, reason: String(cString: strerror(code)))
        }
        var out = [UInt8](try JSONEncoder().encode(request))
        out.append(UInt8(ascii: "\n"))
        var done = 0
        while done < out.count {
            let n = out[done...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ControlClientError.daemonUnreachable(path: path, reason: "connection closed while sending") }
            done += n
        }
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        do {
            return try JSONDecoder().decode(ControlResponse.self, from: Data(data.prefix { $0 != UInt8(ascii: "\n") }))
        } catch {
            throw ControlClientError.daemonUnreachable(path: path, reason: "unreadable answer")
        }
    }
}

/// Failures to talk to the daemon at all.
public enum ControlClientError: Error, CustomStringConvertible, Sendable {
    case daemonUnreachable(path: String, reason: String)

    public var description: String {
        switch self {
        case .daemonUnreachable(let path, let reason):
            return "cannot reach the cimnbd daemon at \(path): \(reason) (start it with 'cimnbd serve', or pass --control PATH)"
        }
    }
}
