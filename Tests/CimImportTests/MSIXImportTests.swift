import Foundation
import XCTest
@testable import CimImport
import CimFS
import VolumeSynth
import TestFixtures

/// An MSIX package built by Python's zipfile, imported as msixmgr lays it out;
/// the putty image Windows made is the shape to reach.
final class MSIXImportTests: XCTestCase {
    static let puttyFullName = "putty_1.0.1.0_x64__ynj0a7qyfqv8c"

    func testPublisherIDOfThePuttyImage() throws {
        // Publisher string of the AppxManifest.xml inside ../shared/fixtures/real/putty.
        XCTAssertEqual(AppxIdentity.publisherID("CN=testcert"), "ynj0a7qyfqv8c")
        let identity = AppxIdentity(name: "putty", version: "1.0.1.0", architecture: "x64", resourceID: "", publisher: "CN=testcert")
        XCTAssertEqual(identity.packageFullName, Self.puttyFullName)
        let parsed = try AppxIdentity.parse(manifest: Array("\u{FEFF}<Package><!-- <Identity Name=\"x\"/> --><p:Identity Name=\"A&amp;B\" Version=\"1.2.3.4\" Publisher=\"CN=&quot;Q&quot;, O=Z\" ResourceId=\"en-us\"/></Package>".utf8), path: "m")
        XCTAssertEqual(parsed, AppxIdentity(name: "A&B", version: "1.2.3.4", architecture: "neutral", resourceID: "en-us", publisher: "CN=\"Q\", O=Z"))
        XCTAssertThrowsError(try AppxIdentity.parse(manifest: Array("<Package/>".utf8), path: "m")) { error in
            XCTAssertTrue("\(error)".contains("no <Identity>"), "\(error)")
        }
    }

    func testPackageImportsAsMsixmgrLaysItOut() throws {
        let fixtures = try ImportTestSupport.makeFixtures()
        defer { try? FileManager.default.removeItem(atPath: fixtures) }
        let out = fixtures + "/msix"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let summary = try MSIXImporter.importPackage(at: fixtures + "/package.msix", to: out + "/putty.cim")
        XCTAssertEqual(summary.packageDirectory, "\\msix\\" + Self.puttyFullName)
        let image = try CimImage(path: out + "/putty.cim")
        XCTAssertTrue(image.verify().isClean, "\(image.verify().problems)")
        let package = "\\msix\\" + Self.puttyFullName
        var paths: [String] = []
        try image.walk { _, _, components in paths.append("\\" + components.joined(separator: "\\")) }
        XCTAssertEqual(paths.sorted(), ["\\msix", package, package + "\\AppxBlockMap.xml", package + "\\AppxManifest.xml",
                                        package + "\\AppxMetadata", package + "\\AppxMetadata\\CodeIntegrity.cat",
                                        package + "\\AppxSignature.p7x", package + "\\Assets", package + "\\Assets\\logo.png",
                                        package + "\\My Docs", package + "\\My Docs\\read me.txt", package + "\\putty.exe"].sorted())
        XCTAssertEqual(try image.data(package + "\\putty.exe"), ImportTestSupport.contents(fixtures + "/putty.exe"))
        XCTAssertEqual(try image.data(package + "\\My Docs\\read me.txt"), Array("spaces in the name".utf8))
        for path in paths {
            let entry = try image.entry(try image.lookup(path: path))
            XCTAssertEqual(entry.attributes, entry.isDirectory ? CimFormat.Attribute.directory : CimFormat.Attribute.archive, path)
            XCTAssertNotNil(try image.securityDescriptor(of: try image.lookup(path: path)), path)
        }
        XCTAssertNil(try image.securityDescriptor(of: image.rootID), "the root has no descriptor, as in Windows' images")

        // Zipped again and imported again, the package gives the same tree (the check the putty test applies to Windows' image).
        try assertRepackagedTreeMatches(image, package: package, work: fixtures)

        try ImportTestSupport.withVolume(image, root: package) { mount in
            guard let mount else { return }
            XCTAssertEqual(try ImportTestSupport.tree(mount), ["AppxBlockMap.xml", "AppxManifest.xml", "AppxMetadata", "AppxMetadata/CodeIntegrity.cat",
                                                               "AppxSignature.p7x", "Assets", "Assets/logo.png", "My Docs", "My Docs/read me.txt", "putty.exe"])
            XCTAssertEqual(ImportTestSupport.contents(mount + "/putty.exe"), ImportTestSupport.contents(fixtures + "/putty.exe"))
        }

        let other = try MSIXImporter.importPackage(at: fixtures + "/package.msix", to: out + "/apps.cim", rootDirectory: "apps")
        XCTAssertEqual(other.packageDirectory, "\\apps\\" + Self.puttyFullName)

        // A truncated package: one clear error, no image left.
        let before = ImportTestSupport.listing(out)
        XCTAssertThrowsError(try MSIXImporter.importPackage(at: fixtures + "/truncated.msix", to: out + "/bad.cim")) { error in
            XCTAssertTrue("\(error)".contains("truncated.msix"), "\(error)")
        }
        XCTAssertEqual(ImportTestSupport.listing(out), before)
    }

