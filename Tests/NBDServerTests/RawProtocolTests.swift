import Foundation
import NBDServer
import XCTest

/// Byte-level protocol tests for what well-behaved clients never send.
final class RawProtocolTests: XCTestCase {
    var fixture: TestFixture!

    // Values from proto.md.
    let repAck: UInt32 = 1, repInfo: UInt32 = 3, repMetaContext: UInt32 = 4
    let errUnsup: UInt32 = 0x8000_0001, errPolicy: UInt32 = 0x8000_0002, errInvalid: UInt32 = 0x8000_0003
    let errUnknown: UInt32 = 0x8000_0006, errTooBig: UInt32 = 0x8000_0009

    override func setUp() async throws {
        fixture = try TestFixture()
        try await fixture.start()
    }

    override func tearDown() async throws {
        try await fixture?.stop()
        fixture = nil
    }

    private func client() throws -> RawNBDClient { try RawNBDClient(port: fixture.port) }

    private var mainName: String { TestFixture.mainGUID.description }

    // MARK: Handshake

    func testGreetingIsFixedNewstyleAndNonFixedClientsAreRefused() throws {
        let raw = try client()
        // Newstyle greeting (never oldstyle's cliserv magic), FIXED_NEWSTYLE | NO_ZEROES.
        XCTAssertEqual(try raw.readGreeting(), 0b11)
        // A client that does not speak fixed newstyle is dropped.
        try raw.send(RawNBDClient.be32(0))
        XCTAssertTrue(raw.closedByServer())
    }

    func testUnknownClientFlagsClose() throws {
        let raw = try client()
        _ = try raw.readGreeting()
        try raw.send(RawNBDClient.be32(1 | 1 << 7))
        XCTAssertTrue(raw.closedByServer())
    }

    func testUnknownOptionIsUnsupportedAndConnectionStaysUsable() throws {
        let raw = try client()
        try raw.handshake()
        try raw.sendOption(0x4242, data: Array("payload".utf8))
        let reply = try raw.readOptionReply()
        XCTAssertEqual(reply.option, 0x4242)
        XCTAssertEqual(reply.type, errUnsup)
        XCTAssertFalse(reply.text.isEmpty, "errors carry a message")
        XCTAssertEqual(try raw.list(), [TestFixture.faultyGUID.description, mainName].sorted())
        let (size, flags) = try raw.exportName(mainName)
        XCTAssertEqual(size, 64 << 20)
        XCTAssertEqual(flags & 0b11, 0b11, "HAS_FLAGS and READ_ONLY")
        XCTAssertEqual(flags & (1 << 7), 0, "no SEND_DF without structured replies")
    }

    func testStartTLSIsRefusedWithAClearMessage() throws {
        let raw = try client()
        try raw.handshake()
        try raw.sendOption(5)
        let reply = try raw.readOptionReply()
        XCTAssertEqual(reply.type, errPolicy)
        XCTAssertEqual(reply.text, "TLS is not configured on this server")
        XCTAssertEqual(try raw.list().count, 2)
    }

    func testUnknownExportMessageSaysHowToList() throws {
        let raw = try client()
        try raw.handshake()
        let name = "11111111-2222-3333-4444-555555555555"
        try raw.sendOption(7, data: RawNBDClient.be32(UInt32(name.utf8.count)) + Array(name.utf8) + RawNBDClient.be16(0))
        let reply = try raw.readOptionReply()
        XCTAssertEqual(reply.type, errUnknown)
        XCTAssertEqual(reply.text, "no export named \"\(name)\"; list exports with: nbdinfo --list nbd://127.0.0.1:\(fixture.port)")
        XCTAssertEqual(try raw.list().count, 2)
    }

    func testExportNameUnknownCloses() throws {
        let raw = try client()
        try raw.handshake()
        try raw.sendOption(1, data: Array("nope".utf8))
        XCTAssertTrue(raw.closedByServer(), "NBD_OPT_EXPORT_NAME cannot fail: the server must hang up")
    }

