import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// What an administrator installs beside the binary: the systemd units
/// (dist/systemd), the man pages (dist/man), shell completions, and the
/// JSON log format a log shipper reads.
final class DistributionTests: XCTestCase {
    /// The package root (…/Tests/MountServiceTests/ThisFile.swift → …).
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    func require(_ name: String) throws -> String {
        guard let path = DaemonHarness.tool(name) else { throw XCTSkip("\(name) is not installed") }
        return path
    }

    func manPages() throws -> [String] {
        let directory = Self.packageRoot + "/dist/man"
        return try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".1") }.sorted()
            .map { directory + "/" + $0 }
    }

    /// `systemd-analyze verify` on the shipped units. It insists that
    /// ExecStart's binary exists and that the man pages of Documentation=
    /// resolve, so the units are verified as installed: copies whose ExecStart
    /// is the built binary, with MANPATH on a tree holding dist/man's pages.
    func testSystemdUnitsVerify() throws {
        let analyze = try require("systemd-analyze")
        let work = NSTemporaryDirectory() + "cimnbd-units-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work + "/man/man1", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        for page in try manPages() {
            try FileManager.default.copyItem(atPath: page, toPath: work + "/man/man1/" + (page as NSString).lastPathComponent)
        }
        let units = ["cimnbd.service", "cimnbd.socket", "cimnbd-control.socket"]
        for unit in units {
            var text = try String(contentsOfFile: Self.packageRoot + "/dist/systemd/" + unit, encoding: .utf8)
            if unit == "cimnbd.service" {
                XCTAssertTrue(text.contains("ExecStart=/usr/local/bin/cimnbd serve"), text)
                text = text.replacingOccurrences(of: "ExecStart=/usr/local/bin/cimnbd", with: "ExecStart=" + DaemonHarness.binary)
            }
            try text.write(toFile: work + "/" + unit, atomically: true, encoding: .utf8)
        }
        let script = "MANPATH=\(work)/man exec \(analyze) verify " + units.map { "\(work)/\($0)" }.joined(separator: " ")
        var r = try DaemonHarness.run("/bin/sh", ["-c", script])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertEqual(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines), "", "systemd-analyze warned")

        // The hardening, as systemd scores it (0 = locked down … 10 = exposed).
        r = try DaemonHarness.run(analyze, ["security", "--offline=yes", "--no-pager", work + "/cimnbd.service"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let overall = r.stdout.split(separator: "\n").first { $0.contains("Overall exposure level") } ?? ""
        let score = overall.split(separator: " ").compactMap { Double($0) }.first
        XCTAssertNotNil(score, r.stdout)
        XCTAssertLessThanOrEqual(score ?? 10, 3.0, String(overall))
    }

    func testCompletionScriptsGenerate() throws {
        let bash = try require("bash")
        let work = NSTemporaryDirectory() + "cimnbd-completion-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        for shell in ["bash", "zsh", "fish"] {
            let r = try DaemonHarness.run(DaemonHarness.binary, ["--generate-completion-script", shell])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("serve") && r.stdout.contains("dismount") && r.stdout.contains("--log-format"),
                          "\(shell) completion lacks subcommands or options")
            try r.stdout.write(toFile: "\(work)/cimnbd.\(shell)", atomically: true, encoding: .utf8)
        }
        var r = try DaemonHarness.run(bash, ["-n", work + "/cimnbd.bash"])
        XCTAssertEqual(r.status, 0, r.stderr)
        // Sourced, it completes subcommands: `cimnbd se<TAB>` offers serve.
        let probe = """
            source \(work)/cimnbd.bash
            COMP_WORDS=(cimnbd se); COMP_CWORD=1; COMP_LINE='cimnbd se'; COMP_POINT=${#COMP_LINE}
            _cimnbd; printf '%s\\n' "${COMPREPLY[@]}"
            """
        r = try DaemonHarness.run(bash, ["-c", probe])
        XCTAssertTrue(r.stdout.split(separator: "\n").contains("serve"), r.stdout + r.stderr)
        for shell in ["zsh", "fish"] {
            guard let path = DaemonHarness.tool(shell) else { continue }
            r = try DaemonHarness.run(path, ["-n", "\(work)/cimnbd.\(shell)"])
            XCTAssertEqual(r.status, 0, "\(shell) -n: \(r.stderr)")
        }
    }

    /// dist/man holds cimnbd.1 and one page per subcommand, each rendering
    /// without a warning, and each current: every option the binary has
    /// (per `--experimental-dump-help`) appears on its command's page.
    func testManPagesAreCompleteAndRender() throws {
        let man = try require("man")
        let pages = try manPages()
        let names = Set(pages.map { ($0 as NSString).lastPathComponent })
        XCTAssertTrue(names.contains("cimnbd.1"), "\(names)")
        let r = try DaemonHarness.run(DaemonHarness.binary, ["--experimental-dump-help"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let root = try XCTUnwrap(json["command"] as? [String: Any])

        // Walks the command tree: page name cimnbd.cim.ls.1 for `cimnbd cim ls`.
        var checked = 0
        func visit(_ command: [String: Any], path: [String]) throws {
            let page = path.joined(separator: ".") + ".1"
            guard names.contains(page) else {
                XCTFail("no man page \(page) for `\(path.joined(separator: " "))`; run tools/man/generate.sh")
                return
            }
            let text = try String(contentsOfFile: Self.packageRoot + "/dist/man/" + page, encoding: .utf8)
            for argument in command["arguments"] as? [[String: Any]] ?? [] {
                guard let names = argument["names"] as? [[String: Any]],
                      let long = names.first(where: { $0["kind"] as? String == "long" })?["name"] as? String,
                      argument["shouldDisplay"] as? Bool != false,
                      !["help", "version", "experimental-dump-help", "generate-completion-script"].contains(long)
                else { continue }
                // mdoc writes the option as `Fl -name` (the dash escaped or not).
                XCTAssertTrue(text.contains("Fl -\(long)") || text.contains("Fl \\-\(long)") || text.contains("--\(long)"),
                              "\(page) does not document --\(long); run tools/man/generate.sh")
                checked += 1
            }
            for sub in command["subcommands"] as? [[String: Any]] ?? [] {
                guard let name = sub["commandName"] as? String, name != "help" else { continue }
                try visit(sub, path: path + [name])
            }
        }
        try visit(root, path: ["cimnbd"])
        XCTAssertGreaterThan(checked, 30)

        for page in pages {
            let rendered = try DaemonHarness.run("/bin/sh", ["-c", "MANWIDTH=100 exec \(man) --warnings -E UTF-8 -l '\(page)' 2>&1 >/dev/null"])
            XCTAssertEqual(rendered.status, 0)
            XCTAssertEqual(rendered.stdout, "", "\(page) renders with warnings")
            let text = try DaemonHarness.run("/bin/sh", ["-c", "MANWIDTH=100 exec \(man) -E UTF-8 -l '\(page)' | col -b"])
            XCTAssertTrue(text.stdout.contains("NAME"), page)
        }
    }

    /// `--log-format json`: every line is an object with the same facts as
    /// the text format, the connection's metadata among them.
    func testJSONLogLinesCarryConnectionMetadata() throws {
        let nbdinfo = try require("nbdinfo")
        let d = try DaemonHarness(label: "jsonlog")
        let images = try d.makeImage(name: "logged", files: 2, bigFileBytes: 4096)
        try d.start(extra: ["--log-format", "json", "--log-level", "debug"])
        let guid = "6fbc595a-6ce2-4b6e-8dbf-4e5f60718293"
        XCTAssertEqual(try d.control(["mount", images, "logged.cim", "--volume-id", guid]).status, 0)
        let r = try DaemonHarness.run(nbdinfo, [d.uri(guid)])
        XCTAssertEqual(r.status, 0, r.stderr)
        d.stop()
        let log = try String(contentsOfFile: d.logPath, encoding: .utf8)
        var transmission: [String: Any]?
        var lines = 0
        for line in log.split(separator: "\n") {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            XCTAssertNotNil(object, "not a JSON object: \(line)")
            guard let object else { continue }
            lines += 1
            for key in ["time", "level", "label", "source", "message"] { XCTAssertNotNil(object[key], "\(key) missing: \(line)") }
            if object["message"] as? String == "client entered transmission phase" { transmission = object }
        }
        XCTAssertGreaterThan(lines, 3)
        let metadata = try XCTUnwrap(transmission?["metadata"] as? [String: Any], log)
        XCTAssertEqual(metadata["nbd.export"] as? String, guid)
        XCTAssertNotNil(metadata["nbd.connection"])
        XCTAssertTrue((metadata["nbd.peer"] as? String)?.contains("127.0.0.1") == true, "\(metadata)")
        XCTAssertEqual(transmission?["level"] as? String, "info")
    }
}
