import CimFS
import NBDServer
import VolumeSynth

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The one export the NBD targets serve: the real ext4 volume of a small CIM
/// image written at start-up, so that reads meet every kind of volume
/// segment (generated metadata, zeros, file data sent with sendfile).
enum FuzzExport {
    /// The export name, also used by the seed script (`make-seeds`).
    static let name = "0f5a8e1c-2b3d-4e6f-8a9b-0c1d2e3f4a5b"

    /// Builds the image under `directory` and registers its volume.
    static func register(in registry: ExportRegistry, directory: String) throws {
        let source = directory + "/tree"
        let imageDirectory = directory + "/image"
        for path in [directory, source, source + "/sub", imageDirectory] { mkdir(path, 0o700) }
        try writeFile(source + "/hello.txt", bytes: Array("hello, NBD fuzzer\n".utf8))
        // Larger than the server's sendfile threshold (16 KiB): sent with sendfile.
        try writeFile(source + "/sub/data.bin", bytes: (0..<(96 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) })
        try writeFile(source + "/sub/small.bin", bytes: [UInt8](repeating: 0xA5, count: 3000))
        let imagePath = imageDirectory + "/fuzz.cim"
        try CimWriter().createImage(from: source, imagePath: imagePath)
        let image = try CimImage(path: imagePath)
        guard let guid = CimGUID(string: name) else { fatalError("FuzzExport.name is not a GUID") }
        let (volume, _) = try CimVolumeBuilder.ext4(image: image, guid: guid, mapping: MappingOptions())
        try registry.add(guid: name, volume: volume, description: "fuzz.cim (CIM, ext4)")
    }

    private static func writeFile(_ path: String, bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "open") }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw CimError.io(path: path, offset: 0, errno: errno, what: "write") }
    }
}
