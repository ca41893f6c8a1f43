import ArgumentParser
import CimFS

/// `cimnbd cim extract IMAGE DIR`: restores an image's tree into a directory.
struct CimExtractCommand: ParsableCommand {
    /// Exit status when the tree was restored except what Linux cannot hold.
    static let incompleteExitCode: Int32 = 3

    static let configuration = CommandConfiguration(
        commandName: "extract",
        abstract: "Extract a CIM image into a Linux directory.",
        discussion: """
            Restores the tree the translator (cimnbd export) shows, with the same mapping:
            file data (sparse files as holes), hard links, last access and last write
            times; symlink and mount-point (junction) reparse points become symlinks,
            directories included (absolute targets C:\\x become /x); alternate data
            streams → user.NAME, security descriptor → trusted.ntfs_acl, attribute flags →
            trusted.ntfs_attrib, EAs → trusted.ntfs_ea, reparse points other than plain
            symlinks → trusted.ntfs_reparse_data (+ trusted.ntfs_reparse_tag when the tag
            is not the data's first 4 bytes); trusted.* needs root. Names that
            `cim create --case-conflicts rename` changed get their original names back.
            Creation and change times cannot be set on Linux and are not restored.
            DIR is created if missing and must otherwise be empty.

            What Linux cannot hold is changed or left out, everything else is restored:
            a name over 255 UTF-8 bytes (or with a lone surrogate, '/' or NUL) gets the
            form NAME~<16 hex digits of its FNV-1a-64 hash>, the original UTF-16LE name
            kept in trusted.cimnbd.name; a stream or attribute the filesystem cannot
            hold (over 64 KiB, past the inode's xattr space, user.* on a symlink) is left
            out. One warning line per file names each, and a summary line counts them.

            Exit status: 0 when everything was restored, 3 when something was renamed or
            left out (the rest is restored), 1 on errors (nothing more is done).

            Example:
              cimnbd cim extract /images/layer.cim ./rootfs-copy
            """
    )

    @Argument(help: "Path of the NAME.cim file to read. Example: /images/layer.cim")
    var image: String

    @Argument(help: "Directory to extract into (created if missing, must be empty).")
    var directory: String

    func run() throws {
        try reportingErrors {
            var options = CimExtractOptions()
            let showProgress = stderrIsTerminal
            if showProgress {
                options.progress = { done, total in writeStderr("\rextract: \(done)/\(total) files   ") }
            }
            let summary = try CimExtractor().extract(imagePath: image, to: directory, options: options)
            if showProgress { writeStderr("\n") }
            for line in summary.warnings { printError("warning: " + line) }
            print("\(directory): \(summary.directories) directories, \(summary.files) files, \(summary.symlinks) symlinks, "
                  + "\(summary.hardLinks) hard links, \(summary.bytes) bytes"
                  + (summary.namesRestored > 0 ? ", \(summary.namesRestored) original names restored" : ""))
            if !summary.isComplete {
                printError("\(directory): incomplete: \(summary.namesChanged) names changed, "
                           + "\(summary.attributesLeftOut) streams/attributes left out (see the warnings above)")
                throw ExitCode(Self.incompleteExitCode)
            }
        }
    }
}
