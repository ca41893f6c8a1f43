import CLibNBD
import NBDServer
import XCTest

/// The same bytes whichever way file data is sent: sendfile for everything,
/// sendfile only for large pieces, copies only, and the default over
/// loopback (copies into buffers the connection uses again).
final class SendfileModeTests: XCTestCase {
    func testReadsAreIdenticalInEverySendMode() async throws {
        let modes: [(String, NBDServerConfiguration)] = [
            ("copy only", NBDServerConfiguration(eventLoopThreads: 1, blockingIOThreads: 2, sendfile: .never)),
            ("sendfile everything", NBDServerConfiguration(eventLoopThreads: 1, blockingIOThreads: 2, sendfile: .always, sendfileMinimumLength: 1)),
            ("in-flight cap 1", NBDServerConfiguration(eventLoopThreads: 1, blockingIOThreads: 1, maximumInFlightRequests: 1, sendfile: .always)),
            ("default, loopback", NBDServerConfiguration(eventLoopThreads: 1, blockingIOThreads: 2)),
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
                // Many reads of changing sizes: buffers used again must carry
                // only their new bytes.
                var generator = SplitMix(seed: structured ? 7 : 8)
                for _ in 0..<60 {
                    let count = 4096 + Int(generator.next() % UInt64(1 << 20))
                    let offset = generator.next() % UInt64((64 << 20) - count)
                    let got = structured ? try client.preadStructured(count: count, offset: offset).bytes
                                         : try client.pread(count: count, offset: offset)
                    XCTAssertEqual(got, try fixture.mainVolume.read(offset: offset, length: count), "\(label), structured \(structured), \(count) at \(offset)")
                }
            }
            try await fixture.stop()
        }
    }
}
