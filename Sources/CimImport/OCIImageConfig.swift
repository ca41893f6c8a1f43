/// The image config: the OS and the layers' diff_ids.
struct OCIImageConfig: Decodable {
    struct RootFS: Decodable {
        var type: String?
        var diff_ids: [String]?
    }
    var os: String?
    var rootfs: RootFS?
}
