import Foundation
import NBDServer
import XCTest

/// issue 9, item 1: a client that pipelines a flood of requests and never
/// reads a reply used to overflow the event loop's stack (reply completion
/// re-entered request processing). Requests are now handled in a loop.
final class PipelineFloodTests: XCTestCase {
    private static let requestCount = 1_000_000

    /// One million requests of each kind, sent at once, replies never read,
    /// then the connection is closed. The server must live and serve the next client.
    func testMillionPipelinedRequestsOfEachKindNeverRead() async throws {
        let fixture = try TestFixture(configuration: NBDServerConfiguration(eventLoopThreads: 1, blockingIOThreads: 2))
        try await fixture.start()
        let size: UInt64 = 64 << 20
        let kinds: [(name: String, type: UInt16, offset: (UInt64) -> UInt64)] = [
            ("in-range 1-byte READ", 0, { ($0 * 4096) % size }),
            ("READ past the end", 0, { size + $0 * 4096 }),
            ("unknown command", 0x55, { $0 * 4096 }),
        ]
        for kind in kinds {
            // Room in the kernel for every request and every reply, so the whole
            // flood reaches the server and is answered while nobody reads.
            let flood = try RawNBDClient(port: fixture.port, bufferSizes: (64 << 20, 64 << 20))
            try flood.handshake()
            _ = try flood.exportName(TestFixture.mainGUID.description)
            let started = Date()
            try flood.send(RawNBDClient.requests(count: Self.requestCount, type: kind.type, length: 1, offset: kind.offset))
            // As in the report of the crash: wait, never read, close. Past-end and
            // unknown commands are answered without I/O: wait until more are
            // answered than used to crash the server (100k-200k).
            let wanted = 16 * 200_000
            var queued = 0
            repeat {
                try await Task.sleep(nanoseconds: 200_000_000)
                queued = flood.queuedBytes()
            } while queued < wanted && Date().timeIntervalSince(started) < (kind.name.hasPrefix("in-range") ? 2 : 60)
            print("\(kind.name): \(Self.requestCount) requests sent, \(queued) reply bytes queued unread after \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
            XCTAssertGreaterThan(queued, 0, "\(kind.name): the server answered")
            if !kind.name.hasPrefix("in-range") {
                // Beyond the 100k-200k requests that used to crash the server.
                XCTAssertGreaterThanOrEqual(queued, wanted, "\(kind.name): the server went on answering")
            }
            flood.closeNow()

            // The next client is served, on the same (only) event loop.
            let client = try LibNBDClient()
            try client.setExportName(TestFixture.mainGUID.description)
            try client.connectTCP(port: fixture.port)
            XCTAssertEqual(try client.pread(count: 65536, offset: 4096), try fixture.mainVolume.read(offset: 4096, length: 65536), kind.name)
            try client.shutdown()
        }
        // The flooding connections are gone, not stuck.
        for _ in 0..<100 where fixture.server.connectionCount > 0 {
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        XCTAssertEqual(fixture.server.connectionCount, 0)
        try await fixture.stop()
    }
}
