import Foundation
import Logging
import NBDServer
import NIOCore
import XCTest

final class ServerLifecycleTests: XCTestCase {
    private func makeRegistry() throws -> (ExportRegistry, TestVolume) {
        let registry = ExportRegistry()
        let volume = TestVolume([.metadata(8192, seed: 9), .zeros(8192)])
        try registry.add(guid: TestFixture.mainGUID, volume: volume, description: "lifecycle")
        return (registry, volume)
    }

    private func quietLogger() -> Logger {
        var logger = Logger(label: "cimnbd.nbd")
        logger.logLevel = .critical
        return logger
    }

    func testSeveralListenersAndCleanShutdown() async throws {
        let (registry, volume) = try makeRegistry()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nbdlife-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let sockets = [directory.appendingPathComponent("a.sock").path, directory.appendingPathComponent("b.sock").path]
        let server = NBDServer(configuration: NBDServerConfiguration(eventLoopThreads: 1), registry: registry, logger: quietLogger())
        try await server.start(listenAddresses: [try SocketAddress(ipAddress: "127.0.0.1", port: 0),
                                                 try SocketAddress(ipAddress: "127.0.0.1", port: 0)],
                               unixSockets: sockets)
        XCTAssertEqual(server.boundPorts.count, 2)
        XCTAssertTrue(server.boundPorts.allSatisfy { $0 > 0 })
        XCTAssertEqual(server.boundAddresses.count, 4)
        do {
            _ = try await server.start(listenAddresses: [try SocketAddress(ipAddress: "127.0.0.1", port: 0)])
            XCTFail("a second start must fail")
        } catch {
            XCTAssertEqual(error as? NBDServerError, .alreadyStarted)
        }

        var clients: [LibNBDClient] = []
        for port in server.boundPorts {
            let client = try LibNBDClient()
            try client.setExportName(TestFixture.mainGUID.description)
            try client.connectTCP(port: port)
            clients.append(client)
        }
        for path in sockets {
            let client = try LibNBDClient()
            try client.setExportName(TestFixture.mainGUID.description)
            try client.connectUnix(path)
            clients.append(client)
        }
        for client in clients {
            XCTAssertEqual(try client.pread(count: 8192, offset: 0), try volume.read(offset: 0, length: 8192))
        }
        XCTAssertEqual(server.connectionCount, 4)
        XCTAssertEqual(registry.clientCount(guid: TestFixture.mainGUID), 4)

        try await server.shutdown()
        XCTAssertEqual(server.connectionCount, 0)
        for client in clients {
            XCTAssertThrowsError(try client.pread(count: 512, offset: 0), "connections are closed by shutdown")
        }
        for path in sockets {
            XCTAssertFalse(FileManager.default.fileExists(atPath: path), "socket file removed")
        }
        try await server.shutdown()  // idempotent
        do {
            try await server.start(listenAddresses: [try SocketAddress(ipAddress: "127.0.0.1", port: 0)])
            XCTFail("start after shutdown must fail")
        } catch {
            XCTAssertEqual(error as? NBDServerError, .alreadyShutDown)
        }
    }

    func testBindFailureIsReported() async throws {
        let (registry, _) = try makeRegistry()
        let first = NBDServer(configuration: NBDServerConfiguration(eventLoopThreads: 1), registry: registry, logger: quietLogger())
        try await first.start(listenAddresses: [try SocketAddress(ipAddress: "127.0.0.1", port: 0)])
        let port = try XCTUnwrap(first.boundPorts.first)
        let second = NBDServer(configuration: NBDServerConfiguration(eventLoopThreads: 1), registry: registry, logger: quietLogger())
        do {
            try await second.start(listenAddresses: [try SocketAddress(ipAddress: "127.0.0.1", port: port)])
            XCTFail("binding a port in use must fail")
        } catch {
            XCTAssertNotNil(error as? IOError, "\(error)")
        }
        XCTAssertEqual(second.boundAddresses.count, 0)
        try await second.shutdown()
        try await first.shutdown()
    }

    func testIdleHandshakeTimesOut() async throws {
        let (registry, _) = try makeRegistry()
        let server = NBDServer(configuration: NBDServerConfiguration(eventLoopThreads: 1, handshakeTimeoutSeconds: 1),
                               registry: registry, logger: quietLogger())
        try await server.start(listenAddresses: [try SocketAddress(ipAddress: "127.0.0.1", port: 0)])
        let raw = try RawNBDClient(port: try XCTUnwrap(server.boundPorts.first))
        _ = try raw.readGreeting()
        let started = Date()
        XCTAssertTrue(raw.closedByServer(), "a client idle in the handshake is disconnected")
        XCTAssertLessThan(Date().timeIntervalSince(started), 4)
        // A client in transmission phase is not subject to the timeout.
        let active = try RawNBDClient(port: try XCTUnwrap(server.boundPorts.first))
        try active.handshake()
        _ = try active.exportName(TestFixture.mainGUID.description)
        try await Task.sleep(nanoseconds: 1_500_000_000)
        try active.sendRequest(type: 0, handle: 1, offset: 0, length: 512)
        XCTAssertEqual(try active.readSimpleReply().error, 0)
        try await server.shutdown()
    }
}
