import VolumeSynth

/// One export the server offers: a volume under its GUID, with a description
/// shown by `NBD_OPT_LIST` and `NBD_INFO_DESCRIPTION` (e.g. image path and format).
public struct NBDExport: Sendable {
    /// The export name's identity; the name on the wire is `guid.description`.
    public let guid: ExportGUID
    /// The bytes served, read-only.
    public let volume: any Volume
    /// Human-readable text, e.g. `"C:\\images\\base.cim (CIM, ext4)"`.
    public let description: String

    /// Creates an export description.
    public init(guid: ExportGUID, volume: any Volume, description: String) {
        self.guid = guid
        self.volume = volume
        self.description = description
    }

    /// The export name clients send (canonical lowercase GUID).
    public var name: String { guid.description }
}
