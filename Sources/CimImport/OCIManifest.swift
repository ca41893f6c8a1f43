/// An image manifest (or, when it lists manifests, an index read in its place).
struct OCIManifest: Decodable {
    var mediaType: String?
    var config: OCIDescriptor?
    var layers: [OCIDescriptor]?
    var manifests: [OCIDescriptor]?
}
