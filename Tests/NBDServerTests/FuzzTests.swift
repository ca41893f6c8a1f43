import NBDServer
import XCTest

/// Random and hostile bytes, in both phases, must never bring the server down:
/// afterwards a well-behaved client is still served correctly.
final class FuzzTests: XCTestCase {
    func testRandomBytesNeverBreakTheServer() async throws {
        let fixture = try TestFixture(configuration: NBDServerConfiguration(eventLoopThreads: 1, blockingIOThreads: 2, handshakeTimeoutSeconds: 2))
        try await fixture.start()
        var random = SplitMix(seed: 2024)
        let name = TestFixture.mainGUID.description
        for round in 0..<150 {
            let raw = try RawNBDClient(port: fixture.port)
            var bytes: [UInt8] = []
            let kind = round % 3
            if kind >= 1 { bytes += RawNBDClient.be32(3) }  // valid client flags
            if kind == 2 {
                // Enter transmission, then send requests with random fields.
                bytes += Array("IHAVEOPT".utf8) + RawNBDClient.be32(1) + RawNBDClient.be32(UInt32(name.utf8.count)) + Array(name.utf8)
                for _ in 0..<(1 + Int(random.next() % 8)) {
                    let type = UInt16(truncatingIfNeeded: random.next() % 10)
                    let flags = UInt16(truncatingIfNeeded: random.next())
                    let offset = random.next() % 3 == 0 ? random.next() : random.next() % (70 << 20)
                    let length = random.next() % 3 == 0 ? UInt32(truncatingIfNeeded: random.next()) : UInt32(random.next() % (1 << 20))
                    bytes += RawNBDClient.be32(0x2560_9513) + RawNBDClient.be16(flags) + RawNBDClient.be16(type)
                        + RawNBDClient.be64(random.next()) + RawNBDClient.be64(offset) + RawNBDClient.be32(length)
                }
            } else if kind == 1 {
                // Options with random numbers, lengths and payloads.
                for _ in 0..<(1 + Int(random.next() % 6)) {
                    let option = UInt32(truncatingIfNeeded: random.next() % 14)
                    let payload = (0..<Int(random.next() % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                    let declared = random.next() % 4 == 0 ? UInt32(truncatingIfNeeded: random.next()) : UInt32(payload.count)
                    bytes += Array("IHAVEOPT".utf8) + RawNBDClient.be32(option) + RawNBDClient.be32(declared) + payload
                }
            }
            bytes += (0..<Int(random.next() % 200)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            _ = try raw.readGreeting()
            try? raw.send(bytes)
            // Drop the connection half-way through whatever the server is doing.
        }
        // The server is alive and correct.
        let client = try LibNBDClient()
        try client.setExportName(name)
        try client.connectTCP(port: fixture.port)
        XCTAssertEqual(try client.pread(count: 1 << 20, offset: 4096), try fixture.mainVolume.read(offset: 4096, length: 1 << 20))
        try await fixture.stop()
    }
}
