import CimFS

/// Builds the volume of a CIM image: the one place that decides the UUID,
/// label and superblock time, shared by `cimnbd export`, the daemon and tests.
public enum CimVolumeBuilder {
    /// The ext4 volume of `image`: UUID = `guid` (so `/dev/disk/by-uuid/<guid>`
    /// and `mount UUID=<guid>` work), label = image name without `.cim` cut to
    /// 16 bytes, superblock times = the root's last write time (so the bytes
    /// are a function of the image and options alone).
    ///
    /// - Returns: the volume and every warning of the mapping and the layout.
    public static func ext4(image: CimImage, guid: CimGUID, mapping: MappingOptions) throws -> (volume: Ext4Volume, warnings: [String]) {
        let source = try CimTreeSource(image: image, options: mapping)
        var label = image.name.hasSuffix(".cim") ? String(image.name.dropLast(4)) : image.name
        while label.utf8.count > 16 { label.removeLast() }
        let root = try image.entry(image.rootID)
        let rootTime = WindowsTime.timestamp(root.lastWriteTime)
        let created = Timestamp(seconds: max(0, min(rootTime.seconds, Int64(UInt32.max))), nanoseconds: 0)
        let volume = try Ext4Volume(source: source, options: Ext4Options(volumeUUID: guid.uuidBytes, label: label, creationTime: created))
        return (volume, source.warnings + volume.warnings)
    }
}
