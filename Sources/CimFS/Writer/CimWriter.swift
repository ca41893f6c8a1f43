#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Writes CIM images from Linux directory trees.
///
/// What the image holds for each source entry:
/// * directories, regular files and symlinks (other types are skipped and
///   listed in the summary); hard links become one FileID with several names;
/// * a regular file consisting only of holes becomes a sparse stream; other
///   files are copied in 1 MiB chunks (never held in memory whole), holes
///   becoming holes in the region file;
/// * a symlink becomes an IO_REPARSE_TAG_SYMLINK reparse point (rules in
///   ``WriterSymlinkReparse``: relative targets keep the relative flag, `/`
///   becomes `\`, an absolute target `/x` becomes `\??\C:\x`);
/// * times: mtime → last write, ctime → change, atime → last access, statx
///   birth time → creation (mtime when the filesystem has no birth time), in
///   100 ns FILETIME ticks;
/// * xattrs as ``WriterXattrMapping`` describes: `user.*` ↔ alternate data
///   streams, `trusted.ntfs_acl` ↔ security descriptor, `trusted.ntfs_attrib`
///   ↔ attribute flags, `trusted.ntfs_ea` ↔ EA buffer,
///   `trusted.ntfs_reparse_data` ↔ reparse buffer (`trusted.ntfs_reparse_tag`
///   ↔ the entry's tag when it is not the buffer's first 4 bytes). Files without
///   `trusted.ntfs_acl` get no security descriptor.
///
/// Object-id files record every object as Windows does (``CimObjectDigest``:
/// SHA-512's first 24 bytes, objects of at most 24 bytes inline), sorted by
/// length then digest.
///
/// Everything is written under temporary names in the image's directory and
/// renamed into place at the end (region files, then object-id files, then
/// the `.cim` last). On failure every file written is removed again, so the
/// final names never hold half an image.
public final class CimWriter {
    private let copyBufferSize = 1 << 20

    public init() {}

    /// Builds the image `imagePath` (a `NAME.cim` path; region and object-id
    /// files go next to it) from the tree at `sourceDirectory`.
    ///
    /// - Throws: ``CimError``: `.missingDirectory` when the source or target
    ///   directory does not exist, `.accessDenied` when the target cannot be
    ///   written, `.invalidInput` for options or names the format cannot hold
    ///   (case-insensitive duplicates unless ``CimWriterOptions/caseConflicts``
    ///   says otherwise, names over 255 or paths over 32767
    ///   UTF-16 units, an existing `.cim`), `.io` for failed system calls.
    @discardableResult
    public func createImage(from sourceDirectory: String, imagePath: String,
                            options: CimWriterOptions = CimWriterOptions()) throws -> CimWriteSummary {
        try options.validate()
        let imageName = WriterPaths.fileName(of: imagePath)
        guard imageName.hasSuffix(".cim"), imageName.count > 4 else {
            throw CimError.invalidInput("\(imagePath): the image path must name a NAME.cim file")
        }
        let directory = WriterPaths.directory(of: imagePath)
        let directoryStat: WriterStat
        do { directoryStat = try WriterLinux.stat(directory) } catch CimError.missingFile { throw CimError.missingDirectory(path: directory) }
        guard directoryStat.isDirectory else { throw CimError.notADirectory(path: directory) }
        if access(imagePath, F_OK) == 0 {
            throw CimError.invalidInput("\(imagePath): already exists; remove it first or choose another name")
        }
        var parent: WriterParentImage?
        if let parentPath = options.parentImagePath {
            let loaded = try WriterParentImage(cimPath: parentPath)
            guard let parentDirectory = WriterPaths.resolved(loaded.directory), let ownDirectory = WriterPaths.resolved(directory),
                  parentDirectory == ownDirectory else {
                throw CimError.invalidInput("\(parentPath): a parent image must be in the same directory as the new image (\(directory)), because the child reads the parent's region files from there")
            }
            parent = loaded
        }
        let progress = options.progress
        let tree = try WriterSourceTree.scan(sourceDirectory, caseConflicts: options.caseConflicts,
                                              overrides: options.sourceOverrides) { count in
            if count % 4096 == 0 { progress?(CimWriteProgress(phase: "scan", filesDone: count, filesTotal: 0, bytesDone: 0)) }
        }
        var job = WriterImageJob(directory: directory, imagePath: imagePath, options: options, parent: parent, tree: tree,
                                 copyBufferSize: copyBufferSize)
        do {
            return try job.run()
        } catch {
            job.removeEverything()
            throw error
        }
    }
}
