import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `cimnbd serve` facing a network (issue 9): the options reach the server,
/// descriptions keep host paths private, SIGTERM and `dismount --force` never
/// cut a reply, and a flood of pipelined requests does not kill the daemon.
final class DaemonNetworkTests: XCTestCase {
    private let guid = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"

    private func require(_ tool: String) throws -> String {
        guard let path = DaemonHarness.tool(tool) else { throw XCTSkip("\(tool) is not installed") }
        return path
    }

    private func daemonWithImage(_ label: String, extra: [String] = [], bigFileBytes: Int = 3 << 20) throws -> (DaemonHarness, String) {
        let d = try DaemonHarness(label: label)
        let images = try d.makeImage(name: "layer", bigFileBytes: bigFileBytes)
        try d.start(extra: extra)
        let mount = try d.control(["mount", images, "layer.cim", "--volume-id", guid])
        XCTAssertEqual(mount.status, 0, mount.stderr)
        return (d, images)
    }

    func testDescriptionsNameTheImageUnlessDescribePaths() throws {
        let nbdinfo = try require("nbdinfo")
        var (d, images) = try daemonWithImage("describe")
        var r = try DaemonHarness.run(nbdinfo, ["--list", "nbd://\(d.authority)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("description: layer.cim (CIM as ext4)"), r.stdout)
        XCTAssertFalse(r.stdout.contains(images), "the host path stays private: \(r.stdout)")
        d.stop()

        (d, images) = try daemonWithImage("describe-paths", extra: ["--describe-paths"])
        r = try DaemonHarness.run(nbdinfo, ["--list", "nbd://\(d.authority)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("description: \(images)/layer.cim (CIM as ext4)"), r.stdout)
        d.stop()
    }

    func testAllowMaxConnectionsAndHandshakeTimeoutOptions() throws {
        let nbdinfo = try require("nbdinfo")
        // Bad values are refused up front.
        var r = try DaemonHarness.run(DaemonHarness.binary, ["serve", "--allow", "10.0.0.0/33", "--no-demo"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("--allow: \"10.0.0.0/33\""), r.stderr)
        r = try DaemonHarness.run(DaemonHarness.binary, ["serve", "--max-connections", "0", "--no-demo"])
        XCTAssertEqual(r.status, 2, r.stderr)

        // --allow: loopback is not in the list, so TCP clients are closed and logged.
        var (d, _) = try daemonWithImage("allow", extra: ["--allow", "10.0.0.0/8", "--allow", "fd00::/8"])
        r = try DaemonHarness.run(nbdinfo, ["--size", d.uri(guid)])
        XCTAssertNotEqual(r.status, 0, r.stdout)
        d.stop()
        XCTAssertTrue(try String(contentsOfFile: d.logPath, encoding: .utf8).contains("refused: the address is not in --allow"))
        (d, _) = try daemonWithImage("allow-lo", extra: ["--allow", "127.0.0.1/32"])
        r = try DaemonHarness.run(nbdinfo, ["--size", d.uri(guid)])
        XCTAssertEqual(r.status, 0, r.stderr)
        d.stop()

        // --max-connections 2 and --handshake-timeout 1.
        (d, _) = try daemonWithImage("limits", extra: ["--max-connections", "2", "--handshake-timeout", "1"])
        let first = try RawNBDClient(port: d.port), second = try RawNBDClient(port: d.port)
        _ = try first.readGreeting()
        _ = try second.readGreeting()
        let third = try RawNBDClient(port: d.port)
        XCTAssertNil(third.receiveUnlessClosed(18), "beyond --max-connections: closed at once")
        let started = Date()
        XCTAssertTrue(first.closedByServer(), "idle in the handshake: closed")
        XCTAssertLessThan(Date().timeIntervalSince(started), 3.5, "after --handshake-timeout 1")
        XCTAssertTrue(second.closedByServer())
        r = try DaemonHarness.run(nbdinfo, ["--size", d.uri(guid)])
        XCTAssertEqual(r.status, 0, "room again: \(r.stderr)")
        d.stop()
        let log = try String(contentsOfFile: d.logPath, encoding: .utf8)
        XCTAssertTrue(log.contains("refused: 2 connections are open, the limit (--max-connections)"), log)
        XCTAssertTrue(log.contains("handshake timed out"), log)
    }

    /// The crash: 100k-200k one-byte reads at k x 4096 (most past the
    /// end), never read, closed after 2 s. The daemon lives and serves.
    func testPipelinedReadFloodDoesNotKillTheDaemon() throws {
        let nbdinfo = try require("nbdinfo")
        let (d, _) = try daemonWithImage("flood")
        for count in [100_000, 200_000] {
            let flood = try RawNBDClient(port: d.port, bufferSizes: (64 << 20, 64 << 20))
            try flood.handshake()
            _ = try flood.exportName(guid)
            try flood.send(RawNBDClient.requests(count: count, type: 0, length: 1) { $0 * 4096 })
            Thread.sleep(forTimeInterval: 2)
            XCTAssertGreaterThan(flood.queuedBytes(), 0)
            flood.closeNow()
            XCTAssertTrue(d.daemon?.isRunning ?? false, "the daemon survived \(count) pipelined reads")
            let r = try DaemonHarness.run(nbdinfo, ["--size", d.uri(guid)])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        d.stop()
    }

    /// 24 pipelined 32 MiB reads, then SIGTERM or `dismount --force`: each
    /// reply is complete or NBD_ESHUTDOWN, never cut.
    func testSIGTERMAndForcedDismountNeverCutAReply() throws {
        let readLength = 32 << 20
        for how in ["SIGTERM", "dismount --force"] {
            let (d, _) = try daemonWithImage("graceful", bigFileBytes: 40 << 20)
            let raw = try RawNBDClient(port: d.port)
            try raw.handshake()
            let (size, _) = try raw.exportName(guid)
            XCTAssertGreaterThanOrEqual(size, UInt64(readLength))
            for index in 0..<24 {
                try raw.sendRequest(type: 0, handle: UInt64(index), offset: 0, length: UInt32(readLength))
            }
            Thread.sleep(forTimeInterval: 0.5)
            var dismount: Process?
            if how == "SIGTERM" {
                kill(d.daemon?.processIdentifier ?? 0, SIGTERM)
            } else {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: DaemonHarness.binary)
                process.arguments = ["dismount", guid, "--force", "--control", d.control]
                process.standardOutput = FileHandle.nullDevice
                try process.run()
                dismount = process
            }
            var complete = 0, shutdown = 0, problems: [String] = []
            while let header = raw.receiveUnlessClosed(16) {
                guard header.count == 16, RawNBDClient.readBE32(header, 0) == 0x6744_6698 else {
                    problems.append("bad or cut reply header (\(header.count) bytes)")
                    break
                }
                switch RawNBDClient.readBE32(header, 4) {
                case 0:
                    let got = raw.receiveCounting(readLength)
                    if got == readLength { complete += 1 } else { problems.append("reply cut after \(got) of \(readLength) bytes") }
                case 108: shutdown += 1
                case let error: problems.append("error \(error)")
                }
            }
            print("\(how): \(complete) complete, \(shutdown) NBD_ESHUTDOWN, problems: \(problems)")
            XCTAssertEqual(problems, [], how)
            XCTAssertEqual(complete + shutdown, 24, how)
            XCTAssertGreaterThan(complete, 0, how)
            XCTAssertGreaterThan(shutdown, 0, how)
            dismount?.waitUntilExit()
            XCTAssertEqual(dismount?.terminationStatus ?? 0, 0)
            if how == "SIGTERM" {
                d.daemon?.waitUntilExit()
                XCTAssertEqual(d.daemon?.terminationStatus, 0, "clean exit")
            }
            d.stop()
        }
    }
}
