import CimFS

/// Turns a Windows container layer tar (as hcsshim and go-winio write them)
/// into a CIM image, forked from the parent layer's image when there is one,
/// laid out as hcsshim's CIM importer lays it out: tar paths verbatim
/// (`Files\…`, `Hives\…`, `UtilityVM\Files\…`).
///
/// The tar is streamed: member data goes straight into the image's regions,
/// only the tree's metadata is held in memory. Rules:
/// - Windows metadata from PAX records (``LayerMetadata``); no descriptor →
///   the 20-byte null descriptor; the reparse-point attribute only on
///   symlinks and mount points.
/// - `file:stream` and `file:stream:$DATA` members are alternate data streams
///   of `file`, which must exist.
/// - Symlinks become IO_REPARSE_TAG_SYMLINK, `MSWINDOWS.mountpoint=1` ones
///   IO_REPARSE_TAG_MOUNT_POINT (``WindowsReparse``); they are directories when
///   the attribute word says so or they are mount points.
/// - Hard links share the target's FileID; the target may come from a parent layer.
/// - `.wh.NAME` removes NAME (a whole directory subtree) from the tree seen so
///   far; a later member may create it again. `.wh..wh..opq` is rejected.
/// - A base layer (no parent) gets a root file `layout` (`vhd-with-hives\n`)
///   and `Hives\<X>_BASE` hard links to `Files\Windows\System32\config\<NAME>`.
/// - `Hives\<X>_DELTA` members of child layers are stored as they come (Windows
///   merges them with the offline-registry API; that is not done here) and
///   named in one warning.
/// - Rejected, naming the member: `..` or absolute paths, a hard link to a
///   missing target, a name that differs only in case from an existing one,
///   devices and FIFOs, opaque whiteouts.
///
/// Nothing is left under the image's names when the import fails.
public enum LayerImporter {
    static let hives: [(name: String, base: String, delta: String)] = [
        ("SYSTEM", "SYSTEM_BASE", "SYSTEM_DELTA"),
        ("SOFTWARE", "SOFTWARE_BASE", "SOFTWARE_DELTA"),
        ("SAM", "SAM_BASE", "SAM_DELTA"),
        ("SECURITY", "SECURITY_BASE", "SECURITY_DELTA"),
        ("DEFAULT", "DEFAULTUSER_BASE", "DEFAULTUSER_DELTA"),
    ]
    /// The warning for registry deltas `hives` of `input` left unmerged.
    public static func deltaHiveWarning(input: String, hives: [String]) -> String {
        "\(input): registry deltas \(hives.joined(separator: ", ")) stored as they are, not merged into new _BASE hives (Windows merges them with the offline-registry API); the parent's base hives stay in effect"
    }

    static let layoutContent = Array("vhd-with-hives\n".utf8)
    static let copyChunk = 1 << 20

    /// Imports the layer tar read from `source` (plain, gzip or zstd: told
    /// from its first bytes) into `imagePath`.
    @discardableResult
    public static func importLayer(from source: ByteSource, to imagePath: String, options: LayerImportOptions = LayerImportOptions()) throws -> LayerImportSummary {
        var writerOptions = options.writer
        writerOptions.parentImagePath = options.parentImagePath
        let writer = try CimTreeWriter(imagePath: imagePath, options: writerOptions)
        do {
            let root: CimTreeNode
            if let parentPath = options.parentImagePath {
                root = try CimTreeLoader.tree(of: try CimImage(path: parentPath))
            } else {
                root = CimTreeNode(kind: .directory)
            }
            let plain = try DecompressingSource(source, hashing: true)
            var state = LayerImportState(input: source.name, root: root, writer: writer, isBase: options.parentImagePath == nil)
            let tar = TarReader(source: plain)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: copyChunk, alignment: 16)
            defer { buffer.deallocate() }
            var lastReport: UInt64 = 0
            while let entry = try tar.next() {
                try state.apply(entry, tar: tar, buffer: buffer)
                if let progress = options.progress, plain.bytesProduced - lastReport >= 4 << 20 || state.entries % 1024 == 0 {
                    lastReport = plain.bytesProduced
                    progress(ImportProgress(inputBytes: (source as? FileByteSource)?.bytesRead ?? plain.bytesProduced, entries: state.entries))
                }
            }
            // Read to the very end: the gzip trailer is checked, and both digests cover every byte.
            while try plain.read(into: buffer) > 0 {}
            let diffID = plain.digest() ?? ""
            if let expected = options.expectedDiffID, expected != diffID {
                throw ImportError.digestMismatch(what: "\(source.name): uncompressed layer (diff_id)", expected: expected, found: diffID)
            }
            try options.verifyInput?()
            try state.finishTree()
            let written = try writer.finish(root: root)
            return LayerImportSummary(imagePath: imagePath, entries: state.entries, whiteouts: state.whiteouts, dataBytes: written.dataBytes,
                                      storedDataBytes: written.storedDataBytes, fileCount: written.fileCount, linkCount: written.linkCount,
                                      compression: plain.format.rawValue, diffID: diffID, deltaHives: state.deltaHives,
                                      warnings: state.warnings())
        } catch {
            writer.abandon()
            throw error
        }
    }
}
