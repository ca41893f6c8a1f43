import CLibNBD
import NBDServer
import XCTest

/// The same bytes whichever way file data is sent: sendfile for everything,
/// sendfile only for large pieces (the default), or copies only.
final class SendfileModeTests: XCTestCase {
    func testReadsAreIdenticalInEverySendMode() async throws {
        let modes: [(String, NBDServerConfiguration)] = [
            ("copy only", NBDServerConfiguration(eventLoopThreads: 1, blockingIOThreads: 2, useSendfile: false)),
            ("sendfile everything", NBDServerConfiguration(eventLoopThreads: 1, blockingIOThreads: 2, useSendfile: true, sendfileMinimumLength: 1)),
            ("in-flight cap 1", NBDServerConfiguration(eventLoopThreads: 1, blockingIOThreads: 1, maximumInFlightRequests: 1)),
        ]
        for (label, configuration) in modes {
            let fixture = try TestFixture(configuration: configuration)
            try await fixture.start()
            for structured in [false, true] {
                let client = try LibNBDClient()
                try client.setStructuredReplies(structured)
                try client.allowUnalignedRequests()
                try client.setExportName(TestFixture.mainGUID.description)
                try client.connectTCP(port: fixture.port)
                for (offset, count) in [(0, 4 << 20), (4095, 3 << 20), ((2 << 20) + 12_345, 2_100_000), ((64 << 20) - (1 << 20), 1 << 20)] as [(UInt64, Int)] {
                    let got = structured ? try client.preadStructured(count: count, offset: offset).bytes
                                         : try client.pread(count: count, offset: offset)
                    XCTAssertEqual(got, try fixture.mainVolume.read(offset: offset, length: count), "\(label), structured \(structured), \(count) at \(offset)")
                }
            }
            try await fixture.stop()
        }
    }
}
