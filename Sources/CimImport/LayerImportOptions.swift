import CimFS

/// How ``LayerImporter`` writes a layer's CIM.
public struct LayerImportOptions {
    /// The parent layer's `.cim` (same directory): the new image is a fork of it.
    public var parentImagePath: String?
    /// Options of the CIM writer (regions, dedup, …); its parent path is set from ``parentImagePath``.
    public var writer = CimWriterOptions()
    /// Called now and then while importing (from the calling thread).
    public var progress: ((ImportProgress) -> Void)?
    /// The layer's diff_id (`sha256:<hex>` of the uncompressed tar), checked before the image is renamed into place.
    public var expectedDiffID: String?
    /// Last check before the image is renamed into place (e.g. the blob's digest, known once all of it is read).
    public var verifyInput: (() throws -> Void)?

    public init(parentImagePath: String? = nil) { self.parentImagePath = parentImagePath }
}

/// Where an import is, for progress displays.
public struct ImportProgress: Sendable {
    /// Bytes read from the input (compressed, when it is).
    public var inputBytes: UInt64
    /// Tar (or package) entries handled.
    public var entries: Int
}

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
    /// Things the user should know (unmerged registry deltas, unconverted SDDL), one line each.
    public var warnings: [String]
}
