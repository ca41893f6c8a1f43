import ArgumentParser
import CimFS
import MountService
import VolumeSynth

/// The mapping options shared by `export` and `mount`, named as vfat and ntfs-3g name them.
struct MappingArguments: ParsableArguments {
    @Option(help: ArgumentHelp("Owner of every file. Example: --uid 1000", valueName: "UID"))
    var uid: UInt32 = 0

    @Option(help: ArgumentHelp("Group of every file. Example: --gid 1000", valueName: "GID"))
    var gid: UInt32 = 0

    @Option(help: ArgumentHelp("Octal bits cleared from 0777 for directories. Example: --dmask 027 (directories 0750)", valueName: "MASK"))
    var dmask: String = "022"

    @Option(help: ArgumentHelp("Octal bits cleared from 0666 for files; the read-only attribute also clears the write bits. Example: --fmask 077 (files 0600)", valueName: "MASK"))
    var fmask: String = "022"

    @Option(help: ArgumentHelp("Image directory to use as the volume's root instead of the image root; link counts count only what is inside it. A container layer's filesystem is \\Files. Example: --root '\\Files'", valueName: "PATH"))
    var root: String?

    func options() throws -> MappingOptions {
        guard let d = UInt16(dmask, radix: 8), d <= 0o777 else { throw ValidationError("--dmask must be an octal mask such as 022") }
        guard let f = UInt16(fmask, radix: 8), f <= 0o777 else { throw ValidationError("--fmask must be an octal mask such as 022") }
        return MappingOptions(uid: uid, gid: gid, directoryMask: d, fileMask: f, root: root)
    }
}

enum VolumeFactories {
    /// The ext4 volume of `image`; warnings go to stderr, one line each.
    static func ext4(image: CimImage, guid: CimGUID, mapping: MappingOptions) throws -> Ext4Volume {
        let (volume, warnings) = try CimVolumeBuilder.ext4(image: image, guid: guid, mapping: mapping)
        for warning in warnings { printError("warning: \(image.path): \(warning)") }
        return volume
    }

    static let daemon: VolumeFactory = { image, record in
        guard let guid = CimGUID(string: record.guid) else { throw MountError.invalidGUID(text: record.guid) }
        return try ext4(image: image, guid: guid, mapping: record.mapping)
    }
}
