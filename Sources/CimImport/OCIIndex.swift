/// `index.json`, an image index or a Docker manifest list.
struct OCIIndex: Decodable {
    var mediaType: String?
    var manifests: [OCIDescriptor]?
}
