import Crypto

/// The digest the writer records in object-id files: SHA-256 of the object's
/// bytes, truncated to its first 24 bytes. Windows' own algorithm is not
/// published, so images from other writers simply do not deduplicate against
/// ours (and every parent match is re-verified before it is used).
struct WriterObjectDigest {
    static let size = 24
    private var hasher = SHA256()

    mutating func update(_ raw: UnsafeRawBufferPointer) { hasher.update(bufferPointer: raw) }
    mutating func update(_ bytes: [UInt8]) { hasher.update(data: bytes) }

    consuming func finalize() -> [UInt8] { Array(hasher.finalize().prefix(WriterObjectDigest.size)) }

    static func of(_ bytes: [UInt8]) -> [UInt8] {
        var digest = WriterObjectDigest()
        digest.update(bytes)
        return digest.finalize()
    }
}

/// Identifies an object's content for deduplication.
struct WriterObjectKey: Hashable {
    var length: UInt64
    var digest: [UInt8]
}