    /// Windows' image of the putty package (../shared/fixtures/real/putty) is the
    /// shape to reach. Its manifest (putty.expected.json lists every entry) gives
    /// the package's file names and sizes: a package with those files imports
    /// to the same paths, kinds, attributes and sizes. When this reader opens
    /// the image, its own files zipped again import to the same tree and bytes.
    func testPuttyImageShapeIsReached() throws {
        let folder = try FixtureLocator.folder("real/putty").path
        let json = try XCTUnwrap(FileManager.default.contents(atPath: folder + "/putty.expected.json"))
        let listed = try XCTUnwrap(try JSONSerialization.jsonObject(with: json) as? [[String: Any]])
        let package = "\\msix\\" + Self.puttyFullName
        let work = try ImportTestSupport.temporaryDirectory("putty")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let files = work + "/files"
        var expected: [String: (attributes: UInt32, size: UInt64)] = [:]
        for item in listed {
            guard let path = item["path"] as? String, path != "\\", let attributes = item["attributes"] as? Int,
                  let size = item["size"] as? Int, let type = item["type"] as? String else { continue }
            expected[path] = (UInt32(attributes), type == "dir" ? 0 : UInt64(size))
            guard type == "file", path.hasPrefix(package + "\\") else { continue }
            let relative = path.dropFirst(package.count + 1).replacingOccurrences(of: "\\", with: "/")
            let target = files + "/" + relative
            try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            var data = [UInt8](repeating: 0x2E, count: size)
            if relative == "AppxManifest.xml" {
                data = Array("<Package><Identity Name=\"putty\" Publisher=\"CN=testcert\" Version=\"1.0.1.0\" ProcessorArchitecture=\"x64\" /></Package>".utf8)
                expected[path]?.size = UInt64(data.count)
            }
            try Data(data).write(to: URL(fileURLWithPath: target))
        }
        XCTAssertGreaterThan(expected.count, 10)
        let zip = work + "/putty.msix"
        try zipDirectory(files, to: zip)
        let imagePath = work + "/imported.cim"
        try MSIXImporter.importPackage(at: zip, to: imagePath)
        let image = try CimImage(path: imagePath)
        var found: [String: (attributes: UInt32, size: UInt64)] = [:]
        try image.walk { _, child, components in
            let entry = try image.entry(child.fileID)
            found["\\" + components.joined(separator: "\\")] = (entry.attributes, entry.isDirectory ? 0 : entry.defaultStream.length)
        }
        XCTAssertEqual(found.keys.sorted(), expected.keys.sorted())
        for (path, want) in expected {
            XCTAssertEqual(found[path]?.attributes, want.attributes, path)
            XCTAssertEqual(found[path]?.size, want.size, path)
        }

        // Descriptors: Windows' on every entry, but for what belonged to the machine that made the image.
        let windowsDescriptors = try SDDLTests.puttyDescriptors()
        XCTAssertEqual(windowsDescriptors.count, expected.count)
        for (path, descriptor) in windowsDescriptors {
            let ours = try image.securityDescriptor(of: try image.lookup(path: path))
            XCTAssertEqual(ours.map { Hex.string($0) }, Hex.string(Self.withoutMachineIdentities(descriptor)), path)
        }
        XCTAssertNil(try image.securityDescriptor(of: image.rootID))
        // Times: zero on the root, as in Windows' image; the import's (msixmgr's are its unpacking's) elsewhere.
        let root = try image.entry(image.rootID)
        XCTAssertEqual([root.creationTime, root.lastWriteTime, root.changeTime, root.lastAccessTime], [0, 0, 0, 0])
        let started = MSIXImporter.currentFileTime() - 10 * 60 * 10_000_000
        try image.walk { _, child, components in
            let entry = try image.entry(child.fileID)
            for time in [entry.creationTime, entry.lastWriteTime, entry.changeTime, entry.lastAccessTime] {
                XCTAssertGreaterThan(time, started, components.joined(separator: "\\"))
            }
        }

        let windows = try CimImage(path: folder + "/putty.cim")
        let manifest = try windows.data(package + "\\AppxManifest.xml")
        XCTAssertEqual(try AppxIdentity.parse(manifest: manifest, path: folder).packageFullName, Self.puttyFullName)
        try assertRepackagedTreeMatches(windows, package: package, work: work)
    }

