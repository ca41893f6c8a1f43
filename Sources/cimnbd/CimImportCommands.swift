import ArgumentParser
import CimFS
import CimImport

/// Shows import progress on a terminal: input bytes and entries done.
func importProgressLine(_ prefix: String, _ progress: ImportProgress) {
    printProgress("\(prefix)\(progress.inputBytes >> 20) MiB read, \(progress.entries) entries")
}

/// `cimnbd cim import-layer LAYER OUT.cim [--parent PARENT.cim]`.
struct CimImportLayerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-layer",
        abstract: "Turn a Windows container layer tar into a CIM, as hcsshim's CIM importer does.",
        discussion: """
            LAYER is a .tar, .tar.gz or .tar.zst file, or - for stdin; the compression is \
            recognised from the bytes. The tar is streamed: file data goes straight into the \
            image's region files, memory holds only the tree's metadata.

            Paths are stored verbatim (Files\\…, Hives\\…, UtilityVM\\Files\\…), so the \
            container filesystem is the image's \\Files directory (mount or export it with \
            --root '\\Files'). Windows metadata comes from go-winio's PAX records \
            (MSWINDOWS.fileattr, .rawsd, .sd as SDDL when there is no .rawsd, .xattr.*, \
            .mountpoint, LIBARCHIVE.creationtime, mtime/atime/ctime; SDDL that cannot be \
            converted fails the import, naming the entry); file:stream and file:stream:$DATA members are alternate data \
            streams; .wh.NAME whiteouts remove NAME. With --parent the image is a fork: its \
            tree is the parent's with this layer applied and unchanged data stays in the \
            parent's regions. Without it (a base layer) the image also gets the root file \
            'layout' and the Hives\\<X>_BASE hard links to Files\\Windows\\System32\\config.

            Prints one summary line; warnings (e.g. registry deltas left unmerged) go to stderr.

            Examples:
              cimnbd cim import-layer base.tar.gz /images/base.cim
              cimnbd cim import-layer update.tar.zst /images/update.cim --parent /images/base.cim
              zcat layer.tar.gz | cimnbd cim import-layer - /images/layer.cim
            """
    )

    @Argument(help: "The layer: a .tar, .tar.gz or .tar.zst file, or - for stdin.")
    var layer: String

    @Argument(help: "Path of the NAME.cim file to create (must not exist). Example: /images/layer.cim")
    var image: String

    @Option(name: .long, help: ArgumentHelp("The parent layer's image, in the same directory: the new image is its fork. Example: --parent /images/base.cim", valueName: "PARENT.cim"))
    var parent: String?

    func run() throws {
        try reportingErrors {
            let source = try FileByteSource(path: layer)
            var options = LayerImportOptions(parentImagePath: parent)
            let terminal = stderrIsTerminal
            if terminal { options.progress = { importProgressLine("import-layer: ", $0) } }
            let summary = try LayerImporter.importLayer(from: source, to: image, options: options)
            if terminal { printProgress(nil) }
            for warning in summary.warnings { printError("warning: " + warning) }
            print("\(summary.imagePath): \(summary.entries) entries (\(summary.whiteouts) whiteouts), \(summary.compression) input, "
                  + "\(summary.fileCount) files in the tree, \(summary.dataBytes) data bytes, \(summary.storedDataBytes) stored, diff_id \(summary.diffID)")
        }
    }
}

/// `cimnbd cim import-msix PACKAGE.msix OUT.cim [--root-directory NAME]`.
struct CimImportMSIXCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-msix",
        abstract: "Turn an MSIX package into an app-attach CIM, as msixmgr does.",
        discussion: """
            The image holds \\NAME\\<PackageFullName>\\ with every file of the package (zip \
            names percent-decoded), the footprint files (AppxManifest.xml, AppxBlockMap.xml, \
            AppxSignature.p7x, AppxMetadata\\CodeIntegrity.cat) included and \
            [Content_Types].xml left out, as 'msixmgr -Unpack -packagePath P -destination \
            OUT.cim -applyacls -create -fileType cim -rootDirectory NAME' lays it out. \
            PackageFullName is Name_Version_Architecture_ResourceId_PublisherId from \
            <Identity> in AppxManifest.xml. Files carry the ARCHIVE attribute; every entry but \
            the root gets the security descriptor -applyacls writes (only the package's own \
            processes may run its files) and the import time. Prints the package directory.

            Examples:
              cimnbd cim import-msix putty.msix /images/putty.cim
              cimnbd cim import-msix app.msix /images/app.cim --root-directory apps
            """
    )

    @Argument(help: "The MSIX package (a zip file). Example: putty.msix")
    var package: String

    @Argument(help: "Path of the NAME.cim file to create (must not exist). Example: /images/app.cim")
    var image: String

    @Option(name: .customLong("root-directory"), help: ArgumentHelp("Top directory of the image that holds the package directory. Example: --root-directory apps", valueName: "NAME"))
    var rootDirectory: String = "msix"

    func run() throws {
        try reportingErrors {
            let terminal = stderrIsTerminal
            let summary = try MSIXImporter.importPackage(at: package, to: image, rootDirectory: rootDirectory,
                                                         progress: terminal ? { importProgressLine("import-msix: ", $0) } : nil)
            if terminal { printProgress(nil) }
            print("\(summary.imagePath): \(summary.packageDirectory) (\(summary.files) files, \(summary.dataBytes) bytes)")
        }
    }
}

/// `cimnbd image …`: container images.
struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Import Windows container images (OCI image layouts) as chains of CIMs.",
        subcommands: [ImageImportCommand.self]
    )
}

/// `cimnbd image import OCI_DIR[:REF] DEST_DIR`.
struct ImageImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a Windows container image from an OCI image layout: one forked CIM per layer.",
        discussion: """
            OCI_DIR is an OCI image layout (skopeo copy docker://IMAGE oci:OCI_DIR \
            --override-os windows); REF picks a manifest by its reference name when index.json \
            lists several. The config must say os windows. Every blob's digest and every \
            layer's diff_id is checked. Each layer becomes DEST_DIR/<chain id>.cim, a fork of \
            the layer below, so a layer already imported on the same lower layers is reused. \
            Prints each layer's .cim path on its own line, base first: the last line is the \
            top, the image to mount (with --root '\\Files' for the container filesystem).

            Examples:
              cimnbd image import ./nanoserver /images
              cimnbd image import ./layout:ltsc2022 /images
              cimnbd mount /images "$(cimnbd image import ./nanoserver /images | tail -1 | xargs basename)" --root '\\Files'
            """
    )

    @Argument(help: "The OCI image layout directory, optionally :REF. Example: ./nanoserver:ltsc2022")
    var layout: String

    @Argument(help: "Directory for the layers' images (must exist). Example: /images")
    var destination: String

    func run() throws {
        try reportingErrors {
            let importer = OCIImageImporter(argument: layout)
            let terminal = stderrIsTerminal
            var imported = 0, reused = 0
            let layers = try importer.importImage(
                into: destination,
                progress: terminal ? { index, count, progress in importProgressLine("layer \(index + 1)/\(count): ", progress) } : nil,
                layerDone: { layer in
                    if terminal { printProgress(nil) }
                    if layer.imported { imported += 1 } else { reused += 1 }
                    print(layer.imagePath)
                })
            // One warning for the image, whichever layers brought deltas and whether they were imported now.
            if let warning = try OCIImageImporter.unmergedHivesWarning(layers: layers) { printError("warning: " + warning) }
            printError("\(layers.count) layers: \(imported) imported, \(reused) already in \(destination); top: \(layers.last?.imagePath ?? "")")
        }
    }
}
