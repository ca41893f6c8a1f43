import ArgumentParser
import CimFS
import VolumeSynth

/// `cimnbd export IMAGE -o FILE`.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write the ext4 volume synthesized from a CIM image to a file.",
        discussion: """
            The file is sparse wherever the volume reads as zeros, so a 1 TiB sparse file in \
            the image costs no disk space. Use it to inspect the volume (e2fsck -fn FILE, \
            debugfs FILE, mount -o loop,ro FILE /mnt) or to hand a raw disk to a hypervisor.

            Examples:
              cimnbd export layer.cim -o layer.ext4
              cimnbd export layer.cim -o layer.ext4 --volume-id 3f2a...-... --uid 1000 --gid 1000
            """
    )

    @Argument(help: "Path to the image's .cim file.")
    var image: String

    @Option(name: .shortAndLong, help: ArgumentHelp("The file to write (replaced if it exists).", valueName: "FILE"))
    var output: String

    @Option(name: .customLong("volume-id"), help: ArgumentHelp("Volume GUID, the filesystem UUID. Default: the image's region set GUID, so the same image always exports the same bytes.", valueName: "GUID"))
    var volumeID: String?

    @OptionGroup var mapping: MappingArguments

    func run() throws {
        try reportingErrors {
            let cim = try CimImage(path: image)
            var guid = cim.regionSet
            if let text = volumeID {
                guard let parsed = CimGUID(string: text) else { throw ValidationError("--volume-id: \"\(text)\" is not a GUID") }
                guid = parsed
            }
            let volume = try VolumeFactories.ext4(image: cim, guid: guid, mapping: try mapping.options())
            let terminal = stderrIsTerminal
            try writeVolume(volume, toFile: output, progress: terminal ? { done, total in
                printProgress("export: \(done >> 20)/\(total >> 20) MiB")
            } : nil)
            if terminal { printProgress(nil) }
        }
    }
}
