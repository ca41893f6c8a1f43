#if canImport(Glibc)
import Glibc
#endif
import CimFS
import Crypto
import Foundation

/// Imports a Windows container image from an OCI image layout directory
/// (`skopeo copy docker://… oci:DIR`): one forked CIM per layer, base first,
/// each the previous one's child, named `<chain id>.cim` in the destination
/// (the OCI ChainID of the layer stack, so a layer already imported on the
/// same lower layers is reused, not written again).
///
/// Checks: `index.json` names the manifest (by `org.opencontainers.image.ref.name`,
/// or the only one; indexes and Docker manifest lists are followed to the
/// `windows` entry), the config says `os: windows` and lists one diff_id per
/// layer, every blob hashes to its digest and every uncompressed layer to its
/// diff_id. A failing layer leaves nothing under its name; layers imported
/// before it stay (they are complete, and reused next time).
public struct OCIImageImporter {
    public let layoutDirectory: String
    public let reference: String?

    /// One layer of the result.
    public struct Layer: Sendable {
        public var imagePath: String
        public var diffID: String
        /// False when the image was already in the destination.
        public var imported: Bool
        public var summary: LayerImportSummary?
    }

    /// `DIR` or `DIR:REF`: a trailing `:REF` counts when `DIR:REF` itself is not a directory.
    public init(argument: String) {
        var isDirectory: ObjCBool = false
        if let colon = argument.lastIndex(of: ":"), !(FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) && isDirectory.boolValue) {
            layoutDirectory = String(argument[..<colon])
            let ref = String(argument[argument.index(after: colon)...])
            reference = ref.isEmpty ? nil : ref
        } else {
            layoutDirectory = argument
            reference = nil
        }
    }

    public init(layoutDirectory: String, reference: String?) {
        self.layoutDirectory = layoutDirectory
        self.reference = reference
    }

    /// The image's one warning about registry deltas left unmerged: the
    /// `Hives\<X>_DELTA` entries of the top layer's tree, which holds those of
    /// every layer below it (imported now or reused); nil when there are none.
    public static func unmergedHivesWarning(layers: [Layer]) throws -> String? {
        guard layers.count > 1, let top = layers.last else { return nil }
        let image = try CimImage(path: top.imagePath)
        guard let hives = try image.lookup("Hives", in: image.rootID), try image.entry(hives).isDirectory else { return nil }
        let deltas = Set(LayerImporter.hives.map(\.delta))
        let names = try image.children(of: hives).map(\.name).filter { deltas.contains($0.uppercased()) }.sorted()
        guard !names.isEmpty else { return nil }
        return LayerImporter.deltaHiveWarning(input: top.imagePath, hives: names)
    }

    /// Imports every layer into `destination`.
    ///
    /// - Parameter progress: gets the layer index (0-based), the layer count and the layer's progress.
    public func importImage(into destination: String, writer: CimWriterOptions = CimWriterOptions(),
                            progress: ((Int, Int, ImportProgress) -> Void)? = nil,
                            layerDone: ((Layer) -> Void)? = nil) throws -> [Layer] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: destination, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ImportError.badLayout(path: destination, problem: "destination directory does not exist")
        }
        let manifest = try findManifest()
        guard let configDescriptor = manifest.config else {
            throw ImportError.badLayout(path: layoutDirectory, problem: "the manifest has no config")
        }
        let config = try decode(OCIImageConfig.self, from: try readBlob(configDescriptor, what: "image config"), what: "image config \(configDescriptor.digest)")
        guard let os = config.os, os.lowercased() == "windows" else {
            throw ImportError.badLayout(path: layoutDirectory, problem: "the image is for os \"\(config.os ?? "?")\", not windows (pull with skopeo --override-os windows)")
        }
        let layers = manifest.layers ?? []
        let diffIDs = config.rootfs?.diff_ids ?? []
        guard !layers.isEmpty else { throw ImportError.badLayout(path: layoutDirectory, problem: "the manifest lists no layers") }
        guard diffIDs.count == layers.count else {
            throw ImportError.badLayout(path: layoutDirectory, problem: "the config lists \(diffIDs.count) diff_ids for \(layers.count) layers")
        }
        var result: [Layer] = []
        var chainID: String?
        var parentPath: String?
        for (index, descriptor) in layers.enumerated() {
            let diffID = diffIDs[index]
            guard OCIImageImporter.isSHA256(diffID) else {
                throw ImportError.badLayout(path: layoutDirectory, problem: "diff_id \(index + 1) \"\(diffID)\" is not a sha256 digest")
            }
            let mediaType = descriptor.mediaType ?? ""
            guard OCIMediaType.layerTypes.contains(mediaType) else {
                throw ImportError.badLayout(path: layoutDirectory, problem: "layer \(index + 1) (\(descriptor.digest)) has media type \"\(mediaType)\", not a tar layer")
            }
            chainID = chainID.map { OCIImageImporter.sha256("\($0) \(diffID)") } ?? diffID
            let name = String(chainID!.dropFirst("sha256:".count)) + ".cim"
            let imagePath = (destination.hasSuffix("/") ? destination : destination + "/") + name
            if access(imagePath, F_OK) == 0 {
                _ = try CimImage(path: imagePath)  // complete (the .cim is renamed last) and readable
                let layer = Layer(imagePath: imagePath, diffID: diffID, imported: false, summary: nil)
                result.append(layer)
                layerDone?(layer)
                parentPath = imagePath
                continue
            }
            let blobPath = try self.blobPath(descriptor.digest)
            guard access(blobPath, F_OK) == 0 else {
                let hint = OCIMediaType.isForeign(mediaType) ? " (a foreign layer; its blob comes from \(descriptor.urls?.first ?? "its URLs"))" : ""
                throw ImportError.badLayout(path: layoutDirectory, problem: "layer \(index + 1): blob \(descriptor.digest) is missing\(hint)")
            }
            let source = try FileByteSource(path: blobPath, hashing: true)
            var options = LayerImportOptions(parentImagePath: parentPath)
            options.writer = writer
            options.expectedDiffID = diffID
            let digest = descriptor.digest
            options.verifyInput = {
                let found = source.digest() ?? ""
                guard found == digest else {
                    throw ImportError.digestMismatch(what: "\(blobPath) (layer \(index + 1))", expected: digest, found: found)
                }
                if let size = descriptor.size, UInt64(size) != source.bytesRead {
                    throw ImportError.badLayout(path: blobPath, problem: "layer \(index + 1) is \(source.bytesRead) bytes, the manifest says \(size)")
                }
            }
            if let progress { options.progress = { progress(index, layers.count, $0) } }
            let summary = try LayerImporter.importLayer(from: source, to: imagePath, options: options)
            let layer = Layer(imagePath: imagePath, diffID: diffID, imported: true, summary: summary)
            result.append(layer)
            layerDone?(layer)
            parentPath = imagePath
        }
        return result
    }

    static func isSHA256(_ digest: String) -> Bool {
        guard digest.hasPrefix("sha256:") else { return false }
        let hex = digest.utf8.dropFirst(7)
        return hex.count == 64 && hex.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    static func sha256(_ text: String) -> String {
        "sha256:" + Hex.string(SHA256.hash(data: Array(text.utf8)))
    }

    func blobPath(_ digest: String) throws -> String {
        guard OCIImageImporter.isSHA256(digest) else {
            throw ImportError.badLayout(path: layoutDirectory, problem: "digest \"\(digest)\" is not sha256:<64 hex digits>")
        }
        return "\(layoutDirectory)/blobs/sha256/\(digest.dropFirst(7))"
    }

    /// A small JSON blob, its digest checked.
    func readBlob(_ descriptor: OCIDescriptor, what: String) throws -> [UInt8] {
        let path = try blobPath(descriptor.digest)
        let bytes = try OCIImageImporter.readSmallFile(path, what: what)
        let found = "sha256:" + Hex.string(SHA256.hash(data: bytes))
        guard found == descriptor.digest else {
            throw ImportError.digestMismatch(what: "\(path) (\(what))", expected: descriptor.digest, found: found)
        }
        return bytes
    }

    static func readSmallFile(_ path: String, what: String, limit: Int = 4 << 20) throws -> [UInt8] {
        let source = try FileByteSource(path: path)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try source.read(into: $0) }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            guard bytes.count <= limit else { throw ImportError.badLayout(path: path, problem: "\(what) is over \(limit >> 20) MiB") }
        }
        return bytes
    }

    func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw ImportError.badLayout(path: layoutDirectory, problem: "\(what) is not valid JSON of the expected shape: \(error)")
        }
    }

    /// The image manifest `index.json` leads to.
    func findManifest() throws -> OCIManifest {
        let indexPath = "\(layoutDirectory)/index.json"
        guard access(indexPath, F_OK) == 0 else {
            throw ImportError.badLayout(path: layoutDirectory, problem: "no index.json: not an OCI image layout (skopeo copy docker://IMAGE oci:DIR makes one)")
        }
        let index = try decode(OCIIndex.self, from: try OCIImageImporter.readSmallFile(indexPath, what: "index.json"), what: "index.json")
        let all = index.manifests ?? []
        var candidates = all
        if let reference {
            candidates = all.filter { $0.annotations?[OCIMediaType.refAnnotation] == reference }
            guard !candidates.isEmpty else {
                let refs = all.compactMap { $0.annotations?[OCIMediaType.refAnnotation] }
                throw ImportError.badLayout(path: layoutDirectory, problem: "no manifest with reference \"\(reference)\" (references: \(refs.isEmpty ? "none" : refs.joined(separator: ", ")))")
            }
        }
        guard candidates.count == 1, let chosen = candidates.first else {
            let refs = all.compactMap { $0.annotations?[OCIMediaType.refAnnotation] }
            throw ImportError.badLayout(path: layoutDirectory, problem: "index.json lists \(candidates.count) manifests; name one as DIR:REF (references: \(refs.isEmpty ? "none" : refs.joined(separator: ", ")))")
        }
        return try resolve(chosen, depth: 0)
    }

    /// Follows image indexes / manifest lists to the Windows manifest.
    func resolve(_ descriptor: OCIDescriptor, depth: Int) throws -> OCIManifest {
        guard depth < 4 else { throw ImportError.badLayout(path: layoutDirectory, problem: "image indexes nest deeper than 4 levels") }
        let manifest = try decode(OCIManifest.self, from: try readBlob(descriptor, what: "manifest"), what: "manifest \(descriptor.digest)")
        let isIndex = OCIMediaType.indexTypes.contains(descriptor.mediaType ?? "") || OCIMediaType.indexTypes.contains(manifest.mediaType ?? "")
            || (manifest.manifests != nil && manifest.layers == nil)
        guard isIndex else { return manifest }
        let windows = (manifest.manifests ?? []).filter { $0.platform?.os?.lowercased() == "windows" }
        guard let first = windows.first else {
            throw ImportError.badLayout(path: layoutDirectory, problem: "the image index \(descriptor.digest) has no windows manifest")
        }
        return try resolve(first, depth: depth + 1)
    }
}
