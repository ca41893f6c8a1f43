import CLibNBD
import Foundation
import NBDServer
import XCTest

/// issue 9, item 7: command flags that were not advertised get EINVAL
/// (proto.md "Command flags", "Error values"), and the reply boundaries the
/// server chooses fall on the advertised minimum block size.
final class CommandFlagTests: XCTestCase {
    var fixture: TestFixture!

    override func setUp() async throws {
        fixture = try TestFixture()
        try await fixture.start()
    }

    override func tearDown() async throws {
        try await fixture?.stop()
        fixture = nil
    }

    private static let fua: UInt16 = 1 << 0, noHole: UInt16 = 1 << 1, df: UInt16 = 1 << 2, reqOne: UInt16 = 1 << 3

    /// Simple replies: every flag not allowed for a command is EINVAL, and the
    /// stream stays usable after each.
    func testFlagsNotAdvertisedAreEINVAL() throws {
        let raw = try RawNBDClient(port: fixture.port)
        try raw.handshake()
        let (_, transmissionFlags) = try raw.exportName(TestFixture.mainGUID.description)
        XCTAssertEqual(transmissionFlags & (1 << 3), 0, "SEND_FUA is not advertised")
        XCTAssertEqual(transmissionFlags & (1 << 7), 0, "SEND_DF is not advertised without structured replies")
        let refused: [(name: String, type: UInt16, flags: UInt16)] = [
            ("READ+FUA", 0, Self.fua),
            ("READ+DF without structured replies", 0, Self.df),
            ("READ+REQ_ONE", 0, Self.reqOne),
            ("READ+unknown bit 15", 0, 1 << 15),
            ("FLUSH+FUA", 3, Self.fua),
            ("CACHE+FUA", 5, Self.fua),
            ("CACHE+NO_HOLE", 5, Self.noHole),
        ]
        for (index, request) in refused.enumerated() {
            try raw.sendRequest(type: request.type, flags: request.flags, handle: UInt64(100 + index), offset: 0, length: 4096)
            let reply = try raw.readSimpleReply()
            XCTAssertEqual(reply.handle, UInt64(100 + index), request.name)
            XCTAssertEqual(reply.error, 22, "\(request.name) must be EINVAL")
            // The plain command still works right after.
            try raw.sendRequest(type: request.type, handle: 1, offset: 0, length: request.type == 3 ? 0 : 4096)
            let plain = try raw.readSimpleReply()
            XCTAssertEqual(plain.error, 0, "plain \(request.name)")
            if request.type == 0 { XCTAssertEqual(try raw.receive(4096), try fixture.mainVolume.read(offset: 0, length: 4096)) }
        }
    }

    /// libnbd (strict checks off, so it sends what it is told) sees EINVAL for
    /// FUA on READ and on BLOCK_STATUS with structured replies.
    func testFUAOnReadAndBlockStatusIsEINVALWithStructuredReplies() throws {
        let client = try LibNBDClient()
        try client.setStrictMode(0)
        try client.addMetaContext(LIBNBD_CONTEXT_BASE_ALLOCATION)
        try client.setExportName(TestFixture.mainGUID.description)
        try client.connectTCP(port: fixture.port)
        XCTAssertThrowsError(try client.pread(count: 4096, offset: 0, flags: UInt32(LIBNBD_CMD_FLAG_FUA))) { error in
            XCTAssertEqual((error as? LibNBDError)?.errno, EINVAL, "\(error)")
        }
        XCTAssertThrowsError(try client.blockStatus(count: 4096, offset: 0, flags: UInt32(LIBNBD_CMD_FLAG_FUA))) { error in
            XCTAssertEqual((error as? LibNBDError)?.errno, EINVAL, "\(error)")
        }
        // DF is allowed with structured replies, and the connection is fine.
        XCTAssertEqual(try client.pread(count: 4096, offset: 0, flags: UInt32(LIBNBD_CMD_FLAG_DF)), try fixture.mainVolume.read(offset: 0, length: 4096))
        try client.shutdown()
    }

    func testBlockSizeIsAdvertised() throws {
        let client = try LibNBDClient()
        try client.setExportName(TestFixture.mainGUID.description)
        try client.connectTCP(port: fixture.port)
        XCTAssertEqual(try client.blockSize(Int32(LIBNBD_SIZE_MINIMUM)), 512)
        XCTAssertEqual(try client.blockSize(Int32(LIBNBD_SIZE_PREFERRED)), 4096)
        XCTAssertEqual(try client.blockSize(Int32(LIBNBD_SIZE_MAXIMUM)), 32 << 20)
        try client.shutdown()
    }

