import Foundation
import XCTest
@testable import CimImport
import CimFS
import VolumeSynth

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

        // The shape Windows' image of the same package has (when this reader opens it).
        let putty = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("shared/fixtures/real/putty/putty.cim").path
        if let windows = try? CimImage(path: putty) {
            var windowsDirectories: [String] = []
            try windows.walk { _, entry, components in
                if try windows.entry(entry.fileID).isDirectory { windowsDirectories.append("\\" + components.joined(separator: "\\")) }
            }
            XCTAssertTrue(windowsDirectories.contains(package), "\(windowsDirectories)")
            for footprint in ["AppxManifest.xml", "AppxBlockMap.xml", "AppxSignature.p7x", "AppxMetadata\\CodeIntegrity.cat"] {
                XCTAssertTrue(windows.exists(package + "\\" + footprint) && image.exists(package + "\\" + footprint), footprint)
            }
            XCTAssertFalse(windows.exists(package + "\\[Content_Types].xml"))
            let manifest = try windows.data(package + "\\AppxManifest.xml")
            XCTAssertEqual(try AppxIdentity.parse(manifest: manifest, path: putty).packageFullName, Self.puttyFullName)
        }

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
}