    /// A Windows descriptor with the group replaced by SYSTEM and the ACEs of
    /// machine accounts (S-1-5-21-…) left out, as ``MSIXSecurity`` writes it.
    static func withoutMachineIdentities(_ descriptor: [UInt8]) -> [UInt8] {
        func u16(_ at: Int) -> Int { Int(descriptor[at]) | Int(descriptor[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        func sid(_ at: Int) -> [UInt8] { Array(descriptor[at..<at + 8 + 4 * Int(descriptor[at + 1])]) }
        let owner = sid(u32(4))
        let dacl = u32(16)
        var aces: [[UInt8]] = []
        var at = dacl + 8
        for _ in 0..<u16(dacl + 4) {
            let size = u16(at + 2)
            let aceSID = sid(at + 8)
            if !aceSID.starts(with: [1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0]) { aces.append(Array(descriptor[at..<at + size])) }
            at += size
        }
        let system: [UInt8] = [1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]
        let body = aces.flatMap { $0 }
        let acl: [UInt8] = [descriptor[dacl], 0, UInt8((8 + body.count) & 0xFF), UInt8((8 + body.count) >> 8), UInt8(aces.count), 0, 0, 0] + body
        func le(_ value: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(value).littleEndian, Array.init) }
        return Array(descriptor[0..<4]) + le(20) + le(20 + owner.count) + le(0) + le(20 + owner.count + system.count) + owner + system + acl
    }

    func zipDirectory(_ directory: String, to zip: String, file: StaticString = #filePath, line: UInt = #line) throws {
        guard let python = ImportTestSupport.python else { throw XCTSkip("python3 is not installed") }
        let script = """
            import os, sys, urllib.parse, zipfile
            src, out = sys.argv[1], sys.argv[2]
            with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:
                for root, dirs, names in os.walk(src):
                    for name in sorted(names):
                        path = os.path.join(root, name)
                        z.write(path, urllib.parse.quote(os.path.relpath(path, src).replace(os.sep, '/')))
                z.writestr('[Content_Types].xml', '<Types/>')
            """
        let result = try ImportTestSupport.run(python, ["-c", script, directory, zip])
        XCTAssertEqual(result.status, 0, result.output, file: file, line: line)
    }

    /// Writes the files below `package` of `image` into a zip (names percent-encoded,
    /// a `[Content_Types].xml` added), imports it, and compares the two trees.
    func assertRepackagedTreeMatches(_ image: CimImage, package: String, work: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let files = work + "/repack-files"
        var expected: [String: (isDirectory: Bool, attributes: UInt32, data: [UInt8])] = [:]
        try image.walk(from: try image.lookup(path: package)) { _, child, components in
            let relative = components.joined(separator: "/")
            let entry = try image.entry(child.fileID)
            let data = entry.isDirectory ? [] : try image.read(entry.defaultStream, at: 0, length: Int(entry.defaultStream.length), fileID: child.fileID)
            expected[relative] = (entry.isDirectory, entry.attributes, data)
            if entry.isDirectory {
                try FileManager.default.createDirectory(atPath: files + "/" + relative, withIntermediateDirectories: true)
            } else {
                try FileManager.default.createDirectory(atPath: files + "/" + (components.dropLast().joined(separator: "/")), withIntermediateDirectories: true)
                try Data(data).write(to: URL(fileURLWithPath: files + "/" + relative))
            }
        }
        let zip = work + "/repacked.msix"
        try zipDirectory(files, to: zip, file: file, line: line)
        let images = work + "/repack-images"
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
        let summary = try MSIXImporter.importPackage(at: zip, to: images + "/repacked.cim")
        XCTAssertEqual(summary.packageDirectory, package, file: file, line: line)
        let repacked = try CimImage(path: images + "/repacked.cim")
        var found: [String: (isDirectory: Bool, attributes: UInt32, data: [UInt8])] = [:]
        try repacked.walk(from: try repacked.lookup(path: package)) { _, child, components in
            let entry = try repacked.entry(child.fileID)
            let data = entry.isDirectory ? [] : try repacked.read(entry.defaultStream, at: 0, length: Int(entry.defaultStream.length), fileID: child.fileID)
            found[components.joined(separator: "/")] = (entry.isDirectory, entry.attributes, data)
        }
        XCTAssertEqual(found.keys.sorted(), expected.keys.sorted(), file: file, line: line)
        for (path, want) in expected {
            guard let got = found[path] else { continue }
            XCTAssertEqual(got.isDirectory, want.isDirectory, path, file: file, line: line)
            XCTAssertEqual(got.attributes, want.attributes, path, file: file, line: line)
            XCTAssertEqual(got.data, want.data, path, file: file, line: line)
        }
    }
}
