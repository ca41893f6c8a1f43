import NIOCore

/// When the server hands file data to the socket with `sendfile` instead of
/// copying it through a user-space buffer (`pread`, then `write`).
///
/// `sendfile` saves the server a copy, and with a network card that can
/// gather from the page cache it saves the copy altogether. A client on the
/// same host must copy every byte out of the socket anyway, and there
/// `sendfile` costs more than it saves: its socket buffers hold page-cache
/// pages, one fragment per 4 KiB page, which the client then copies cold,
/// while a copied reply reaches it in a few large fragments fresh in the CPU
/// cache. Measured on loopback with `nbdcopy` (4 connections, 2 GiB), the
/// client needed about 1.5 CPU seconds per copy with `sendfile` and 0.8 with
/// copies, and the copy ran some 20 % faster (`tools/bench/nbd/README.md`).
public enum SendfileUse: String, Sendable, CaseIterable {
    /// Always copy.
    case never
    /// `sendfile` only to TCP clients on other hosts; clients on this host
    /// (loopback addresses, the connection's own local address, Unix
    /// sockets) get copies. The default.
    case remote
    /// `sendfile` on every connection without TLS.
    case always

    /// True when a connection from `peer`, accepted on `local`, should get
    /// file data by `sendfile`. TLS connections never do (a TLS handler takes
    /// bytes only); that is the caller's to check.
    public func allows(peer: SocketAddress?, local: SocketAddress?) -> Bool {
        switch self {
        case .never:
            return false
        case .always:
            return true
        case .remote:
            guard let peer else { return false }
            return !Self.isOnThisHost(peer: peer, local: local)
        }
    }

    /// True for Unix-socket peers, loopback addresses (127.0.0.0/8, ::1 and
    /// their IPv4-mapped forms) and a peer whose address is the connection's
    /// local one (a client that dialled one of this host's own addresses).
    static func isOnThisHost(peer: SocketAddress, local: SocketAddress?) -> Bool {
        if case .unixDomainSocket = peer { return true }
        if loopback.contains(where: { $0.contains(peer) }) { return true }
        if let peerIP = peer.ipAddress, let localIP = local?.ipAddress, peerIP == localIP { return true }
        return false
    }

    private static let loopback = ["127.0.0.0/8", "::1"].compactMap { NBDClientAddressRange($0) }
}
