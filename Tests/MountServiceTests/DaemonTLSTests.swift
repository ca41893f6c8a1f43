import Foundation
import MountService
import XCTest

/// `cimnbd serve --tls …` as a user runs it: option checks, nbds:// URIs,
/// a GnuTLS client, and `attach` refusing what the kernel cannot carry.
final class DaemonTLSTests: XCTestCase {
    let guid = "5d2f8c1a-7b3e-4f60-9a1d-2c4e6f8a0b13"

    func testTLSOptionErrorsNameTheProblem() throws {
        let d = try DaemonHarness(label: "tls-errors")
        let base = ["serve", "--listen", d.authority, "--control", d.control, "--state", d.state, "--no-demo"]
        var r = try d.cli(base + ["--tls", "require"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--tls require needs --tls-certificates DIR or --tls-psk FILE"), r.stderr)
        r = try d.cli(base + ["--tls", "sometimes"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("is not off, on or require"), r.stderr)
        r = try d.cli(base + ["--tls-verify-peer"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("needs --tls-certificates DIR"), r.stderr)
        r = try d.cli(base + ["--tls-certificates", d.work, "--tls-psk", d.work + "/keys.psk"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("exclude each other"), r.stderr)
        r = try d.cli(base + ["--tls-psk", d.work + "/missing.psk"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains(d.work + "/missing.psk: cannot read the PSK file"), r.stderr)
        r = try d.cli(base + ["--tls", "require", "--tls-certificates", d.work])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains(d.work + "/server-cert.pem: no such file"), r.stderr)
        let help = try d.cli(["serve", "--help"])
        for option in ["--tls <off|on|require>", "--tls-certificates <DIR>", "--tls-psk <FILE>", "--tls-verify-peer"] {
            XCTAssertTrue(help.stdout.contains(option), "serve --help lacks \(option)")
        }
    }

    func testRequireWithPreSharedKeys() throws {
        guard let psktool = DaemonHarness.tool("psktool"), let nbdinfo = DaemonHarness.tool("nbdinfo") else {
            throw XCTSkip("psktool (gnutls-bin) or nbdinfo (libnbd-bin) is not installed")
        }
        let d = try DaemonHarness(label: "tls-psk")
        let keys = d.work + "/keys.psk"
        XCTAssertEqual(try DaemonHarness.run(psktool, ["-u", "alice", "-p", keys]).status, 0)
        let socket = d.work + "/nbd.sock"
        let images = try d.makeImage(name: "layer", files: 3, bigFileBytes: 1 << 20)
        try d.start(extra: ["--tls", "require", "--tls-psk", keys, "--socket", socket])
        var r = try d.control(["mount", images, "layer.cim", "--volume-id", guid])
        XCTAssertEqual(r.status, 0, r.stderr)
        let tlsURI = "nbds://\(d.authority)/\(guid)"
        XCTAssertEqual(r.stdout.split(separator: "\n").last.map(String.init), tlsURI, "mount prints an nbds:// URI under --tls require")

        let secure = try DaemonHarness.run(nbdinfo, ["--size", "nbds://alice@\(d.authority)/\(guid)?tls-psk-file=\(keys)"])
        XCTAssertEqual(secure.status, 0, secure.stderr)
        let size = secure.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertNotNil(UInt64(size), secure.stdout)
        let plain = try DaemonHarness.run(nbdinfo, ["--size", d.uri(guid)])
        XCTAssertNotEqual(plain.status, 0, "plain TCP must be refused")
        let local = try DaemonHarness.run(nbdinfo, ["--size", "nbd+unix:///\(guid)?socket=\(socket)"])
        XCTAssertEqual(local.status, 0, local.stderr)
        XCTAssertEqual(local.stdout.trimmingCharacters(in: .whitespacesAndNewlines), size, "the Unix socket serves the same export in plain text")

        // attach cannot take nbds:// at all: the kernel has no TLS.
        r = try d.cli(["attach", guid, "--server", tlsURI])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("kernel's nbd driver cannot carry"), r.stderr)
        XCTAssertTrue(r.stderr.contains("nbd+unix:///GUID?socket="), r.stderr)

        // mount --attach goes through the Unix socket: the daemon's answer
        // names it (the kernel attach itself runs in tools/vm/run, scenario 9).
        let second = "6e3a9d2b-8c4f-4a71-8b2e-3d5f7a9b1c24"
        let mounted = try ControlClient(path: d.control).send(ControlRequest(op: .mount, directory: images, name: "layer.cim", guid: second))
        XCTAssertTrue(mounted.ok, "\(String(describing: mounted.error))")
        XCTAssertEqual(mounted.uri, "nbds://\(d.authority)/\(second)")
        XCTAssertEqual(mounted.kernelURI, "nbd+unix:///\(second)?socket=\(socket)")
        d.stop()
        let log = (try? String(contentsOfFile: d.logPath, encoding: .utf8)) ?? ""
        XCTAssertTrue(log.contains("TLS session established"), log)
        XCTAssertTrue(log.contains("TLS required on TCP only: Unix socket(s) \(socket) serve plain text"), log)
    }

    /// Under --tls require without a Unix socket there is nowhere the kernel
    /// can attach: mount --attach says so before touching any device, names
    /// --socket PATH, and leaves nothing mounted.
    func testMountAttachUnderRequireWithoutUnixSocketRefusesClearly() throws {
        guard let psktool = DaemonHarness.tool("psktool") else { throw XCTSkip("psktool (gnutls-bin) is not installed") }
        let d = try DaemonHarness(label: "tls-attach")
        let keys = d.work + "/keys.psk"
        XCTAssertEqual(try DaemonHarness.run(psktool, ["-u", "alice", "-p", keys]).status, 0)
        let images = try d.makeImage(name: "layer", files: 2, bigFileBytes: 1 << 16)
        try d.start(extra: ["--tls", "require", "--tls-psk", keys])
        let r = try d.control(["mount", images, "layer.cim", "--volume-id", guid, "--attach"])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("--attach refused, volume dismounted again"), r.stderr)
        XCTAssertTrue(r.stderr.contains("kernel's nbd driver cannot carry TLS"), r.stderr)
        XCTAssertTrue(r.stderr.contains("--socket PATH"), r.stderr)
        let list = try ControlClient(path: d.control).send(ControlRequest(op: .list))
        XCTAssertEqual(list.mounts?.count, 0, "the volume mounted for the attach is gone again")
        let answer = try ControlClient(path: d.control).send(ControlRequest(op: .mount, directory: images, name: "layer.cim", guid: guid))
        XCTAssertTrue(answer.ok)
        XCTAssertNil(answer.kernelURI, "no plain path for the kernel")
        d.stop()
        let log = (try? String(contentsOfFile: d.logPath, encoding: .utf8)) ?? ""
        XCTAssertTrue(log.contains("no Unix socket is served"), log)
    }
}
