import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A block of client addresses in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`,
/// or one host: `192.0.2.7`, `::1`), for ``NBDServerConfiguration/allowedClients``.
///
/// IPv4 blocks also match IPv4-mapped IPv6 peers (`::ffff:10.1.2.3`), which is
/// how IPv4 clients of a dual-stack `[::]` listener appear.
public struct NBDClientAddressRange: Sendable, Equatable, CustomStringConvertible {
    /// The network, as 16 bytes (IPv4 as `::ffff:a.b.c.d`), host bits cleared.
    private let network: [UInt8]
    /// Leading bits of ``network`` that must match (96 + n for IPv4 /n).
    private let prefixBits: Int
    /// As written, normalised (`10.0.0.0/8`).
    public let description: String

    /// Parses `ADDRESS[/PREFIX]`; nil when it is not an IPv4 or IPv6 block.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let addressPart = parts.first, !addressPart.isEmpty else { return nil }
        let address = String(addressPart)
        var bytes: [UInt8]
        let isV4: Bool
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, address, &v4) == 1 {
            bytes = [UInt8](repeating: 0, count: 10) + [0xff, 0xff] + withUnsafeBytes(of: v4) { Array($0) }
            isV4 = true
        } else if inet_pton(AF_INET6, address, &v6) == 1 {
            bytes = withUnsafeBytes(of: v6) { Array($0) }
            isV4 = false
        } else {
            return nil
        }
        let maximum = isV4 ? 32 : 128
        var prefix = maximum
        if parts.count == 2 {
            guard let value = Int(parts[1]), (0...maximum).contains(value), parts[1].allSatisfy(\.isASCII) else { return nil }
            prefix = value
        }
        let bits = isV4 ? prefix + 96 : prefix
        for index in bytes.indices {
            let keep = max(0, min(8, bits - index * 8))
            bytes[index] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - keep))
        }
        network = bytes
        prefixBits = bits
        description = "\(Self.text(of: bytes, v4: isV4))/\(prefix)"
    }

    /// True when `address` (a TCP peer) lies in the block. Unix-socket peers
    /// never match.
    public func contains(_ address: SocketAddress) -> Bool {
        guard let bytes = Self.bytes(of: address) else { return false }
        var remaining = prefixBits
        var index = 0
        while remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xff : UInt8(truncatingIfNeeded: 0xff << (8 - remaining))
            if bytes[index] & mask != network[index] { return false }
            remaining -= 8
            index += 1
        }
        return true
    }

    /// The peer address as 16 bytes (IPv4 mapped), nil for Unix sockets.
    private static func bytes(of address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let v4):
            return [UInt8](repeating: 0, count: 10) + [0xff, 0xff] + withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6):
            return withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        case .unixDomainSocket:
            return nil
        }
    }

    private static func text(of bytes: [UInt8], v4: Bool) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        if v4 {
            var address = in_addr()
            withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes[12..<16]) }
            _ = inet_ntop(AF_INET, &address, &buffer, socklen_t(buffer.count))
        } else {
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
            _ = inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count))
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
