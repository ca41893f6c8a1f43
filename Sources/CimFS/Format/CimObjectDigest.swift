import Crypto

/// The digest object-id files record for an object (format section 4, as the
/// images Windows writes show it): the first 24 bytes of SHA-512 of the
/// object's bytes, or, for an object of at most 24 bytes, the bytes
/// themselves, zero-padded. Writer, verifier and fork deduplication all use it.
public struct CimObjectDigest {
    /// Bytes of a digest.
    public static let size = CimFormat.objectIDDigestSize
    private var hasher = SHA512()
    /// The first bytes seen, kept until more than `size` have arrived (inline objects).
    private var head: [UInt8] = []
    private var length: UInt64 = 0

    public init() {}

    /// Adds the next bytes of the object.
    public mutating func update(_ raw: UnsafeRawBufferPointer) {
        if length < UInt64(Self.size) { head += raw.prefix(Self.size - Int(length)) }
        length += UInt64(raw.count)
        hasher.update(bufferPointer: raw)
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The digest of everything added.
    public func finalize() -> [UInt8] {
        if length <= UInt64(Self.size) { return head + [UInt8](repeating: 0, count: Self.size - head.count) }
        return Array(hasher.finalize().prefix(Self.size))
    }

    /// The digest of `bytes`.
    public static func of(_ bytes: [UInt8]) -> [UInt8] {
        var digest = CimObjectDigest()
        digest.update(bytes)
        return digest.finalize()
    }

    /// The digest of `length` bytes at `offset` of `file`, read in 1 MiB chunks.
    /// The range must lie inside the file (the read throws otherwise).
    public static func of(_ file: RegionFile, offset: UInt64, length: UInt64) throws -> [UInt8] {
        if length <= UInt64(size) {
            let bytes = try file.read(at: offset, length: Int(length))
            return bytes + [UInt8](repeating: 0, count: size - bytes.count)
        }
        var digest = CimObjectDigest()
        let chunk = Int(min(length, 1 << 20))
        guard chunk > 0 else { return digest.finalize() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var done: UInt64 = 0
        while done < length {
            let n = Int(min(UInt64(chunk), length - done))
            let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n])
            try file.read(into: slice, at: offset + done)
            digest.update(UnsafeRawBufferPointer(slice))
            done += UInt64(n)
        }
        return digest.finalize()
    }
}
