/// Media types and annotations an import recognises.
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
