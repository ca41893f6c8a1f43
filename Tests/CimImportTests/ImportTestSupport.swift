import Foundation
import XCTest
import CimFS
import VolumeSynth
#if canImport(Glibc)
import Glibc
#endif

/// Processes, scratch directories and the ext4 checks the import tests share.
enum ImportTestSupport {
    struct ProcessResult {
        var status: Int32
        var output: String
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> ProcessResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ProcessResult(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    static func temporaryDirectory(_ label: String) throws -> String {
        let path = NSTemporaryDirectory() + "cimnbd-\(label)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static var python: String? {
        ["/usr/bin/python3", "/root/.pyenv/shims/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs ``LayerFixtureScript`` into a new directory.
    static func makeFixtures() throws -> String {
        guard let python else { throw XCTSkip("python3 is not installed") }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/zstd") else { throw XCTSkip("zstd is not installed (apt-get install zstd)") }
        let directory = try temporaryDirectory("import")
        let script = directory + "/make.py"
        try LayerFixtureScript.source.write(toFile: script, atomically: true, encoding: .utf8)
        let result = try run(python, [script, directory])
        XCTAssertEqual(result.status, 0, result.output)
        return directory
    }

    static var canMount: Bool { getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/loop-control") }

    /// Exports `image` with `root` as the volume root, checks it with e2fsck -fn,
    /// and (as root) loop-mounts it for `body`.
    static func withVolume(_ image: CimImage, root: String?, _ body: (String?) throws -> Void) throws {
        let work = try temporaryDirectory("vol")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let (volume, _) = try CimVolumeBuilder.ext4(image: image, guid: image.regionSet, mapping: MappingOptions(root: root))
        let volumePath = work + "/volume.ext4"
        try writeVolume(volume, toFile: volumePath)
        let fsck = try run("/usr/sbin/e2fsck", ["-fn", volumePath])
        XCTAssertEqual(fsck.status, 0, "e2fsck -fn on the volume of \(image.path) (root \(root ?? "\\")):\n\(fsck.output)")
        guard canMount else { return try body(nil) }
        let mountPoint = work + "/mnt"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mounted = try run("/bin/mount", ["-t", "ext4", "-o", "loop,ro", volumePath, mountPoint])
        XCTAssertEqual(mounted.status, 0, "mount: \(mounted.output)")
        guard mounted.status == 0 else { return }
        defer { _ = try? run("/bin/umount", [mountPoint]) }
        try body(mountPoint)
    }

    /// Every path below `directory` (relative, `/`-separated), sorted; lost+found left out.
    static func tree(_ directory: String) throws -> [String] {
        var result: [String] = []
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return [] }
        while let path = walker.nextObject() as? String {
            if path == "lost+found" { walker.skipDescendants(); continue }
            result.append(path)
        }
        return result.sorted()
    }

    static func lstat(_ path: String) -> stat? {
        var status = stat()
        return Glibc.lstat(path, &status) == 0 ? status : nil
    }

    static func contents(_ path: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path).map(Array.init)
    }

    /// Files in `directory` now, to check that a failed import left nothing.
    static func listing(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }
}

extension CimImage {
    func data(_ path: String) throws -> [UInt8] {
        let id = try lookup(path: path)
        let entry = try self.entry(id)
        return try read(entry.defaultStream, at: 0, length: Int(entry.defaultStream.length), fileID: id)
    }

    func streamData(_ path: String, stream name: String) throws -> [UInt8]? {
        let id = try lookup(path: path)
        guard let stream = try alternateStream(named: name, of: id) else { return nil }
        return try read(stream.stream, at: 0, length: Int(stream.size), fileID: id)
    }

    func exists(_ path: String) -> Bool { (try? lookup(path: path)) != nil }
}
