/// What ``MSIXImporter/importPackage(at:to:rootDirectory:writer:progress:)`` did.
public struct MSIXImportSummary: Sendable {
    public var imagePath: String
    public var identity: AppxIdentity
    /// `\ROOT\<PackageFullName>`, the package's directory in the image.
    public var packageDirectory: String
    public var files: Int
    public var dataBytes: UInt64
}
