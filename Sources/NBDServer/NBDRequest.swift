import NIOCore

/// One transmission-phase request header, as received (fields unchecked).
struct NBDRequest: Sendable {
    var flags: UInt16
    var type: UInt16
    var handle: UInt64
    var offset: UInt64
    var length: UInt32
    /// When the header was parsed, for the request's latency.
    var receivedAt: NIODeadline

    /// Reads the 28-byte header after its magic has been checked.
    /// Returns nil when fewer bytes are available.
    static func read(from buffer: inout ByteBuffer) -> NBDRequest? {
        guard buffer.readableBytes >= NBDProtocol.requestHeaderSize,
              let _ = buffer.readInteger(as: UInt32.self),
              let flags = buffer.readInteger(as: UInt16.self),
              let type = buffer.readInteger(as: UInt16.self),
              let handle = buffer.readInteger(as: UInt64.self),
              let offset = buffer.readInteger(as: UInt64.self),
              let length = buffer.readInteger(as: UInt32.self)
        else { return nil }
        return NBDRequest(flags: flags, type: type, handle: handle, offset: offset, length: length, receivedAt: .now())
    }

    /// A short name for logs.
    var commandName: String {
        switch type {
        case NBDProtocol.cmdRead: return "READ"
        case NBDProtocol.cmdWrite: return "WRITE"
        case NBDProtocol.cmdDisc: return "DISC"
        case NBDProtocol.cmdFlush: return "FLUSH"
        case NBDProtocol.cmdTrim: return "TRIM"
        case NBDProtocol.cmdCache: return "CACHE"
        case NBDProtocol.cmdWriteZeroes: return "WRITE_ZEROES"
        case NBDProtocol.cmdBlockStatus: return "BLOCK_STATUS"
        default: return "command \(type)"
        }
    }
}
