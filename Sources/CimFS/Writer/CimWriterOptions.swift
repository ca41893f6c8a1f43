/// Choices for ``CimWriter/createImage(from:imagePath:options:)``.
///
/// The defaults give a compact version-2 image: one metadata region, one
/// page-aligned data region, a small-data region for files under 4 KiB and
/// deduplication of identical content.
public struct CimWriterOptions: Sendable {
    /// Header major version, 1, 2 or 3. Version 1 writes the layout Windows'
    /// tools wrote in 2020 (88-byte file entries without parent FileID and base
    /// region index, region headers with index 0), for Windows builds that
    /// predate 2.0. Versions 2 and 3 write the same layout (the differences of
    /// version 3 are not published); only the header says 3.
    public var formatVersion: UInt32 = 2
    /// Number of page-aligned data regions (≥ 1). New data objects are spread
    /// over them in turn.
    public var dataRegions: Int = 1
    /// Data (file contents and alternate streams) shorter than this many bytes
    /// goes to the small-data region (region type 2, 8-byte aligned). 0 turns the
    /// small-data region off.
    public var smallDataThreshold: UInt64 = 4096
    /// Store identical objects once (file data by ``CimObjectDigest``, and metadata
    /// objects such as security descriptors). With a parent image, also reuses
    /// objects listed in the parent's object-id files.
    public var deduplicate: Bool = true
    /// File entry size in bytes: at least the version's entry (88 bytes for
    /// version 1, 96 for 2 and 3) and a multiple of 8; bytes past it are zero.
    /// nil: exactly the version's entry.
    public var entrySize: Int? = nil

    /// The entry size written: ``entrySize``, or the version's own.
    var effectiveEntrySize: Int { entrySize ?? CimFormat.minimumFileEntrySize(major: formatVersion) }
    /// Files to store as PE-image streams, as `/`-separated paths relative to the
    /// source directory (a leading `/` is ignored).
    public var peImagePaths: Set<String> = []
    /// Alternatively, decides per relative path whether a regular file is stored
    /// as a PE-image stream (in addition to ``peImagePaths``).
    public var peImagePredicate: (@Sendable (String) -> Bool)? = nil
    /// Path of a `.cim` file to fork from. It must live in the same directory as
    /// the new image, whose header then lists the parent's region sets and which
    /// references the parent's objects instead of storing identical data again.
    public var parentImagePath: String? = nil
    /// What to do with names of one directory that differ only in case
    /// (under the upcase table), which a CIM image cannot hold side by side.
    public var caseConflicts: CimCaseConflictPolicy = .error
    /// Called now and then while writing (from the calling thread).
    public var progress: (@Sendable (CimWriteProgress) -> Void)? = nil

    /// Test hook: fail after the temporary region files exist, to check cleanup.
    var failAfterCreatingTemporaries = false
    /// Test hook: what a Linux tree cannot hold, to build images as Windows writes them.
    var sourceOverrides = WriterSourceOverrides()

    public init() {}

    func isPEImage(_ relativePath: String) -> Bool {
        if peImagePaths.contains(relativePath) || peImagePaths.contains("/" + relativePath) { return true }
        return peImagePredicate?(relativePath) ?? false
    }

    func validate() throws {
        guard CimFormat.knownMajorVersions.contains(formatVersion) else {
            throw CimError.invalidInput("format version \(formatVersion) is not supported: use 1, 2 or 3")
        }
        guard dataRegions >= 1, dataRegions <= 1000 else {
            throw CimError.invalidInput("data region count \(dataRegions) is out of range: use 1 to 1000")
        }
        let minimum = CimFormat.minimumFileEntrySize(major: formatVersion)
        let size = effectiveEntrySize
        guard size >= minimum, size % 8 == 0, size <= Int(UInt16.max) else {
            throw CimError.invalidInput("entry size \(size) is invalid: for format version \(formatVersion) it must be at least \(minimum), a multiple of 8 and at most 65528")
        }
    }
}

/// What ``CimWriter`` does with names that differ only in case, such as
/// `Sys` and `sys` (CIM names are case-insensitive, Linux names are not).
public enum CimCaseConflictPolicy: String, Sendable, CaseIterable {
    /// Refuse the tree, listing every conflict.
    case error
    /// Keep the first name in code-unit order, leave the others out (each listed in ``CimWriteSummary/skipped``).
    case skip
    /// Keep the first name in code-unit order, store the others as `NAME~2`,
    /// `NAME~3`… (each listed in ``CimWriteSummary/renamed``) and record the
    /// original name in the EA `CIMNBD.LINUXNAME`, from which `cim extract`
    /// and the translator restore it.
    case rename
}

/// Test hook of ``CimWriterOptions``: names and streams that no Linux tree
/// can hold (a 255-unit name is up to 765 UTF-8 bytes, a stream over 64 KiB
/// fits no xattr), keyed by the `/`-separated path below the source root.
struct WriterSourceOverrides: Sendable {
    /// The name to store instead of the file's Linux name.
    var names: [String: [UInt16]] = [:]
    /// Alternate streams to add to the file.
    var streams: [String: [(name: [UInt16], value: [UInt8])]] = [:]
}

/// Where the writer is, for progress displays.
public struct CimWriteProgress: Sendable {
    /// "scan", "write" or "finish".
    public var phase: String
    /// Files (FileIDs) handled so far in this phase.
    public var filesDone: Int
    /// Files in total (known once the scan is over; 0 during the scan).
    public var filesTotal: Int
    /// Bytes of file data read so far.
    public var bytesDone: UInt64
}

/// What ``CimWriter/createImage(from:imagePath:options:)`` produced.
public struct CimWriteSummary: Sendable {
    /// The `.cim` file written.
    public var imagePath: String
    /// The GUID of the image's own region set.
    public var regionSet: CimGUID
    /// Region files of the image's own set, in index order (full paths).
    public var regionFiles: [String]
    /// Object-id files, in index order (full paths).
    public var objectIDFiles: [String]
    /// Regions of parent images referenced by the header.
    public var parentRegionCount: Int
    /// Distinct files (FileIDs), directories included.
    public var fileCount: Int
    /// Directories among them.
    public var directoryCount: Int
    /// Directory entries (hard links count once per name).
    public var linkCount: Int
    /// File data bytes (default and alternate streams) the source holds.
    public var dataBytes: UInt64
    /// Bytes written to data and small-data regions.
    public var storedDataBytes: UInt64
    /// Bytes not written because an identical object was already stored (here or in a parent).
    public var deduplicatedBytes: UInt64
    /// Files stored as sparse streams.
    public var sparseFiles: Int
    /// Files stored as PE-image streams.
    public var peImageFiles: Int
    /// Source entries and xattrs the image cannot hold, one line each.
    public var skipped: [String]
    /// Names stored under another name (case conflicts with `.rename`), one line each.
    public var renamed: [String] = []
}
