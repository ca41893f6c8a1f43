import ArgumentParser
import CimFS

/// `cimnbd cim extract IMAGE DIR`: restores an image's tree into a directory.
struct CimExtractCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract",
        abstract: "Extract a CIM image into a Linux directory.",
        discussion: """
            Restores the tree, file data (sparse files as holes), symlinks, hard links,
            last access and last write times, and the xattr mapping used by `cim create`:
            alternate data streams → user.NAME, security descriptor → trusted.ntfs_acl,
            attribute flags → trusted.ntfs_attrib, EAs → trusted.ntfs_ea, reparse points
            other than plain symlinks → trusted.ntfs_reparse_data (+ trusted.ntfs_reparse_tag
            when the tag is not the data's first 4 bytes); trusted.* needs root. Linux limits
            apply: names over 255 UTF-8 bytes and streams too large for an xattr fail.
            Creation and change times cannot be set on Linux and are not restored.
            DIR is created if missing and must otherwise be empty.

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
            print("\(directory): \(summary.directories) directories, \(summary.files) files, \(summary.symlinks) symlinks, "
                  + "\(summary.hardLinks) hard links, \(summary.bytes) bytes")
        }
    }
}
