import Foundation

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

/// `index.json`, an image index or a Docker manifest list.
struct OCIIndex: Decodable {
    var mediaType: String?
    var manifests: [OCIDescriptor]?
}

struct OCIManifest: Decodable {
    var mediaType: String?
    var config: OCIDescriptor?
    var layers: [OCIDescriptor]?
    var manifests: [OCIDescriptor]?
}

struct OCIImageConfig: Decodable {
    struct RootFS: Decodable {
        var type: String?
        var diff_ids: [String]?
    }
    var os: String?
    var rootfs: RootFS?
}

enum OCIMediaType {
    static let refAnnotation = "org.opencontainers.image.ref.name"
    static let indexTypes: Set<String> = [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
    static let layerTypes: Set<String> = [
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ]
    static func isForeign(_ type: String) -> Bool { type.contains("foreign") || type.contains("nondistributable") }
}