    func testExportNameWithAndWithoutZeroes() throws {
        for noZeroes in [true, false] {
            let raw = try client()
            try raw.handshake(clientFlags: noZeroes ? 3 : 1)
            let (size, _) = try raw.exportName(mainName.uppercased(), noZeroes: noZeroes)
            XCTAssertEqual(size, 64 << 20)
            try raw.sendRequest(type: 0, handle: 7, offset: 0, length: 512)
            let reply = try raw.readSimpleReply()
            XCTAssertEqual(reply.error, 0)
            XCTAssertEqual(reply.handle, 7)
            XCTAssertEqual(try raw.receive(512), try fixture.mainVolume.read(offset: 0, length: 512))
        }
    }

    func testEmptyNameIsDefaultExportOnlyWhenUnique() throws {
        let raw = try client()
        try raw.handshake()
        try raw.sendOption(6, data: RawNBDClient.be32(0) + RawNBDClient.be16(0))
        XCTAssertEqual(try raw.readOptionReply().type, errUnknown, "two exports: no default")
        try fixture.registry.remove(guid: TestFixture.faultyGUID, force: false)
        try raw.sendOption(6, data: RawNBDClient.be32(0) + RawNBDClient.be16(0))
        let info = try raw.readOptionReply()
        XCTAssertEqual(info.type, repInfo)
        XCTAssertEqual(RawNBDClient.readBE64(info.data, 2), 64 << 20)
    }

    func testMalformedOptionsAreInvalid() throws {
        let raw = try client()
        try raw.handshake()
        // INFO whose name length runs past the option.
        try raw.sendOption(6, data: RawNBDClient.be32(1000) + Array("x".utf8) + RawNBDClient.be16(0))
        XCTAssertEqual(try raw.readOptionReply().type, errInvalid)
        // LIST with data.
        try raw.sendOption(3, data: [1, 2, 3])
        XCTAssertEqual(try raw.readOptionReply().type, errInvalid)
        // SET_META_CONTEXT before structured replies.
        let meta = RawNBDClient.be32(UInt32(mainName.utf8.count)) + Array(mainName.utf8) + RawNBDClient.be32(1)
            + RawNBDClient.be32(15) + Array("base:allocation".utf8)
        try raw.sendOption(10, data: meta)
        XCTAssertEqual(try raw.readOptionReply().type, errInvalid)
        // After structured replies it works, and selects context id != 0.
        try raw.sendOption(8)
        XCTAssertEqual(try raw.readOptionReply().type, repAck)
        try raw.sendOption(10, data: meta)
        let selected = try raw.readOptionReply()
        XCTAssertEqual(selected.type, repMetaContext)
        XCTAssertNotEqual(RawNBDClient.readBE32(selected.data, 0), 0)
        XCTAssertEqual(String(decoding: selected.data[4...], as: UTF8.self), "base:allocation")
        XCTAssertEqual(try raw.readOptionReply().type, repAck)
        // Truncated query list.
        try raw.sendOption(10, data: Array(meta.dropLast(3)))
        XCTAssertEqual(try raw.readOptionReply().type, errInvalid)
        XCTAssertEqual(try raw.list().count, 2)
    }

    func testLongOptionIsSkippedAndAbsurdOptionCloses() throws {
        let raw = try client()
        try raw.handshake()
        try raw.sendOption(3, data: [UInt8](repeating: 7, count: 100 << 10))
        let reply = try raw.readOptionReply()
        XCTAssertEqual(reply.type, errTooBig)
        XCTAssertEqual(try raw.list().count, 2, "the skipped option's bytes were consumed")

        let absurd = try client()
        try absurd.handshake()
        try absurd.sendOption(6, declaredLength: 0xFFFF_FFFF)
        XCTAssertEqual(try absurd.readOptionReply().type, errTooBig)
        XCTAssertTrue(absurd.closedByServer())
    }

    func testBadOptionMagicCloses() throws {
        let raw = try client()
        try raw.handshake()
        try raw.send(Array("IHAVEOPX".utf8) + RawNBDClient.be32(3) + RawNBDClient.be32(0))
        XCTAssertTrue(raw.closedByServer())
    }

