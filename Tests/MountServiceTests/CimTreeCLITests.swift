import Foundation
import XCTest
@testable import CimFS

/// `cimnbd cim create --case-conflicts` and `cimnbd cim extract`'s exit
/// status, through the real binary.
final class CimTreeCLITests: XCTestCase {
    var work = ""

    override func setUpWithError() throws {
        work = NSTemporaryDirectory() + "cimnbd-cli-tree-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work + "/src/perl/Sys", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: work + "/src/perl/sys", withIntermediateDirectories: true)
        try Data("a".utf8).write(to: URL(fileURLWithPath: work + "/src/perl/Sys/Hostname.pm"))
        try Data("b".utf8).write(to: URL(fileURLWithPath: work + "/src/perl/sys/lower.pm"))
        try Data("c".utf8).write(to: URL(fileURLWithPath: work + "/src/_exit.2.gz"))
        try Data("d".utf8).write(to: URL(fileURLWithPath: work + "/src/_Exit.2.gz"))
    }

    override func tearDownWithError() throws {
        _ = try? DaemonHarness.run("/bin/rm", ["-rf", work])
    }

    func cli(_ arguments: [String]) throws -> DaemonHarness.Result { try DaemonHarness.run(DaemonHarness.binary, arguments) }

    func testCaseConflictsErrorByDefaultThenRenameAndExtract() throws {
        var r = try cli(["cim", "create", work + "/src", work + "/tree.cim"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("--case-conflicts"), r.stderr)
        XCTAssertTrue(r.stderr.contains("\(work)/src: \"_Exit.2.gz\", \"_exit.2.gz\""), r.stderr)
        XCTAssertTrue(r.stderr.contains("\(work)/src/perl: \"Sys\", \"sys\""), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/tree.cim"))

        r = try cli(["cim", "create", work + "/src", work + "/tree.cim", "--case-conflicts", "rename"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr.components(separatedBy: "cimnbd: renamed: ").count - 1, 2, r.stderr)
        r = try cli(["cim", "ls", work + "/tree.cim", "perl"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("sys~2"), r.stdout)

        r = try cli(["cim", "extract", work + "/tree.cim", work + "/out"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("2 original names restored"), r.stdout)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: work + "/out/perl")), ["Sys", "sys"])
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: work + "/out")), ["perl", "_exit.2.gz", "_Exit.2.gz"])

        r = try cli(["cim", "create", work + "/src", work + "/skip.cim", "--case-conflicts", "skip"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("skipped: \(work)/src/perl/sys: left out"), r.stderr)
        r = try cli(["cim", "create", work + "/src", work + "/bad.cim", "--case-conflicts", "ignore"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("error") && r.stderr.contains("rename"), r.stderr)
    }

    func testExtractExitsThreeWhenSomethingIsLeftOut() throws {
        try FileManager.default.createDirectory(atPath: work + "/plain", withIntermediateDirectories: true)
        try Data("zip".utf8).write(to: URL(fileURLWithPath: work + "/plain/download.zip"))
        var options = CimWriterOptions()
        options.sourceOverrides.streams["download.zip"] = [(Array("thumbnail".utf16), [UInt8](repeating: 7, count: 100_000))]
        try CimWriter().createImage(from: work + "/plain", imagePath: work + "/big.cim", options: options)
        let r = try cli(["cim", "extract", work + "/big.cim", work + "/out"])
        XCTAssertEqual(r.status, 3, r.stderr)
        XCTAssertTrue(r.stderr.contains("warning: \(work)/out/download.zip: extended attributes left out: user.thumbnail (100000 bytes"), r.stderr)
        XCTAssertTrue(r.stderr.contains("incomplete: 0 names changed, 1 streams/attributes left out"), r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: work + "/out/download.zip")), Data("zip".utf8))

        let help = try cli(["cim", "extract", "--help"])
        XCTAssertTrue(help.stdout.contains("3 when something was renamed or"), help.stdout)
        let createHelp = try cli(["cim", "create", "--help"])
        XCTAssertTrue(createHelp.stdout.contains("--case-conflicts <error|skip|rename>"), createHelp.stdout)
    }
}
