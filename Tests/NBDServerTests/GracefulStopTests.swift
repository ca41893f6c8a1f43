import Foundation
import NBDServer
import XCTest

/// issue 9, item 3: stopping the server (SIGTERM runs `NBDServer.shutdown`) or
/// removing an export by force (`dismount --force`) must never cut a reply:
/// replies already started finish, the rest get NBD_ESHUTDOWN.
final class GracefulStopTests: XCTestCase {
    private static let readLength = 32 << 20
    private static let readCount = 24

    /// What the client saw: complete replies, ESHUTDOWN replies, anything else.
    private struct Outcome {
        var complete = 0
        var shutdown = 0
        var problems: [String] = []
        var total: Int { complete + shutdown }
    }

    /// Sends 24 pipelined 32 MiB reads, lets the server start on them, runs
    /// `stop`, then reads every reply, counting payload bytes.
    private func pipelineThenStop(_ fixture: TestFixture, stop: @escaping @Sendable () async throws -> Void) async throws -> Outcome {
        let raw = try RawNBDClient(port: fixture.port)
        try raw.handshake()
        _ = try raw.exportName(TestFixture.mainGUID.description)
        for index in 0..<Self.readCount {
            try raw.sendRequest(type: 0, handle: UInt64(index), offset: UInt64(index % 2) * UInt64(Self.readLength), length: UInt32(Self.readLength))
        }
        // The server has started as many as it allows in flight, and they are
        // blocked on our unread socket.
        try await Task.sleep(nanoseconds: 500_000_000)
        let stopping = Task { try await stop() }
        var outcome = Outcome()
        var handles = Set<UInt64>()
        while true {
            guard let header = raw.receiveUnlessClosed(16) else { break }
            guard header.count == 16 else {
                outcome.problems.append("reply header cut after \(header.count) bytes")
                break
            }
            let error = RawNBDClient.readBE32(header, 4), handle = RawNBDClient.readBE64(header, 8)
            guard RawNBDClient.readBE32(header, 0) == 0x6744_6698, handle < UInt64(Self.readCount), handles.insert(handle).inserted else {
                outcome.problems.append("bad reply header \(header)")
                break
            }
            switch error {
            case 0:
                let got = raw.receiveCounting(Self.readLength)
                if got == Self.readLength { outcome.complete += 1 } else { outcome.problems.append("reply \(handle) cut after \(got) of \(Self.readLength) bytes") }
            case 108:
                outcome.shutdown += 1
            default:
                outcome.problems.append("reply \(handle): error \(error)")
            }
        }
        try await stopping.value
        print("graceful stop: \(outcome.complete) complete replies, \(outcome.shutdown) NBD_ESHUTDOWN, problems: \(outcome.problems)")
        return outcome
    }

    func testShutdownFinishesStartedRepliesAndAnswersTheRestWithESHUTDOWN() async throws {
        let fixture = try TestFixture()
        try await fixture.start()
        let server = fixture.server
        let started = Date()
        let outcome = try await pipelineThenStop(fixture) { try await server.shutdown() }
        XCTAssertEqual(outcome.problems, [])
        XCTAssertEqual(outcome.total, Self.readCount, "every request is answered")
        XCTAssertGreaterThan(outcome.complete, 0, "started reads finish")
        XCTAssertGreaterThan(outcome.shutdown, 0, "reads not started get NBD_ESHUTDOWN")
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
        try await fixture.stop()
    }

    func testForcedRemoveFinishesStartedRepliesAndOtherExportsStay() async throws {
        let fixture = try TestFixture()
        try await fixture.start()
        let registry = fixture.registry
        let outcome = try await pipelineThenStop(fixture) { _ = try registry.remove(guid: TestFixture.mainGUID, force: true) }
        XCTAssertEqual(outcome.problems, [])
        XCTAssertEqual(outcome.total, Self.readCount)
        XCTAssertGreaterThan(outcome.complete, 0)
        XCTAssertGreaterThan(outcome.shutdown, 0)
        // The server goes on serving the other export.
        let client = try LibNBDClient()
        try client.setExportName(TestFixture.faultyGUID.description)
        try client.connectTCP(port: fixture.port)
        XCTAssertEqual(try client.pread(count: 4096, offset: 0), try fixture.faultyVolume.read(offset: 0, length: 4096))
        try client.shutdown()
        try await fixture.stop()
    }

