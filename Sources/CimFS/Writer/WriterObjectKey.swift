/// Identifies an object's content for deduplication: its length and its
/// ``CimObjectDigest`` (the pair object-id files sort by).
struct WriterObjectKey: Hashable {
    var length: UInt64
    var digest: [UInt8]
}
