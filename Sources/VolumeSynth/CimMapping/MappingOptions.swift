/// How Windows ownership and permissions become Linux ones, as the vfat and
/// ntfs-3g mount options do it.
public struct MappingOptions: Sendable, Equatable {
    /// Owner of every file (`--uid`). Default 0.
    public var uid: UInt32 = 0
    /// Group of every file (`--gid`). Default 0.
    public var gid: UInt32 = 0
    /// Bits cleared from 0777 for directories (`--dmask`). Default 022 → 0755.
    public var directoryMask: UInt16 = 0o022
    /// Bits cleared from 0666 for files (`--fmask`). Default 022 → 0644.
    public var fileMask: UInt16 = 0o022
    /// The image directory that becomes the volume's root (`--root`), e.g.
    /// `\Files` for a container layer; nil: the image's root.
    public var root: String? = nil

    public init(uid: UInt32 = 0, gid: UInt32 = 0, directoryMask: UInt16 = 0o022, fileMask: UInt16 = 0o022, root: String? = nil) {
        self.uid = uid
        self.gid = gid
        self.directoryMask = directoryMask
        self.fileMask = fileMask
        self.root = root
    }
}
