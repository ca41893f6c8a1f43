#if canImport(Glibc)
import Glibc
#endif

/// A socket-activation environment that cannot be used.
public enum SocketActivationError: Error, CustomStringConvertible, Equatable {
    /// A variable does not hold what sd_listen_fds(3) defines.
    case malformed(variable: String, value: String)
    /// An inherited descriptor is not a listening stream socket.
    case notASocket(descriptor: CInt, name: String, detail: String)

    public var description: String {
        switch self {
        case .malformed(let variable, let value):
            return "socket activation: \(variable)=\(value) is malformed"
        case .notASocket(let descriptor, let name, let detail):
            return "socket activation: descriptor \(descriptor) (\(name)): \(detail)"
        }
    }
}