    /// Whole 512-byte blocks of zeros in the main volume, as the oracle for
    /// what may be reported as a hole.
    private func zeroBlocks() -> Set<UInt64> {
        var blocks = Set<UInt64>()
        for (start, length) in fixture.mainZeroRuns {
            var block = (start + 511) / 512
            while (block + 1) * 512 <= start + length {
                blocks.insert(block)
                block += 1
            }
        }
        return blocks
    }

    /// Structured reads: every chunk starts and ends on a multiple of 512
    /// (except at the request's own edges), holes cover only whole zero blocks,
    /// and the bytes are right. Ranges start and end inside zero runs at odd offsets.
    func testStructuredReadChunksFallOnBlockBoundaries() throws {
        let client = try LibNBDClient()
        try client.allowUnalignedRequests()
        try client.setExportName(TestFixture.mainGUID.description)
        try client.connectTCP(port: fixture.port)
        let zeros = zeroBlocks()
        let start9M: UInt64 = 4096 + (1 << 20) + (1 << 20) + 8192 + 2_007_040
        let ranges: [(UInt64, Int)] = [(0, 4 << 20), (1000, 3 << 20), ((1 << 20) + 4096 + 333, 1 << 20), (start9M - 7000, 1 << 20), (3_000_000, 9 << 20)]
        var sawHole = false
        for (offset, count) in ranges {
            let (bytes, chunks) = try client.preadStructured(count: count, offset: offset)
            XCTAssertEqual(bytes, try fixture.mainVolume.read(offset: offset, length: count), "read \(count) at \(offset)")
            let end = offset + UInt64(count)
            for chunk in chunks {
                let chunkEnd = chunk.offset + UInt64(chunk.count)
                XCTAssertTrue(chunk.offset == offset || chunk.offset % 512 == 0, "chunk at \(chunk.offset) of the read at \(offset)")
                XCTAssertTrue(chunkEnd == end || chunkEnd % 512 == 0, "chunk ending at \(chunkEnd) of the read at \(offset)")
                if chunk.status == UInt32(LIBNBD_READ_HOLE) {
                    sawHole = true
                    XCTAssertEqual(chunk.offset % 512, 0)
                    XCTAssertEqual(chunkEnd % 512, 0)
                    for block in (chunk.offset / 512)..<(chunkEnd / 512) where !zeros.contains(block) {
                        XCTFail("hole over block \(block), which is not all zeros")
                        break
                    }
                }
            }
        }
        XCTAssertTrue(sawHole)
    }

    /// Block status: descriptors on 512-byte boundaries, starting at an odd
    /// offset too; a block is a hole exactly when it is all zeros in the layout.
    func testBlockStatusDescriptorsFallOnBlockBoundaries() throws {
        let client = try LibNBDClient()
        try client.allowUnalignedRequests()
        try client.addMetaContext(LIBNBD_CONTEXT_BASE_ALLOCATION)
        try client.setExportName(TestFixture.mainGUID.description)
        try client.connectTCP(port: fixture.port)
        let zeros = zeroBlocks()
        let size: UInt64 = 64 << 20
        var offset: UInt64 = 0
        var descriptors = 0
        while offset < size {
            let results = try client.blockStatus(count: size - offset, offset: offset)
            guard let entries = results.first?.entries, !entries.isEmpty else { return XCTFail("no extents at \(offset)") }
            for (length, flags) in entries {
                descriptors += 1
                let end = offset + UInt64(length)
                XCTAssertEqual(offset % 512, 0, "descriptor at \(offset)")
                XCTAssertEqual(end % 512, 0, "descriptor ending at \(end)")
                let isHole = flags == UInt32(LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO)
                XCTAssertTrue(isHole || flags == 0, "flags \(flags)")
                for block in (offset / 512)..<(end / 512) where zeros.contains(block) != isHole {
                    XCTFail("block \(block) reported as \(isHole ? "hole" : "data")")
                    break
                }
                offset = end
            }
        }
        XCTAssertGreaterThan(descriptors, 3)
        // An unaligned query: only its first descriptor may start off the grid,
        // and the rest still ends on it.
        let odd = try client.blockStatus(count: 1 << 20, offset: 4096 + (1 << 20) + 8192 + 155_652)
        guard var position = Optional(UInt64(4096 + (1 << 20) + 8192 + 155_652)), let entries = odd.first?.entries else { return XCTFail() }
        for (index, (length, _)) in entries.enumerated() {
            position += UInt64(length)
            if index < entries.count - 1 { XCTAssertEqual(position % 512, 0, "boundary at \(position)") }
        }
    }
}
