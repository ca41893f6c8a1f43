import CLibNBD
import Foundation
import NBDServer
import Logging
import NIOCore
import XCTest

/// issue 9, item 5 and `--allow`: limits on who may connect and how many.
final class ConnectionLimitTests: XCTestCase {
    private func nbdinfo(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nbdinfo")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testConnectionsBeyondTheLimitAreClosedAtOnceAndCounted() async throws {
        let fixture = try TestFixture(configuration: NBDServerConfiguration(eventLoopThreads: 1, maximumConnections: 4))
        try await fixture.start()
        XCTAssertEqual(fixture.server.connectionLimit, 4)
        var held: [RawNBDClient] = []
        for _ in 0..<4 {
            let client = try RawNBDClient(port: fixture.port)
            _ = try client.readGreeting()
            held.append(client)
        }
        let started = Date()
        let extra = try RawNBDClient(port: fixture.port)
        XCTAssertNil(extra.receiveUnlessClosed(18), "no greeting beyond the limit")
        XCTAssertLessThan(Date().timeIntervalSince(started), 2, "closed at once, not after a timeout")
        XCTAssertEqual(fixture.server.refusedConnectionCount, 1)
        XCTAssertEqual(fixture.server.connectionCount, 4)
        // Once one leaves, a real client gets in.
        held.removeLast().closeNow()
        for _ in 0..<50 where fixture.server.connectionCount >= 4 { try await Task.sleep(nanoseconds: 50_000_000) }
        let result = try nbdinfo(["--size", fixture.mainURI])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertEqual(result.output.trimmingCharacters(in: .whitespacesAndNewlines), "\(64 << 20)")
        held.removeAll()
        try await fixture.stop()
    }

    func testAddressRangeParsing() throws {
        XCTAssertEqual(NBDClientAddressRange("10.1.2.3/8")?.description, "10.0.0.0/8")
        XCTAssertEqual(NBDClientAddressRange("192.0.2.7")?.description, "192.0.2.7/32")
        XCTAssertEqual(NBDClientAddressRange("2001:db8:1::5/32")?.description, "2001:db8::/32")
        XCTAssertEqual(NBDClientAddressRange("::1")?.description, "::1/128")
        XCTAssertEqual(NBDClientAddressRange("0.0.0.0/0")?.description, "0.0.0.0/0")
        for bad in ["", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/8/8", "host.example", "10.0.0", "10.0.0.0/ 8", "fe80::1%eth0"] {
            XCTAssertNil(NBDClientAddressRange(bad), bad)
        }
        let lan = try XCTUnwrap(NBDClientAddressRange("192.168.1.0/24"))
        XCTAssertTrue(lan.contains(try SocketAddress(ipAddress: "192.168.1.200", port: 1)))
        XCTAssertFalse(lan.contains(try SocketAddress(ipAddress: "192.168.2.1", port: 1)))
        // IPv4 clients of a dual-stack listener appear IPv4-mapped.
        XCTAssertTrue(lan.contains(try SocketAddress(ipAddress: "::ffff:192.168.1.9", port: 1)))
        XCTAssertFalse(lan.contains(try SocketAddress(ipAddress: "::1", port: 1)))
        let v6 = try XCTUnwrap(NBDClientAddressRange("fd00::/8"))
        XCTAssertTrue(v6.contains(try SocketAddress(ipAddress: "fd12:3456::1", port: 1)))
        XCTAssertFalse(v6.contains(try SocketAddress(ipAddress: "fe80::1", port: 1)))
        XCTAssertFalse(v6.contains(try SocketAddress(ipAddress: "10.0.0.1", port: 1)))
        let odd = try XCTUnwrap(NBDClientAddressRange("10.64.0.0/10"))
        XCTAssertTrue(odd.contains(try SocketAddress(ipAddress: "10.127.255.255", port: 1)))
        XCTAssertFalse(odd.contains(try SocketAddress(ipAddress: "10.128.0.0", port: 1)))
    }

    private func serverAllowing(_ ranges: [String], fixture: TestFixture, v6: Bool) async throws -> NBDServer {
        let configuration = NBDServerConfiguration(eventLoopThreads: 1, allowedClients: ranges.compactMap(NBDClientAddressRange.init))
        let server = NBDServer(configuration: configuration, registry: fixture.registry, logger: .init(label: "test"))
        var addresses = [try SocketAddress(ipAddress: "127.0.0.1", port: 0)]
        if v6 { addresses.append(try SocketAddress(ipAddress: "::1", port: 0)) }
        try await server.start(listenAddresses: addresses, unixSockets: [fixture.directory.appendingPathComponent("allow.sock").path])
        return server
    }

    func testAllowListClosesOtherAddressesBeforeTheHandshake() async throws {
        let fixture = try TestFixture()
        let hasIPv6 = (try? SocketAddress(ipAddress: "::1", port: 0)) != nil && FileManager.default.fileExists(atPath: "/proc/net/if_inet6")
        let guid = TestFixture.mainGUID

        // Only a network the test is not on: IPv4 loopback is refused, as is IPv6.
        let closed = try await serverAllowing(["10.0.0.0/8", "fd00::/8"], fixture: fixture, v6: hasIPv6)
        let ports = closed.boundPorts
        let raw = try RawNBDClient(port: ports[0])
        XCTAssertNil(raw.receiveUnlessClosed(18), "closed before the greeting")
        var result = try nbdinfo(["--size", "nbd://127.0.0.1:\(ports[0])/\(guid)"])
        XCTAssertNotEqual(result.status, 0, result.output)
        if hasIPv6 {
            result = try nbdinfo(["--size", "nbd://[::1]:\(ports[1])/\(guid)"])
            XCTAssertNotEqual(result.status, 0, result.output)
        }
        XCTAssertEqual(closed.deniedConnectionCount, hasIPv6 ? 3 : 2)
        // The Unix socket is not subject to --allow.
        result = try nbdinfo(["--size", "nbd+unix:///\(guid)?socket=\(fixture.directory.path)/allow.sock"])
        XCTAssertEqual(result.status, 0, result.output)
        try await closed.shutdown()

        // Loopback allowed (a host address for IPv6): the same clients get in.
        let open = try await serverAllowing(["127.0.0.0/8", "::1"], fixture: fixture, v6: hasIPv6)
        result = try nbdinfo(["--size", "nbd://127.0.0.1:\(open.boundPorts[0])/\(guid)"])
        XCTAssertEqual(result.status, 0, result.output)
        if hasIPv6 {
            result = try nbdinfo(["--size", "nbd://[::1]:\(open.boundPorts[1])/\(guid)"])
            XCTAssertEqual(result.status, 0, result.output)
        }
        XCTAssertEqual(open.deniedConnectionCount, 0)
        try await open.shutdown()
        try? FileManager.default.removeItem(at: fixture.directory)
    }
}
