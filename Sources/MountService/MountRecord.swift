import CimFS
import VolumeSynth

/// One mounted image, as the state file keeps it.
public struct MountRecord: Codable, Sendable, Equatable {
    /// The volume GUID, canonical lowercase text.
    public var guid: String
    /// The directory holding the image's files.
    public var imageDirectory: String
    /// The `.cim` file's name.
    public var imageName: String
    /// The CimMountImage flags given.
    public var flags: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var directoryMask: UInt16
    public var fileMask: UInt16
    /// The kernel device it is attached to, if any (e.g. `/dev/nbd0`).
    public var device: String?
    /// The image directory mounted as the volume's root (`--root`); absent in
    /// records written before it existed, meaning the image root.
    public var root: String?

    public init(guid: String, imageDirectory: String, imageName: String, flags: UInt32, mapping: MappingOptions, device: String? = nil) {
        self.guid = guid
        self.imageDirectory = imageDirectory
        self.imageName = imageName
        self.flags = flags
        self.uid = mapping.uid
        self.gid = mapping.gid
        self.directoryMask = mapping.directoryMask
        self.fileMask = mapping.fileMask
        self.device = device
        self.root = mapping.root
    }

    public var mapping: MappingOptions {
        MappingOptions(uid: uid, gid: gid, directoryMask: directoryMask, fileMask: fileMask, root: root)
    }

    /// Path of the `.cim` file.
    public var imagePath: String { (imageDirectory.hasSuffix("/") ? imageDirectory : imageDirectory + "/") + imageName }
}

/// What `list` reports for one mounted image.
public struct MountInfo: Codable, Sendable, Equatable {
    public var guid: String
    public var image: String
    public var size: UInt64
    public var format: String
    public var clients: Int
    public var device: String?
    public var uri: String
}
