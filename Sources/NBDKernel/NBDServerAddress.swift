/// Where an NBD server listens and which export to ask for.
///
/// Accepted forms:
/// - `nbd://host[:port][/name]` (TCP, default port 10809; IPv6 hosts in brackets)
/// - `nbd+unix:///name?socket=PATH` (Unix domain socket)
/// - `host:port` or `host` (TCP, no export name)
/// - `unix:PATH` (Unix domain socket, no export name)
/// Percent-escapes in the export name are decoded.
public struct NBDServerAddress: Equatable, Sendable, CustomStringConvertible {
    public enum Endpoint: Equatable, Sendable {
        case tcp(host: String, port: UInt16)
        case unix(path: String)
    }

    public static let defaultPort: UInt16 = 10809

    public var endpoint: Endpoint
    /// The export name from the URI path, if any (without the leading slash).
    public var exportName: String?

    public init(endpoint: Endpoint, exportName: String? = nil) {
        self.endpoint = endpoint
        self.exportName = exportName
    }

    public init(parsing text: String) throws {
        func bad(_ reason: String) -> NBDKernelError { .invalidURI(text, reason: reason) }
        if text.hasPrefix("nbd+unix://") {
            let rest = String(text.dropFirst("nbd+unix://".count))
            guard let q = rest.firstIndex(of: "?") else { throw bad("nbd+unix needs ?socket=PATH") }
            let authorityAndPath = rest[..<q]
            guard authorityAndPath.hasPrefix("/") else { throw bad("nbd+unix URIs have an empty host: nbd+unix:///name?socket=PATH") }
            let name = try Self.percentDecode(String(authorityAndPath.dropFirst()), uri: text)
            var socket: String?
            for pair in rest[rest.index(after: q)...].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0] == "socket" { socket = try Self.percentDecode(String(kv[1]), uri: text) }
            }
            guard let path = socket, !path.isEmpty else { throw bad("nbd+unix needs ?socket=PATH") }
            self.init(endpoint: .unix(path: path), exportName: name.isEmpty ? nil : name)
            return
        }
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw bad("empty socket path") }
            self.init(endpoint: .unix(path: path))
            return
        }
        var rest = Substring(text)
        var isURI = false
        if text.hasPrefix("nbd://") {
            rest = rest.dropFirst(6); isURI = true
        } else if text.contains("://") {
            if text.hasPrefix("nbds://") || text.hasPrefix("nbds+unix://") {
                throw bad("nbds:// asks for TLS, which the kernel's nbd driver cannot carry; " + NBDKernelError.plainPathAdvice)
            }
            throw bad("unsupported scheme")
        }
        var name: String?
        if let slash = rest.firstIndex(of: "/") {
            guard isURI else { throw bad("a path needs the nbd:// scheme") }
            let raw = String(rest[rest.index(after: slash)...])
            let decoded = try Self.percentDecode(raw, uri: text)
            name = decoded.isEmpty ? nil : decoded
            rest = rest[..<slash]
        }
        let (host, port) = try Self.splitHostPort(rest, uri: text)
        self.init(endpoint: .tcp(host: host, port: port), exportName: name)
    }

    private static func splitHostPort(_ s: Substring, uri: String) throws -> (String, UInt16) {
        func bad(_ reason: String) -> NBDKernelError { .invalidURI(uri, reason: reason) }
        var host: Substring
        var portText: Substring?
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { throw bad("unterminated [IPv6] host") }
            host = s[s.index(after: s.startIndex)..<close]
            let after = s[s.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("junk after ]") }
                portText = after.dropFirst()
            }
        } else if let colon = s.lastIndex(of: ":") {
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
        } else {
            host = s
        }
        guard !host.isEmpty else { throw bad("empty host") }
        var port = defaultPort
        if let p = portText {
            guard let value = UInt16(p), value > 0 else { throw bad("bad port '\(p)'") }
            port = value
        }
        return (String(host), port)
    }

    private static func percentDecode(_ s: String, uri: String) throws -> String {
        guard s.contains("%") else { return s }
        var bytes: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "%") {
                guard it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) else {
                    throw NBDKernelError.invalidURI(uri, reason: "bad percent escape")
                }
                bytes.append(v); it = it.dropFirst(2)
            } else {
                bytes.append(b)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `host:port` or `unix:PATH`, for messages.
    public var endpointDescription: String {
        switch endpoint {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): return "unix:\(path)"
        }
    }

    public var description: String {
        switch endpoint {
        case .tcp: return "nbd://\(endpointDescription)/\(exportName ?? "")"
        case .unix(let path): return "nbd+unix:///\(exportName ?? "")?socket=\(path)"
        }
    }
}
