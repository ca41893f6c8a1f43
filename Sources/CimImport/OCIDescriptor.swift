/// The parts of the OCI image layout (and Docker's manifest formats) an
/// import reads: https://github.com/opencontainers/image-spec.
struct OCIDescriptor: Decodable {
    var mediaType: String?
    var digest: String
    var size: Int64?
    var urls: [String]?
    var annotations: [String: String]?
    var platform: OCIPlatform?
}

struct OCIPlatform: Decodable {
    var os: String?
    var architecture: String?
}
