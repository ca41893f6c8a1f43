import Foundation
import XCTest
@testable import CimFS
@testable import VolumeSynth
#if canImport(Glibc)
import Glibc
#endif

/// Exports a CIM image as ext4, checks it with `e2fsck -fn`, loop-mounts it
/// read-only with the kernel's ext4 driver and compares the mounted tree with
/// the image as the CimFS reader sees it.
enum MountedVolumeChecker {
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

    static var canMount: Bool { getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/loop-control") }

    /// Exports, fscks and (as root) mounts and compares. Returns the number of paths compared.
    @discardableResult
    static func check(image: CimImage, mapping: MappingOptions = MappingOptions(), file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        let work = try temporaryDirectory("vol")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let guid = CimGUID(string: "6f1c0e9e-3b1a-4c55-9a57-0d5f6f0e7a11") ?? .zero
        let (volume, warnings) = try CimVolumeBuilder.ext4(image: image, guid: guid, mapping: mapping)
        let volumePath = work + "/volume.ext4"
        try writeVolume(volume, toFile: volumePath)

        let fsck = try run("/usr/sbin/e2fsck", ["-fn", volumePath])
        XCTAssertEqual(fsck.status, 0, "e2fsck -fn on the volume of \(image.path):\n\(fsck.output)", file: file, line: line)
        let problemLines = fsck.output.split(separator: "\n").filter { line in
            !line.hasPrefix("e2fsck ") && !line.hasPrefix("Pass ") && !line.contains(" files (") && !line.isEmpty
        }
        XCTAssertEqual(problemLines, [], "e2fsck reported problems for \(image.path)", file: file, line: line)

        let dumpe2fs = try run("/usr/sbin/dumpe2fs", ["-h", volumePath])
        XCTAssertTrue(dumpe2fs.output.contains("Filesystem UUID:          \(guid)"), dumpe2fs.output, file: file, line: line)
        XCTAssertTrue(dumpe2fs.output.contains("metadata_csum"), file: file, line: line)
        XCTAssertTrue(dumpe2fs.output.contains("read-only"), file: file, line: line)
        let debugfs = try run("/usr/sbin/debugfs", ["-R", "ls -l /", volumePath])
        XCTAssertEqual(debugfs.status, 0, file: file, line: line)
        XCTAssertTrue(debugfs.output.contains("lost+found"), debugfs.output, file: file, line: line)

        guard canMount else { return 0 }
        let mountPoint = work + "/mnt"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mounted = try run("/bin/mount", ["-t", "ext4", "-o", "loop,ro", volumePath, mountPoint])
        XCTAssertEqual(mounted.status, 0, "mount: \(mounted.output)", file: file, line: line)
        guard mounted.status == 0 else { return 0 }
        defer { _ = try? run("/bin/umount", [mountPoint]) }
        let source = try CimTreeSource(image: image, options: mapping)
        // Warnings name the attributes left out ("path: extended attributes left out: NAME (why); NAME (why)",
        // or the mapping's "xattr NAME has N bytes"); those are expected to be missing.
        var leftOut = Set<String>()
        for warning in warnings {
            if let range = warning.range(of: "left out: ") {
                for item in warning[range.upperBound...].components(separatedBy: "; ") {
                    leftOut.insert(String(item.prefix { $0 != " " }))
                }
            } else if let range = warning.range(of: "xattr ") {
                leftOut.insert(String(warning[range.upperBound...].prefix { $0 != " " }))
            }
        }
        return try compare(source: source, node: source.rootNode, path: mountPoint, leftOut: leftOut, warnings: warnings,
                           file: file, line: line)
    }

    static func compare(source: CimTreeSource, node: UInt32, path: String, leftOut: Set<String>, warnings: [String],
                        file: StaticString, line: UInt) throws -> Int {
        let image = source.image
        let attributes = try source.attributes(of: node)
        let st = try WriterLinux.stat(path)
        var compared = 1
        let what = "\(path) (FileID \(node))"
        switch attributes.kind {
        case .directory:
            XCTAssertTrue(st.isDirectory, "\(what) should be a directory", file: file, line: line)
            let children = try source.children(of: node)
            var names = Set(try FileManager.default.contentsOfDirectory(atPath: path))
            if node == source.rootNode { names.remove("lost+found") }
            let expected = Set(children.map { String(decoding: $0.name, as: UTF8.self) })
            XCTAssertEqual(names, expected, "\(what): entries", file: file, line: line)
            for child in children {
                compared += try compare(source: source, node: child.node, path: path + "/" + String(decoding: child.name, as: UTF8.self),
                                        leftOut: leftOut, warnings: warnings, file: file, line: line)
            }
        case .regularFile:
            XCTAssertTrue(st.isRegular, "\(what) should be a regular file", file: file, line: line)
            XCTAssertEqual(st.size, attributes.size, "\(what): size", file: file, line: line)
            XCTAssertEqual(Int(st.linkCount), try image.linkCount(of: node), "\(what): link count", file: file, line: line)
            try compareContent(image: image, node: node, path: path, size: attributes.size, file: file, line: line)
        case .symbolicLink:
            XCTAssertTrue(st.isSymlink, "\(what) should be a symlink", file: file, line: line)
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: path)
            XCTAssertEqual(Array(target.utf8), try source.symlinkTarget(of: node), "\(what): symlink target", file: file, line: line)
        }
        XCTAssertEqual(st.mode & 0o7777, UInt32(attributes.permissions), "\(what): permissions", file: file, line: line)
        let times: [(String, WriterTimespec?, Timestamp)] = [
            ("atime", st.accessTime, attributes.accessTime), ("mtime", st.modificationTime, attributes.modificationTime),
            ("ctime", st.changeTime, attributes.changeTime), ("btime", st.birthTime, attributes.creationTime),
        ]
        for (name, actual, time) in times {
            let expected = ext4Range(time)
            XCTAssertEqual(actual?.seconds, expected.seconds, "\(what): \(name) seconds", file: file, line: line)
            XCTAssertEqual(actual?.nanoseconds, expected.nanoseconds, "\(what): \(name) nanoseconds", file: file, line: line)
        }
        // Xattrs: every one the mapping produces is there with its bytes, except those warned about.
        let expectedAttributes = try source.extendedAttributes(of: node)
        let actualNames = Set(try WriterLinux.listXattrs(path))
        for attribute in expectedAttributes {
            if leftOut.contains(attribute.name) && !actualNames.contains(attribute.name) { continue }
            XCTAssertTrue(actualNames.contains(attribute.name), "\(what): xattr \(attribute.name) missing", file: file, line: line)
            if actualNames.contains(attribute.name) {
                XCTAssertEqual(try WriterLinux.getXattr(path, name: attribute.name), attribute.value, "\(what): xattr \(attribute.name)",
                               file: file, line: line)
            }
        }
        XCTAssertEqual(actualNames.subtracting(expectedAttributes.map(\.name)), [], "\(what): unexpected xattrs", file: file, line: line)
        return compared
    }

