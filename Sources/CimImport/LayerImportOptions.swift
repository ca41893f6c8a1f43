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
