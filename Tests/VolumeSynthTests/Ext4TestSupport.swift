import CimFS
import Foundation
import XCTest
@testable import VolumeSynth

/// Helpers shared by the ext4 tests: running tools, writing images, mounting.
enum Ext4TestSupport {
    static let options = Ext4Options(
        volumeUUID: [0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0x4D, 0xEF, 0x81, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF],
        label: "cimnbd-test-volume-long-label", creationTime: Timestamp(seconds: 1_700_000_000, nanoseconds: 0))

    @discardableResult
    static func run(_ arguments: [String], discardErrors: Bool = false) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        // Merged stderr can land in the middle of block-buffered stdout.
        p.standardError = discardErrors ? FileHandle.nullDevice : pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func temporaryPath(_ name: String) -> String {
        NSTemporaryDirectory() + "ext4test-\(name)-\(UUID().uuidString)"
    }

    /// Writes the volume sparsely and returns the path.
    static func writeImage(_ volume: Volume, name: String) throws -> String {
        let path = temporaryPath(name) + ".img"
        try writeVolume(volume, toFile: path, progress: nil)
        return path
    }

    /// Runs `e2fsck -fn` and fails unless it exits 0 printing only its pass lines and summary.
    static func assertClean(_ image: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (status, output) = try run(["e2fsck", "-fn", image])
        if let keep = ProcessInfo.processInfo.environment["EXT4_TEST_KEEP"] {
            print(output)
            _ = try? run(["cp", "--sparse=always", image, keep + "/" + (image as NSString).lastPathComponent])
        }
        XCTAssertEqual(status, 0, "e2fsck exit status; output:\n\(output)", file: file, line: line)
        let allowed = ["e2fsck ", "Pass 1:", "Pass 2:", "Pass 3:", "Pass 4:", "Pass 5:"]
        for l in output.split(separator: "\n") {
            let s = String(l)
            if allowed.contains(where: { s.hasPrefix($0) }) { continue }
            if s.contains(" files (") && s.contains(" blocks") { continue }  // summary
            XCTFail("e2fsck reported: \(s)\nfull output:\n\(output)", file: file, line: line)
        }
    }

    static var canMount: Bool {
        getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/loop-control")
    }

    /// Mounts read-only on a fresh directory, runs `body`, unmounts.
    static func withMount<T>(_ image: String, _ body: (String) throws -> T) throws -> T {
        let dir = temporaryPath("mnt")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let (status, output) = try run(["mount", "-o", "loop,ro", "-t", "ext4", image, dir])
        guard status == 0 else {
            try? FileManager.default.removeItem(atPath: dir)
            throw VolumeError.io("mount failed: \(output)")
        }
        defer {
            _ = try? run(["umount", dir])
            try? FileManager.default.removeItem(atPath: dir)
        }
        return try body(dir)
    }

    /// `stat`'s decimal rendering of a timestamp (what ext4 stores after clamping).
    static func format(_ t: Timestamp) -> String {
        var s = t.seconds
        var ns = min(t.nanoseconds, 999_999_999)
        if s < Ext4Time.minimumSeconds { s = Ext4Time.minimumSeconds; ns = 0 }
        if s > Ext4Time.maximumSeconds { s = Ext4Time.maximumSeconds; ns = 999_999_999 }
        if s >= 0 || ns == 0 { return "\(s)." + String(format: "%09u", ns) }
        return "-\(-(s + 1))." + String(format: "%09u", 1_000_000_000 - ns)
    }

    /// Parses `getfattr -h -d -m - -e hex` output into [path: [name: value]].
    static func xattrs(_ paths: [String]) throws -> [String: [String: [UInt8]]] {
        guard !paths.isEmpty else { return [:] }
        let (_, output) = try run(["getfattr", "-h", "-d", "-m", "-", "-e", "hex", "--absolute-names"] + paths, discardErrors: true)
        var result: [String: [String: [UInt8]]] = [:]
        var current = ""
        for line in output.split(separator: "\n") {
            if line.hasPrefix("# file: ") {
                current = String(line.dropFirst(8))
                result[current] = [:]
            } else if let eq = line.firstIndex(of: "=") {
                let name = String(line[..<eq])
                var hex = line[line.index(after: eq)...]
                if hex.hasPrefix("0x") { hex = hex.dropFirst(2) }
                var bytes: [UInt8] = []
                var i = hex.startIndex
                while i < hex.endIndex, let j = hex.index(i, offsetBy: 2, limitedBy: hex.endIndex) {
                    bytes.append(UInt8(hex[i..<j], radix: 16) ?? 0)
                    i = j
                }
                result[current, default: [:]][name] = bytes
            } else if !line.hasPrefix("#") {
                result[current, default: [:]][String(line)] = []
            }
        }
        return result
    }

