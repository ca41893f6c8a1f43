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
}
