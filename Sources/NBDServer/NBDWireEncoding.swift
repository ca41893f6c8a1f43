import NIOCore

/// Encoders of the server's messages into `ByteBuffer`s.
enum NBDWireEncoding {
    /// Cuts `text` to the protocol's string limit on a character boundary.
    static func protocolString(_ text: String, limit: Int = NBDProtocol.maxStringLength) -> String {
        if text.utf8.count <= limit { return text }
        var out = ""
        for character in text {
            if out.utf8.count + character.utf8.count > limit { break }
            out.append(character)
        }
        return out
    }

    /// Fixed-newstyle option reply header followed by `payload`.
    static func optionReply(option: UInt32, type: UInt32, payload: ByteBuffer?, allocator: ByteBufferAllocator) -> ByteBuffer {
        let payloadLength = payload?.readableBytes ?? 0
        var buffer = allocator.buffer(capacity: 20 + payloadLength)
        buffer.writeInteger(NBDProtocol.optionReplyMagic)
        buffer.writeInteger(option)
        buffer.writeInteger(type)
        buffer.writeInteger(UInt32(payloadLength))
        if var payload { buffer.writeBuffer(&payload) }
        return buffer
    }

    /// Simple reply header (16 bytes); data, if any, follows separately.
    static func simpleReply(handle: UInt64, error: UInt32, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 16)
        buffer.writeInteger(NBDProtocol.simpleReplyMagic)
        buffer.writeInteger(error)
        buffer.writeInteger(handle)
        return buffer
    }

    /// Structured reply chunk header (20 bytes) announcing `length` payload bytes.
    static func writeChunkHeader(into buffer: inout ByteBuffer, handle: UInt64, flags: UInt16, type: UInt16, length: UInt32) {
        buffer.writeInteger(NBDProtocol.structuredReplyMagic)
        buffer.writeInteger(flags)
        buffer.writeInteger(type)
        buffer.writeInteger(handle)
        buffer.writeInteger(length)
    }

    /// A complete `NBD_REPLY_TYPE_ERROR` chunk with a human-readable message.
    static func structuredError(handle: UInt64, error: UInt32, message: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        // The message length field is 16 bits; the protocol caps strings at 4096.
        let text = protocolString(message)
        let messageLength = text.utf8.count
        var buffer = allocator.buffer(capacity: 20 + 6 + messageLength)
        writeChunkHeader(into: &buffer, handle: handle, flags: NBDProtocol.replyFlagDone, type: NBDProtocol.replyTypeError, length: UInt32(6 + messageLength))
        buffer.writeInteger(error)
        buffer.writeInteger(UInt16(messageLength))
        buffer.writeString(text)
        return buffer
    }

    /// A complete `NBD_REPLY_TYPE_NONE` chunk with the done flag.
    static func structuredDone(handle: UInt64, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 20)
        writeChunkHeader(into: &buffer, handle: handle, flags: NBDProtocol.replyFlagDone, type: NBDProtocol.replyTypeNone, length: 0)
        return buffer
    }
}