    /// A client that never reads cannot hold a stop for longer than the grace period.
    func testStalledClientIsClosedAfterTheGracePeriod() async throws {
        let fixture = try TestFixture(configuration: NBDServerConfiguration(eventLoopThreads: 2, blockingIOThreads: 4, shutdownGracePeriod: .seconds(1)))
        try await fixture.start()
        let raw = try RawNBDClient(port: fixture.port)
        try raw.handshake()
        _ = try raw.exportName(TestFixture.mainGUID.description)
        for index in 0..<4 {
            try raw.sendRequest(type: 0, handle: UInt64(index), offset: 0, length: UInt32(Self.readLength))
        }
        try await Task.sleep(nanoseconds: 300_000_000)
        let started = Date()
        try await fixture.stop()
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertGreaterThan(elapsed, 0.8, "the server waited for the reply being sent")
        XCTAssertLessThan(elapsed, 4, "but no longer than the grace period")
    }

    // MARK: Stopping during the handshake (proto.md: NBD_REP_ERR_SHUTDOWN)

    /// A client haggling when the stop comes gets NBD_REP_ERR_SHUTDOWN for its
    /// next option, then the server closes; the stop does not wait for more.
    func testStopDuringHandshakeAnswersTheNextOptionWithShutdown() async throws {
        let fixture = try TestFixture()
        try await fixture.start()
        let raw = try RawNBDClient(port: fixture.port)
        try raw.handshake()
        XCTAssertEqual(try raw.list().count, 2, "haggling works before the stop")
        let server = fixture.server
        let started = Date()
        let stopping = Task { try await server.shutdown() }
        // Let the stop reach the connection before the option arrives.
        try await Task.sleep(nanoseconds: 200_000_000)
        let name = Array(TestFixture.mainGUID.description.utf8)
        try raw.sendOption(7, data: RawNBDClient.be32(UInt32(name.count)) + name + [0, 0])  // NBD_OPT_GO
        let reply = try raw.readOptionReply()
        XCTAssertEqual(reply.option, 7)
        XCTAssertEqual(reply.type, 0x8000_0007, "NBD_REP_ERR_SHUTDOWN, got \(String(reply.type, radix: 16)): \(reply.text)")
        XCTAssertEqual(reply.text, "the server is shutting down")
        XCTAssertTrue(raw.closedByServer(), "the server closes after answering")
        try await stopping.value
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.5, "the stop ended with the connection, not after a timeout")
        try? FileManager.default.removeItem(at: fixture.directory)
    }

    /// An option already sent when the stop comes is answered the same way,
    /// and so is one sent before the client flags were even complete.
    func testStopBeforeClientFlagsStillAnswersTheFirstOption() async throws {
        let fixture = try TestFixture()
        try await fixture.start()
        let raw = try RawNBDClient(port: fixture.port)
        _ = try raw.readGreeting()
        try raw.send([0, 0])  // half of the client flags
        let server = fixture.server
        let stopping = Task { try await server.shutdown() }
        try await Task.sleep(nanoseconds: 200_000_000)
        try raw.send([0, 3])
        try raw.sendOption(3)  // NBD_OPT_LIST
        let reply = try raw.readOptionReply()
        XCTAssertEqual(reply.option, 3)
        XCTAssertEqual(reply.type, 0x8000_0007)
        XCTAssertTrue(raw.closedByServer())
        try await stopping.value
        try? FileManager.default.removeItem(at: fixture.directory)
    }

    /// NBD_OPT_EXPORT_NAME cannot carry an error: a stopping server hangs up.
    func testStopDuringHandshakeClosesOnExportName() async throws {
        let fixture = try TestFixture()
        try await fixture.start()
        let raw = try RawNBDClient(port: fixture.port)
        try raw.handshake()
        let server = fixture.server
        let stopping = Task { try await server.shutdown() }
        try await Task.sleep(nanoseconds: 200_000_000)
        try raw.sendOption(1, data: Array(TestFixture.mainGUID.description.utf8))
        XCTAssertNil(raw.receiveUnlessClosed(10), "no export reply from a stopping server")
        try await stopping.value
        try? FileManager.default.removeItem(at: fixture.directory)
    }

    /// A client that says nothing more holds the stop for about a second, not
    /// for the whole grace period.
    func testIdleHandshakeConnectionIsClosedSoonAfterTheStop() async throws {
        let fixture = try TestFixture()
        try await fixture.start()
        let raw = try RawNBDClient(port: fixture.port)
        try raw.handshake()
        XCTAssertEqual(try raw.list().count, 2)
        let started = Date()
        try await fixture.server.shutdown()
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertGreaterThan(elapsed, 0.8, "the server waited for the client's next option")
        XCTAssertLessThan(elapsed, 3, "but not for the 10 s grace period")
        XCTAssertTrue(raw.closedByServer())
        try? FileManager.default.removeItem(at: fixture.directory)
    }
}
