import NBDServer
import XCTest

/// A client that stops reading its replies must not hold up anyone else, even
/// on the same event loop.
final class SlowClientTests: XCTestCase {
    func testStalledClientDoesNotBlockOthers() async throws {
        let fixture = try TestFixture(configuration: NBDServerConfiguration(eventLoopThreads: 1, blockingIOThreads: 2))
        try await fixture.start()

        // The stalled client queues 128 MiB of reads and never reads a reply.
        let stalled = try RawNBDClient(port: fixture.port)
        try stalled.handshake()
        _ = try stalled.exportName(TestFixture.mainGUID.description)
        for index in 0..<128 {
            try stalled.sendRequest(type: 0, handle: UInt64(index), offset: UInt64(index % 60) << 20, length: 1 << 20)
        }
        try await Task.sleep(nanoseconds: 300_000_000)

        let started = Date()
        let client = try LibNBDClient()
        try client.setExportName(TestFixture.mainGUID.description)
        try client.connectTCP(port: fixture.port)
        for round in 0..<16 {
            let offset = UInt64(round) << 20
            XCTAssertEqual(try client.pread(count: 1 << 20, offset: offset), try fixture.mainVolume.read(offset: offset, length: 1 << 20))
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 10, "another client's reads must not wait for the stalled one")

        // The stalled client still gets every reply, in full, once it reads.
        var seen = Set<UInt64>()
        for _ in 0..<128 {
            let reply = try stalled.readSimpleReply()
            XCTAssertEqual(reply.error, 0)
            seen.insert(reply.handle)
            let data = try stalled.receive(1 << 20)
            let offset = UInt64(Int(reply.handle) % 60) << 20
            XCTAssertEqual(data, try fixture.mainVolume.read(offset: offset, length: 1 << 20))
        }
        XCTAssertEqual(seen.count, 128)
        try await fixture.stop()
    }

    /// With one request in flight allowed, a WRITE (in flight while its payload
    /// is skipped) must not stop the server from reading that payload.
    func testWritePayloadWithInFlightCapOfOne() async throws {
        let fixture = try TestFixture(configuration: NBDServerConfiguration(eventLoopThreads: 1, blockingIOThreads: 1, maximumInFlightRequests: 1))
        try await fixture.start()
        let raw = try RawNBDClient(port: fixture.port)
        try raw.handshake()
        _ = try raw.exportName(TestFixture.mainGUID.description)
        let payload = [UInt8](repeating: 0x33, count: 4 << 20)
        try raw.sendRequest(type: 1, handle: 1, offset: 0, length: UInt32(payload.count))
        try raw.send(payload)
        try raw.sendRequest(type: 0, handle: 2, offset: 0, length: 4096)
        let write = try raw.readSimpleReply()
        XCTAssertEqual(write.handle, 1)
        XCTAssertEqual(write.error, 1, "EPERM")
        let read = try raw.readSimpleReply()
        XCTAssertEqual(read.handle, 2)
        XCTAssertEqual(read.error, 0)
        XCTAssertEqual(try raw.receive(4096), try fixture.mainVolume.read(offset: 0, length: 4096))
        try await fixture.stop()
    }
}
