import CimFS
import Foundation

/// The built-in demo image `cimnbd serve` mounts when it has nothing else to
/// serve: a small tree written with the CIM writer into a temporary directory.
enum DemoImage {
    /// The fixed GUID the demo is exported under.
    static let guid = "c1d0e5a0-0000-4000-8000-000000000001"

    /// Writes the demo tree and image; returns the `.cim` path.
    static func create() throws -> String {
        let base = NSTemporaryDirectory() + "cimnbd-demo-\(getpid())"
        let tree = base + "/tree", images = base + "/images"
        let fm = FileManager.default
        try? fm.removeItem(atPath: base)
        try fm.createDirectory(atPath: tree + "/Windows/System32/drivers/etc", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: tree + "/Users/Public/Documents", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: images, withIntermediateDirectories: true)
        try "Hello from a Windows CIM image served by cimnbd.\n".write(toFile: tree + "/README.txt", atomically: false, encoding: .utf8)
        try "127.0.0.1 localhost\n::1 localhost\n".write(toFile: tree + "/Windows/System32/drivers/etc/hosts", atomically: false, encoding: .utf8)
        var pattern = [UInt8](repeating: 0, count: 3 << 20)
        for i in pattern.indices { pattern[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 13) }
        try Data(pattern).write(to: URL(fileURLWithPath: tree + "/Windows/System32/data.bin"))
        try "Notes\n".write(toFile: tree + "/Users/Public/Documents/notes.txt", atomically: false, encoding: .utf8)
        try fm.createSymbolicLink(atPath: tree + "/hosts", withDestinationPath: "Windows/System32/drivers/etc/hosts")
        let image = images + "/demo.cim"
        _ = try CimWriter().createImage(from: tree, imagePath: image, options: CimWriterOptions())
        return image
    }
}
