/// What ``LayerImporter/importLayer(from:to:options:)`` did.
public struct LayerImportSummary: Sendable {
    public var imagePath: String
    /// Tar members read (PAX and long-name records not counted).
    public var entries: Int
    /// Whiteouts applied.
    public var whiteouts: Int
    /// File data bytes the layer holds (default and alternate streams).
    public var dataBytes: UInt64
    /// Of those, bytes written to the new image's regions.
    public var storedDataBytes: UInt64
    /// Files (FileIDs) and directory entries of the whole tree (parents included).
    public var fileCount: Int
    public var linkCount: Int
    /// Compression found: none, gzip or zstd.
    public var compression: String
    /// `sha256:` of the uncompressed tar (the layer's diff_id).
    public var diffID: String
    /// The layer's `Hives\<X>_DELTA` members, stored as they came (not merged).
    public var deltaHives: [String]
    /// Things the user should know (unmerged registry deltas), one line each.
    public var warnings: [String]
}