    /// Compares the mounted tree at `mount` with `tree`, every node reachable.
    static func compare(tree: MemoryTree, mount: String, skipContentAbove: UInt64 = 64 << 20, file: StaticString = #filePath, line: UInt = #line) throws {
        var paths: [(String, UInt32)] = []
        var linkCounts: [UInt32: Int] = [:]
        var queue: [(String, UInt32)] = [(mount, tree.rootNode)]
        var dirSubdirs: [String: Int] = [:]
        while let (path, node) = queue.popLast() {
            paths.append((path, node))
            let n = tree.node(node)
            guard n.attributes.kind == .directory else { continue }
            var subdirs = 0
            let listed = Set(try FileManager.default.contentsOfDirectory(atPath: path))
            var expectedNames = Set(n.children.map { String(decoding: $0.name, as: UTF8.self) })
            if node == tree.rootNode { expectedNames.insert("lost+found") }
            XCTAssertEqual(listed, expectedNames, "entries of \(path)", file: file, line: line)
            for c in n.children {
                linkCounts[c.node, default: 0] += 1
                if tree.node(c.node).attributes.kind == .directory { subdirs += 1 }
                queue.append((path + "/" + String(decoding: c.name, as: UTF8.self), c.node))
            }
            if node == tree.rootNode && !n.children.contains(where: { $0.name == Array("lost+found".utf8) }) { subdirs += 1 }
            dirSubdirs[path] = subdirs
        }
        // One stat call for many paths.
        var statLines: [String: [Substring]] = [:]
        for chunk in stride(from: 0, to: paths.count, by: 500) {
            let batch = paths[chunk..<min(chunk + 500, paths.count)].map(\.0)
            let (status, output) = try run(["stat", "--printf", "%n\t%.9X\t%.9Y\t%.9Z\t%.9W\t%h\t%f\t%u\t%g\t%s\n"] + batch)
            XCTAssertEqual(status, 0, output, file: file, line: line)
            for l in output.split(separator: "\n") {
                let f = l.split(separator: "\t", omittingEmptySubsequences: false)
                if f.count == 10 { statLines[String(f[0])] = f }
            }
        }
        let xattrsByPath = try xattrs(paths.map(\.0))
        for (path, node) in paths {
            let n = tree.node(node)
            let a = n.attributes
            guard let f = statLines[path] else {
                XCTFail("no stat for \(path)", file: file, line: line)
                continue
            }
            XCTAssertEqual(String(f[1]), format(a.accessTime), "atime \(path)", file: file, line: line)
            XCTAssertEqual(String(f[2]), format(a.modificationTime), "mtime \(path)", file: file, line: line)
            XCTAssertEqual(String(f[3]), format(a.changeTime), "ctime \(path)", file: file, line: line)
            XCTAssertEqual(String(f[4]), format(a.creationTime), "btime \(path)", file: file, line: line)
            let mode = UInt32(f[6], radix: 16) ?? 0
            let typeBits: UInt32 = a.kind == .directory ? 0o040000 : a.kind == .symbolicLink ? 0o120000 : 0o100000
            XCTAssertEqual(mode, typeBits | UInt32(a.permissions & 0o7777), "mode \(path)", file: file, line: line)
            XCTAssertEqual(String(f[7]), "\(a.uid)", "uid \(path)", file: file, line: line)
            XCTAssertEqual(String(f[8]), "\(a.gid)", "gid \(path)", file: file, line: line)
            let links = Int(f[5]) ?? -1
            switch a.kind {
            case .directory:
                let expected = 2 + (dirSubdirs[path] ?? 0)
                XCTAssertEqual(links, expected > 65000 ? 1 : expected, "nlink \(path)", file: file, line: line)
            case .regularFile:
                XCTAssertEqual(links, linkCounts[node] ?? 0, "nlink \(path)", file: file, line: line)
                XCTAssertEqual(String(f[9]), "\(a.size)", "size \(path)", file: file, line: line)
                if let expected = n.expected, a.size <= skipContentAbove {
                    let data = try Data(contentsOf: URL(fileURLWithPath: path))
                    XCTAssertTrue(data == Data(expected), "content of \(path) (\(data.count) vs \(expected.count) bytes)", file: file, line: line)
                }
            case .symbolicLink:
                XCTAssertEqual(links, linkCounts[node] ?? 0, "nlink \(path)", file: file, line: line)
                let target = try FileManager.default.destinationOfSymbolicLink(atPath: path)
                XCTAssertEqual(Array(target.utf8), n.target, "target of \(path)", file: file, line: line)
            }
            var expectedX: [String: [UInt8]] = [:]
            for x in n.xattrs where x.value.count <= 65536 && !x.name.hasPrefix("bogus.") { expectedX[x.name] = x.value }
            let got = xattrsByPath[path] ?? [:]
            XCTAssertEqual(got, expectedX, "xattrs of \(path)", file: file, line: line)
        }
    }
}