    // MARK: Transmission

    func testBadRequestMagicCloses() throws {
        let raw = try client()
        try raw.handshake()
        _ = try raw.exportName(mainName)
        try raw.sendRequest(type: 0, handle: 1, offset: 0, length: 512)
        XCTAssertEqual(try raw.readSimpleReply().error, 0)
        _ = try raw.receive(512)
        try raw.sendRequest(type: 0, handle: 2, offset: 0, length: 512, magic: 0xdead_beef)
        XCTAssertTrue(raw.closedByServer())
    }

    func testUnknownCommandAndWritePayloadKeepStreamInSync() throws {
        let raw = try client()
        try raw.handshake()
        _ = try raw.exportName(mainName)
        try raw.sendRequest(type: 42, handle: 1, offset: 0, length: 0)
        XCTAssertEqual(try raw.readSimpleReply().error, 22, "unknown command: EINVAL")
        // A WRITE whose payload looks like request headers must still be skipped whole.
        var payload: [UInt8] = []
        while payload.count < 300_000 {
            payload += RawNBDClient.be32(0x2560_9513) + RawNBDClient.be16(0) + RawNBDClient.be16(2) + [UInt8](repeating: 0, count: 20)
        }
        try raw.sendRequest(type: 1, handle: 2, offset: 0, length: UInt32(payload.count))
        try raw.send(payload)
        let write = try raw.readSimpleReply()
        XCTAssertEqual(write.handle, 2)
        XCTAssertEqual(write.error, 1, "EPERM")
        try raw.sendRequest(type: 0, handle: 3, offset: 4096, length: 4096)
        let read = try raw.readSimpleReply()
        XCTAssertEqual(read.handle, 3)
        XCTAssertEqual(read.error, 0)
        XCTAssertEqual(try raw.receive(4096), try fixture.mainVolume.read(offset: 4096, length: 4096))
        // DF is invalid without structured replies; a READ error has no payload.
        try raw.sendRequest(type: 0, flags: 1 << 2, handle: 4, offset: 0, length: 512)
        XCTAssertEqual(try raw.readSimpleReply().error, 22)
        try raw.sendRequest(type: 0, handle: 5, offset: 0, length: 16)
        XCTAssertEqual(try raw.readSimpleReply().error, 0)
        XCTAssertEqual(try raw.receive(16), try fixture.mainVolume.read(offset: 0, length: 16))
    }

    /// Many pipelined reads without reading replies: the server caps work in
    /// flight, stops reading, and still answers every request exactly once.
    func testPipelinedRequestsAreAllAnsweredThenDisconnect() throws {
        let raw = try client()
        try raw.handshake()
        _ = try raw.exportName(mainName)
        let count = 64, length = 256 << 10
        for index in 0..<count {
            try raw.sendRequest(type: 0, handle: UInt64(1000 + index), offset: UInt64(index * length), length: UInt32(length))
        }
        try raw.sendRequest(type: 2, handle: 0, offset: 0, length: 0)  // DISC after in-flight requests
        var seen = Set<UInt64>()
        for _ in 0..<count {
            let reply = try raw.readSimpleReply()
            XCTAssertEqual(reply.error, 0)
            let index = Int(reply.handle) - 1000
            XCTAssertTrue((0..<count).contains(index))
            XCTAssertTrue(seen.insert(reply.handle).inserted)
            let data = try raw.receive(length)
            XCTAssertEqual(data, try fixture.mainVolume.read(offset: UInt64(index * length), length: length), "handle \(reply.handle)")
        }
        XCTAssertEqual(seen.count, count)
        XCTAssertTrue(raw.closedByServer(), "NBD_CMD_DISC closes after outstanding replies")
    }

    func testClosesAfterAbort() throws {
        let raw = try client()
        try raw.handshake()
        try raw.sendOption(2)
        XCTAssertEqual(try raw.readOptionReply().type, repAck)
        XCTAssertTrue(raw.closedByServer())
    }
}
