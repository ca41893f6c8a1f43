// ext4-bench: build time, peak RSS and bytes per file of Ext4Volume for
// synthetic trees. Usage: ext4-bench [file counts...] (default 100000 1000000).
// Run in release: swift run -c release ext4-bench
// Options: --image PATH writes the last volume sparsely (for e2fsck);
// --subdirs makes the leaves directories instead of files (dir_nlink).
import CimFS
import Foundation
import VolumeSynth

/// A procedural tree: directories of 1000 files each under the root; nothing
/// stored per node, so the measured memory is the volume's own.
final class SyntheticTree: FileTreeSource, @unchecked Sendable {
    let files: Int
    let dirs: Int
    let region: RegionFile
    let leavesAreDirectories: Bool
    init(files: Int, region: RegionFile, leavesAreDirectories: Bool) {
        self.files = files
        self.leavesAreDirectories = leavesAreDirectories
        dirs = leavesAreDirectories ? 1 : (files + 999) / 1000
        self.region = region
    }
    var rootNode: UInt32 { 1 }
    var maxNode: UInt32 { UInt32(1 + dirs + files) }
    func fileIndex(_ node: UInt32) -> Int { Int(node) - 2 - dirs }
    func size(_ node: UInt32) -> UInt64 { UInt64((fileIndex(node) &* 37) % 8192) }
    func attributes(of node: UInt32) throws -> NodeAttributes {
        let t = Timestamp(seconds: 1_600_000_000 + Int64(node), nanoseconds: UInt32(node % 1000) * 1000)
        let isDir = node <= UInt32(1 + dirs) || leavesAreDirectories
        return NodeAttributes(kind: isDir ? .directory : .regularFile, permissions: isDir ? 0o755 : 0o644, uid: 0, gid: 0,
                              size: isDir ? 0 : size(node), accessTime: t, modificationTime: t, changeTime: t, creationTime: t)
    }
    func children(of node: UInt32) throws -> [ChildEntry] {
        if node == 1 { return (0..<dirs).map { ChildEntry(name: Array("d\($0)".utf8), node: UInt32(2 + $0)) } }
        let d = Int(node) - 2
        guard d < dirs else { return [] }
        let perDir = leavesAreDirectories ? files : 1000
        let first = d * perDir
        return (first..<min(first + perDir, files)).map { ChildEntry(name: Array("file-\($0).dat".utf8), node: UInt32(2 + dirs + $0)) }
    }
    func extendedAttributes(of node: UInt32) throws -> [ExtendedAttribute] {
        node % 10 == 0 ? [ExtendedAttribute(name: "user.attr", value: Array("value".utf8))] : []
    }
    func dataRuns(of node: UInt32) throws -> [DataRun] {
        if leavesAreDirectories { return [] }
        let s = size(node)
        return s == 0 ? [] : [.file(region, offset: 0, length: s)]
    }
    func symlinkTarget(of node: UInt32) throws -> [UInt8] { [] }
}

func residentKiB(_ field: String) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix(field) {
        return Int(line.split(separator: " ").dropFirst().first { !$0.isEmpty }.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? "") ?? 0
    }
    return 0
}

let arguments = Array(CommandLine.arguments.dropFirst())
let counts = arguments.compactMap { Int($0) }
let subdirs = arguments.contains("--subdirs")
let imagePath = arguments.firstIndex(of: "--image").flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
let path = NSTemporaryDirectory() + "ext4-bench-data"
_ = FileManager.default.createFile(atPath: path, contents: Data(repeating: 0x5A, count: 8192))
defer { try? FileManager.default.removeItem(atPath: path) }
let region = try RegionFile(path: path)
let options = Ext4Options(volumeUUID: Array(repeating: 0x42, count: 16), label: "bench", creationTime: Timestamp(seconds: 1_700_000_000, nanoseconds: 0))

for n in counts.isEmpty ? [100_000, 1_000_000] : counts {
    let tree = SyntheticTree(files: n, region: region, leavesAreDirectories: subdirs)
    let before = residentKiB("VmRSS:")
    let start = Date()
    let volume = try Ext4Volume(source: tree, options: options)
    let seconds = Date().timeIntervalSince(start)
    let after = residentKiB("VmRSS:")
    let peak = residentKiB("VmHWM:")
    // Read all metadata once (what a mount + full scan would touch).
    let readStart = Date()
    var metadataBytes: UInt64 = 0
    var offset: UInt64 = 0
    let chunk: UInt64 = 16 << 20
    var buffer = [UInt8](repeating: 0, count: Int(chunk))
    while offset < volume.size {
        let length = min(chunk, volume.size - offset)
        var p = offset
        for s in try volume.segments(offset: offset, length: length) {
            if case .metadata(let l) = s {
                try buffer.withUnsafeMutableBytes { try volume.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<Int(l)]), at: p) }
                metadataBytes += l
            }
            p += s.length
        }
        offset += length
    }
    let readSeconds = Date().timeIntervalSince(readStart)
    print(String(format: "%9d files: build %.3f s, RSS +%.1f MiB (peak %.1f MiB), %.1f bytes/file; volume %.1f MiB; all %.1f MiB metadata read in %.2f s",
                 n, seconds, Double(after - before) / 1024, Double(peak) / 1024, Double((after - before) * 1024) / Double(n),
                 Double(volume.size) / 1048576, Double(metadataBytes) / 1048576, readSeconds))
    if let imagePath {
        try writeVolume(volume, toFile: imagePath, progress: nil)
        print("wrote \(imagePath)")
    }
}
