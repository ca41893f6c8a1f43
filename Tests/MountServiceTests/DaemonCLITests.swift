import Foundation
import XCTest
@testable import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// `cimnbd serve` with `mount`, `dismount`, `list`: CimMountImage's errors,
/// clients, restarts.
final class DaemonCLITests: XCTestCase {
    let guidA = "6f1c0e9e-3b1a-4c55-9a57-0d5f6f0e7a11"
    let guidB = "0a8b5c3d-1e2f-4a5b-8c7d-9e0f1a2b3c4d"

    func testMountErrorsMirrorCimMountImage() throws {
        let d = try DaemonHarness(label: "errors")
        let images = try d.makeImage(name: "layer")
        try d.start()
        var r = try d.control(["mount", images, "layer.cim", "--volume-id", guidA])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: "\n").map(String.init), [guidA, d.uri(guidA)])
        // Already exists: the GUID is in use.
        r = try d.control(["mount", images, "layer.cim", "--volume-id", guidA.uppercased()])
        XCTAssertEqual(r.status, 14)
        XCTAssertTrue(r.stderr.contains("already exists"), r.stderr)
        // Invalid argument: an unknown flag, and a known one we cannot honour.
        r = try d.control(["mount", images, "layer.cim", "--flags", "0x4000"])
        XCTAssertEqual(r.status, 10)
        XCTAssertTrue(r.stderr.contains("invalid argument"), r.stderr)
        r = try d.control(["mount", images, "layer.cim", "--flags", "0x80"])
        XCTAssertEqual(r.status, 10)
        // DAX is accepted (it has no meaning for an NBD volume).
        r = try d.control(["mount", images, "layer.cim", "--flags", "0x2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        // Path not found: the directory.
        r = try d.control(["mount", d.work + "/no-such-dir", "layer.cim"])
        XCTAssertEqual(r.status, 11)
        XCTAssertTrue(r.stderr.contains("path not found"), r.stderr)
        // File not found: the image name.
        r = try d.control(["mount", images, "other.cim"])
        XCTAssertEqual(r.status, 12)
        XCTAssertTrue(r.stderr.contains("file not found"), r.stderr)
        // Invalid GUID.
        r = try d.control(["mount", images, "layer.cim", "--volume-id", "not-a-guid"])
        XCTAssertEqual(r.status, 10)
        // A single path to the .cim works too; without --volume-id a random GUID is made.
        r = try d.control(["mount", images + "/layer.cim"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let random = r.stdout.split(separator: "\n").first.map(String.init) ?? ""
        XCTAssertNotNil(CimGUID(string: random))
        XCTAssertNotEqual(random, guidA)
        // Not mounted.
        r = try d.control(["dismount", guidB])
        XCTAssertEqual(r.status, 15)
        // Daemon unreachable.
        r = try d.cli(["list", "--control", d.work + "/nothing.sock"])
        XCTAssertEqual(r.status, 69)
        XCTAssertTrue(r.stderr.contains("cimnbd serve"), r.stderr)
        // list --json names all three.
        r = try d.control(["list", "--json"])
        XCTAssertEqual(r.status, 0)
        let listed = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] ?? []
        XCTAssertEqual(listed.count, 3)
        XCTAssertTrue(listed.contains { $0["guid"] as? String == guidA && $0["format"] as? String == "ext4" })
    }

    func testAccessDenied() throws {
        guard getuid() == 0, let setpriv = DaemonHarness.tool("setpriv") else { throw XCTSkip("needs root and setpriv") }
        let d = try DaemonHarness(label: "access")
        let images = try d.makeImage(name: "secret")
        // The binary and the work folder must be reachable for the unprivileged caller.
        chmod(d.work, 0o755)
        chmod(images, 0o755)
        let copy = d.work + "/cimnbd"
        try FileManager.default.copyItem(atPath: DaemonHarness.binary, toPath: copy)
        chmod(copy, 0o755)
        try d.start(extra: ["--control-mode", "666"])
        for file in try FileManager.default.contentsOfDirectory(atPath: images) { chmod(images + "/" + file, 0o600) }
        // A caller that may not read the image.
        var r = try DaemonHarness.run(setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups", copy, "mount", images, "secret.cim", "--control", d.control])
        XCTAssertEqual(r.status, 13, r.stderr)
        XCTAssertTrue(r.stderr.contains("access denied"), r.stderr)
        // Readable: allowed.
        for file in try FileManager.default.contentsOfDirectory(atPath: images) { chmod(images + "/" + file, 0o644) }
        r = try DaemonHarness.run(setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups", copy, "mount", images, "secret.cim", "--control", d.control])
        XCTAssertEqual(r.status, 0, r.stderr)
        // A caller that may not mount at all: the socket is root's only.
        chmod(d.control, 0o600)
        r = try DaemonHarness.run(setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups", copy, "list", "--control", d.control])
        XCTAssertEqual(r.status, 13, r.stderr)
    }

    func testDismountWithAndWithoutClientsAndRestartRestores() throws {
        guard let nbdfuse = DaemonHarness.tool("nbdfuse"), FileManager.default.fileExists(atPath: "/dev/fuse") else {
            throw XCTSkip("needs nbdfuse and /dev/fuse")
        }
        let d = try DaemonHarness(label: "clients")
        let images = try d.makeImage(name: "layer")
        try d.start()
        XCTAssertEqual(try d.control(["mount", images, "layer.cim", "--volume-id", guidA]).status, 0)
        XCTAssertEqual(try d.control(["mount", images, "layer.cim", "--volume-id", guidB]).status, 0)
        // A connected client (nbdfuse keeps its connection open).
        let fuse = d.work + "/fuse"
        let fuseProcess = try d.startNBDFuse(nbdfuse, uri: d.uri(guidA), mountPoint: fuse)
        defer { d.unmountFuse(fuse, fuseProcess) }
        var r: DaemonHarness.Result
        r = try d.control(["list", "--json"])
        let listed = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] ?? []
        // nbdfuse opens several connections (multi-conn); each is a client connection.
        XCTAssertGreaterThanOrEqual(listed.first { $0["guid"] as? String == guidA }?["clients"] as? Int ?? 0, 1)
        XCTAssertEqual(listed.first { $0["guid"] as? String == guidB }?["clients"] as? Int, 0)
        r = try d.control(["dismount", guidA])
        XCTAssertEqual(r.status, 16, r.stderr)
        XCTAssertTrue(r.stderr.contains("--force"), r.stderr)
        r = try d.control(["dismount", guidA, "--force"])
        XCTAssertEqual(r.status, 0, r.stderr)
        // The export is gone for new clients.
        if let nbdinfo = DaemonHarness.tool("nbdinfo") {
            XCTAssertNotEqual(try DaemonHarness.run(nbdinfo, [d.uri(guidA)]).status, 0)
        }
        // Restart: B comes back under the same GUID, A stays dismounted.
        d.stop()
        try d.start()
        r = try d.control(["list", "--json"])
        let restored = (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] ?? []).compactMap { $0["guid"] as? String }
        XCTAssertEqual(restored, [guidB])
        if let nbdinfo = DaemonHarness.tool("nbdinfo") {
            r = try DaemonHarness.run(nbdinfo, ["--size", d.uri(guidB)])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertGreaterThan(UInt64(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, 0)
        }
        // A restart after SIGKILL restores too (the state file is always complete).
        d.stop(signal: SIGKILL)
        try d.start()
        XCTAssertTrue(try d.control(["list"]).stdout.contains(guidB))
    }

    func testDemoImageWhenNothingIsMounted() throws {
        let d = try DaemonHarness(label: "demo")
        try d.start(demo: true)
        // The control socket answers before the demo is mounted (it is mounted
        // once the daemon is ready): give it a moment on a busy machine.
        var r = try d.control(["list", "--json"])
        for _ in 0..<100 where !r.stdout.contains("c1d0e5a0-0000-4000-8000-000000000001") {
            usleep(50_000)
            r = try d.control(["list", "--json"])
        }
        XCTAssertTrue(r.stdout.contains("c1d0e5a0-0000-4000-8000-000000000001"), r.stdout)
        if let nbdinfo = DaemonHarness.tool("nbdinfo") {
            let info = try DaemonHarness.run(nbdinfo, [d.uri("c1d0e5a0-0000-4000-8000-000000000001")])
            XCTAssertEqual(info.status, 0, info.stderr)
            XCTAssertTrue(info.stdout.contains("is_read_only: true"), info.stdout)
        }
        d.stop()
        let log = (try? String(contentsOfFile: d.logPath, encoding: .utf8)) ?? ""
        XCTAssertTrue(log.contains("nbdinfo nbd://"), "serve prints how to read the demo:\n\(log)")
    }
}
