import ArgumentParser
import CimFS

/// `cimnbd cim create SRC IMAGE`: writes a CIM image from a directory tree.
struct CimCreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a CIM image from a Linux directory tree.",
        discussion: """
            Writes IMAGE (a NAME.cim path) and its region_<guid>_<n> and
            objectid_<guid>_<n> files into IMAGE's directory. Everything is
            written under temporary names and renamed into place last; on
            failure nothing is left behind.

            Mapping: directories, regular files (all-hole files become sparse streams),
            symlinks (IO_REPARSE_TAG_SYMLINK; relative targets keep the relative flag, '/'
            becomes '\\', an absolute target /x becomes \\??\\C:\\x), hard links (one FileID,
            several names). mtime → last write, ctime → change, atime → last access, birth
            time → creation. Xattrs: user.NAME → alternate data stream NAME,
            trusted.ntfs_acl → security descriptor, trusted.ntfs_attrib → attribute flags,
            trusted.ntfs_ea → EA buffer, trusted.ntfs_reparse_data → reparse buffer
            (trusted.ntfs_reparse_tag → reparse tag, when not the buffer's first 4 bytes).
            Object ids (objectid files, used for deduplication and by `cim verify`) are
            what Windows writes: the first 24 bytes of SHA-512 of each object, objects of
            at most 24 bytes inline, sorted by length then digest.

            Format versions: 2 (default) and 3 write the same layout with 96-byte file
            entries; 1 writes the 1.0 layout of Windows' 2020 tools (88-byte entries,
            region index 0, 1.0 in every header) for Windows builds before 2.0.

            Names that differ only in case (Sys and sys in one directory) cannot both be
            stored: CIM names are case-insensitive. --case-conflicts error (the default)
            lists every such group and writes nothing; skip keeps the first name in
            code-unit order and leaves the others out with a warning each; rename stores
            the others as NAME~2, NAME~3… (numbers chosen so that they collide with no
            other name) with a warning each, and records the Linux name in the file's
            extended attribute (EA) CIMNBD.LINUXNAME, value STORED/ORIGINAL in UTF-8.
            Windows ignores that EA; cim extract and the translator give the file its
            original name back.

            Examples:
              cimnbd cim create ./rootfs /images/layer.cim
              cimnbd cim create ./rootfs /images/layer-v1.cim --format-version 1
              cimnbd cim create ./rootfs /images/layer.cim --data-regions 4 \\
                  --small-data-threshold 0
              cimnbd cim create ./update /images/child.cim --parent /images/layer.cim
              cimnbd cim create ./debian-rootfs /images/debian.cim --case-conflicts rename
              cimnbd cim create ./app /images/app.cim --pe-image bin/app.exe \\
                  --pe-image bin/lib.dll
            """
    )

    @Argument(help: "Source directory to store in the image.")
    var source: String

    @Argument(help: "Path of the NAME.cim file to create (must not exist). Example: /images/layer.cim")
    var image: String

    @Option(name: .long, help: ArgumentHelp("Fork from this image: it must be in the same directory; identical data is referenced from its regions instead of stored again. Example: --parent /images/base.cim", valueName: "IMAGE"))
    var parent: String?

    @Option(name: .customLong("format-version"), help: ArgumentHelp("Format major version: 1 (the 1.0 layout, 88-byte entries, for Windows builds before 2.0), 2 or 3 (96-byte entries). Example: --format-version 1", valueName: "1|2|3"))
    var formatVersion: UInt32 = 2

    @Option(name: .customLong("data-regions"), help: ArgumentHelp("Number of page-aligned data region files to spread data over. Example: --data-regions 4", valueName: "N"))
    var dataRegions: Int = 1

    @Option(name: .customLong("small-data-threshold"), help: ArgumentHelp("Data shorter than this goes to the 8-byte aligned small-data region; 0 disables it. Example: --small-data-threshold 512", valueName: "BYTES"))
    var smallDataThreshold: UInt64 = 4096

    @Flag(name: .customLong("no-dedup"), help: "Store every object even if identical data is already stored (default: deduplicate by SHA-512/24 object id). Example: --no-dedup")
    var noDedup = false

    @Option(name: .customLong("entry-size"), help: ArgumentHelp("File entry size in bytes: at least the version's entry (88 for version 1, 96 for 2 and 3; the default), a multiple of 8. Example: --entry-size 128", valueName: "N"))
    var entrySize: Int?

    @Option(name: .customLong("pe-image"), help: ArgumentHelp("Store this file (path relative to SRC) as a PE-image stream; repeatable. Example: --pe-image bin/app.exe", valueName: "PATH"))
    var peImages: [String] = []

    @Option(name: .customLong("case-conflicts"), help: ArgumentHelp("Names that differ only in case: error (list them all, write nothing), skip (keep the first in code-unit order) or rename (store the others as NAME~2, NAME~3…; cim extract restores them). Example: --case-conflicts rename", valueName: "error|skip|rename"))
    var caseConflicts: CimCaseConflictPolicy = .error

    func run() throws {
        try reportingErrors {
            var options = CimWriterOptions()
            options.formatVersion = formatVersion
            options.dataRegions = dataRegions
            options.smallDataThreshold = smallDataThreshold
            options.deduplicate = !noDedup
            options.entrySize = entrySize
            options.peImagePaths = Set(peImages.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 })
            options.parentImagePath = parent
            options.caseConflicts = caseConflicts
            let showProgress = stderrIsTerminal
            if showProgress {
                options.progress = { progress in
                    let total = progress.filesTotal > 0 ? "/\(progress.filesTotal)" : ""
                    writeStderr("\r\(progress.phase): \(progress.filesDone)\(total) files, \(progress.bytesDone >> 20) MiB read   ")
                }
            }
            let summary = try CimWriter().createImage(from: source, imagePath: image, options: options)
            if showProgress { writeStderr("\n") }
            for line in summary.skipped { printError("skipped: " + line) }
            for line in summary.renamed { printError("renamed: " + line) }
            print("\(summary.imagePath): \(summary.fileCount) files (\(summary.directoryCount) directories), "
                  + "\(summary.dataBytes) data bytes, \(summary.storedDataBytes) stored, \(summary.deduplicatedBytes) deduplicated, "
                  + "region set \(summary.regionSet) (\(summary.regionFiles.count) regions)")
        }
    }
}

extension CimCaseConflictPolicy: ExpressibleByArgument {}
