@testable import NBDServer
import NIOCore
import XCTest

final class ReadBufferPoolTests: XCTestCase {
    func testLargeBuffersAreUsedAgainAndSmallOnesAreNot() {
        let pool = ReadBufferPool(minimumCapacity: 64 * 1024, maximumSpareBytes: 1 << 20)
        var first = pool.take(capacity: 256 * 1024)
        first.writeBytes([UInt8](repeating: 7, count: 256 * 1024))
        let storage = first.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        pool.giveBack(first)
        first = ByteBuffer()   // the caller is done with it
        XCTAssertEqual(pool.heldBytes, 256 * 1024)

        // A smaller request is served from the spare, emptied.
        var again = pool.take(capacity: 100 * 1024)
        XCTAssertEqual(again.readableBytes, 0)
        XCTAssertEqual(pool.heldBytes, 0)
        again.writeBytes([UInt8](repeating: 9, count: 100 * 1024))
        XCTAssertEqual(again.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }, storage, "the same storage, no new allocation")
        XCTAssertEqual(again.getBytes(at: 0, length: 4), [9, 9, 9, 9])

        // A request larger than every spare gets a new buffer.
        pool.giveBack(again)
        let larger = pool.take(capacity: 512 * 1024)
        XCTAssertGreaterThanOrEqual(larger.capacity, 512 * 1024)
        XCTAssertEqual(pool.heldBytes, again.capacity, "the smaller spare stays")

        // Small buffers are never kept.
        pool.giveBack(ByteBufferAllocator().buffer(capacity: 4096))
        XCTAssertEqual(pool.heldBytes, again.capacity)
    }

    func testSparesStayWithinTheirBound() {
        let pool = ReadBufferPool(minimumCapacity: 64 * 1024, maximumSpareBytes: 1 << 20)
        let buffers = (0..<8).map { _ in pool.take(capacity: 256 * 1024) }
        for buffer in buffers { pool.giveBack(buffer) }
        XCTAssertLessThanOrEqual(pool.heldBytes, 1 << 20)
        XCTAssertGreaterThanOrEqual(pool.heldBytes, 3 * 256 * 1024)
    }

    func testAStillSharedSpareIsCopiedNotOverwritten() {
        let pool = ReadBufferPool(minimumCapacity: 64 * 1024, maximumSpareBytes: 1 << 20)
        var sent = pool.take(capacity: 128 * 1024)
        sent.writeBytes([UInt8](repeating: 1, count: 128 * 1024))
        pool.giveBack(sent)   // given back while `sent` (as NIO's copy would be) still holds it
        var reused = pool.take(capacity: 128 * 1024)
        reused.writeBytes([UInt8](repeating: 2, count: 128 * 1024))
        XCTAssertEqual(sent.getBytes(at: 0, length: 2), [1, 1], "a reply still being written keeps its bytes")
        XCTAssertEqual(reused.getBytes(at: 0, length: 2), [2, 2])
    }
}

final class SendfileUseTests: XCTestCase {
    func testRemoteSendsFileDataByCopyToPeersOnThisHost() throws {
        let local = try SocketAddress(ipAddress: "192.0.2.10", port: 10809)
        let onThisHost = [
            try SocketAddress(ipAddress: "127.0.0.1", port: 40000),
            try SocketAddress(ipAddress: "127.1.2.3", port: 40000),
            try SocketAddress(ipAddress: "::1", port: 40000),
            try SocketAddress(ipAddress: "::ffff:127.0.0.1", port: 40000),
            try SocketAddress(ipAddress: "192.0.2.10", port: 40000),   // this host's own address
            try SocketAddress(unixDomainSocketPath: "/tmp/nbd.sock"),
        ]
        for peer in onThisHost {
            XCTAssertFalse(SendfileUse.remote.allows(peer: peer, local: local), "\(peer)")
            XCTAssertTrue(SendfileUse.always.allows(peer: peer, local: local), "\(peer)")
            XCTAssertFalse(SendfileUse.never.allows(peer: peer, local: local), "\(peer)")
        }
        for peer in [try SocketAddress(ipAddress: "192.0.2.11", port: 40000), try SocketAddress(ipAddress: "2001:db8::1", port: 40000),
                     try SocketAddress(ipAddress: "128.0.0.1", port: 40000)] {
            XCTAssertTrue(SendfileUse.remote.allows(peer: peer, local: local), "\(peer)")
            XCTAssertFalse(SendfileUse.never.allows(peer: peer, local: local), "\(peer)")
        }
        XCTAssertFalse(SendfileUse.remote.allows(peer: nil, local: nil), "an unknown peer is treated as local")
    }
}
