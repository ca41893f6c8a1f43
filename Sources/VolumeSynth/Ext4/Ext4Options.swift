/// Settings of a synthesized ext4 volume that do not come from the tree.
public struct Ext4Options: Sendable, Equatable {
    /// The filesystem UUID (`s_uuid`), 16 bytes, e.g. the CIM volume GUID.
    public var volumeUUID: [UInt8]
    /// The volume label (`s_volume_name`); cut to 16 bytes of UTF-8.
    public var label: String
    /// Written to the superblock's creation, write, mount and check times, so
    /// the same tree and options always give the same bytes. It should not be
    /// in the future, or e2fsck reports the superblock times.
    public var creationTime: Timestamp

    public init(volumeUUID: [UInt8], label: String, creationTime: Timestamp) {
        self.volumeUUID = volumeUUID
        self.label = label
        self.creationTime = creationTime
    }
}