    /// The time ext4 can store for `time`: 1901-12-13T20:45:52Z (-2^31 s) at the
    /// earliest, 3·2^32 − 2^31 − 1 s at the latest (Windows' images give the root
    /// time 0, 1601-01-01, which becomes the earliest).
    static func ext4Range(_ time: Timestamp) -> (seconds: Int64, nanoseconds: UInt32) {
        if time.seconds < -(1 << 31) { return (-(1 << 31), 0) }
        if time.seconds > 3 * (1 << 32) - (1 << 31) - 1 { return (3 * (1 << 32) - (1 << 31) - 1, 999_999_999) }
        return (time.seconds, time.nanoseconds)
    }

    static func compareContent(image: CimImage, node: UInt32, path: String, size: UInt64, file: StaticString, line: UInt) throws {
        let stream = try image.entry(node).defaultStream
        let handle = try RegionFile(path: path)
        var offset: UInt64 = 0
        let chunk = 1 << 20
        while offset < size {
            // Skip what the image stores as a hole (sparse): the kernel must read zeros there too.
            let length = Int(min(UInt64(chunk), size - offset))
            let expected = try image.read(stream, at: offset, length: length, fileID: node)
            let actual = try handle.read(at: offset, length: length)
            if expected != actual {
                XCTFail("\(path): bytes differ in [\(offset), \(offset + UInt64(length)))", file: file, line: line)
                return
            }
            offset += UInt64(length)
            if stream.isSparse && offset >= 4 << 20 { break }  // a huge hole: sample its start only
        }
    }
}
