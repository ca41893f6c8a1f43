import CLibNBD
import Foundation
import NBDServer
import VolumeSynth
import XCTest

/// The server driven by libnbd, a real client, through its C API.
final class LibNBDTests: XCTestCase {
    var fixture: TestFixture!

    override func setUp() async throws {
        fixture = try TestFixture()
        try await fixture.start()
    }

    override func tearDown() async throws {
        try await fixture?.stop()
        fixture = nil
    }

    private func connect(structured: Bool = true, metaContext: Bool = true, name: String = TestFixture.mainGUID.description,
                         strict: Bool = true) throws -> LibNBDClient {
        let client = try LibNBDClient()
        try client.setStructuredReplies(structured)
        if metaContext { try client.addMetaContext(LIBNBD_CONTEXT_BASE_ALLOCATION) }
        if strict { try client.allowUnalignedRequests() } else { try client.setStrictMode(0) }
        try client.setExportName(name)
        try client.connectTCP(port: fixture.port)
        return client
    }

    private func expected(_ offset: UInt64, _ count: Int) throws -> [UInt8] {
        try fixture.mainVolume.read(offset: offset, length: count)
    }

    // MARK: Handshake

    func testListExportsWithDescriptions() throws {
        let client = try LibNBDClient()
        try client.setOptMode(true)
        try client.connectTCP(port: fixture.port)
        XCTAssertTrue(client.isNegotiating)
        let exports = try client.optList()
        XCTAssertEqual(exports.map(\.name), [TestFixture.mainGUID.description, TestFixture.faultyGUID.description].sorted())
        XCTAssertEqual(exports.first { $0.name == TestFixture.mainGUID.description }?.description, TestFixture.mainDescription)
        XCTAssertTrue(exports.allSatisfy { !$0.description.isEmpty })
        try client.optAbort()
        XCTAssertTrue(client.isClosed)
    }

    func testInfoThenGoWithUppercaseBracedName() throws {
        let client = try LibNBDClient()
        try client.setOptMode(true)
        try client.setFullInfo(true)
        try client.setExportName("{" + TestFixture.mainGUID.description.uppercased() + "}")
        try client.connectTCP(port: fixture.port)
        try client.optInfo()
        XCTAssertEqual(try client.size(), 64 << 20)
        XCTAssertEqual(try client.canonicalExportName(), TestFixture.mainGUID.description)
        XCTAssertEqual(try client.exportDescription(), TestFixture.mainDescription)
        XCTAssertEqual(try client.blockSize(LIBNBD_SIZE_MINIMUM), 512, "hole and extent boundaries are 512-aligned")
        XCTAssertEqual(try client.blockSize(LIBNBD_SIZE_PREFERRED), 4096)
        XCTAssertEqual(try client.blockSize(LIBNBD_SIZE_MAXIMUM), 32 << 20)
        XCTAssertTrue(client.isNegotiating, "NBD_OPT_INFO must leave the client negotiating")
        try client.optGo()
        XCTAssertTrue(client.isReady)
        XCTAssertTrue(try client.isReadOnly())
        XCTAssertTrue(try client.canFlush())
        XCTAssertTrue(try client.canCache())
        XCTAssertTrue(try client.canMultiConn())
        XCTAssertTrue(try client.canDF())
        XCTAssertFalse(try client.canTrim())
        XCTAssertTrue(try client.structuredRepliesNegotiated())
        XCTAssertEqual(try client.pread(count: 4096, offset: 0), try expected(0, 4096))
    }

    func testUnknownExportIsReportedAndConnectionStaysUsable() throws {
        let client = try LibNBDClient()
        try client.setOptMode(true)
        try client.setExportName("00000000-0000-0000-0000-000000000000")
        try client.connectTCP(port: fixture.port)
        XCTAssertThrowsError(try client.optGo()) { error in
            // libnbd maps NBD_REP_ERR_UNKNOWN to ENOENT; the message text is
            // checked by the raw-socket tests.
            XCTAssertEqual((error as? LibNBDError)?.errno, ENOENT, "\(error)")
        }
        XCTAssertTrue(client.isNegotiating, "an NBD_OPT_GO error must not end negotiation")
        XCTAssertEqual(try client.optList().count, 2)
        try client.setExportName(TestFixture.mainGUID.description)
        try client.optGo()
        XCTAssertEqual(try client.pread(count: 512, offset: 0), try expected(0, 512))
    }

    func testGarbageNameIsUnknown() throws {
        XCTAssertThrowsError(try connect(name: "not-a-guid"))
        XCTAssertThrowsError(try connect(name: "{\(TestFixture.mainGUID)"))
    }

    func testListMetaContexts() throws {
        let client = try LibNBDClient()
        try client.setOptMode(true)
        try client.setExportName(TestFixture.mainGUID.description)
        try client.addMetaContext(LIBNBD_CONTEXT_BASE_ALLOCATION)
        try client.connectTCP(port: fixture.port)
        XCTAssertEqual(try client.optListMetaContext(), ["base:allocation"])
        try client.optGo()
        XCTAssertTrue(try client.canMetaContext(LIBNBD_CONTEXT_BASE_ALLOCATION))
    }

    func testStartTLSRequiredFailsAndOptionalFallsBack() throws {
        let required = try LibNBDClient()
        guard (try? required.setTLS(LIBNBD_TLS_REQUIRE)) != nil else {
            throw XCTSkip("this libnbd has no TLS support")
        }
        try required.setExportName(TestFixture.mainGUID.description)
        XCTAssertThrowsError(try required.connectTCP(port: fixture.port)) { error in
            XCTAssertTrue("\(error)".contains("TLS"), "\(error)")
        }
        // With TLS merely allowed, the refusal leaves a working plain connection.
        let allowed = try LibNBDClient()
        try allowed.setTLS(LIBNBD_TLS_ALLOW)
        try allowed.setExportName(TestFixture.mainGUID.description)
        try allowed.connectTCP(port: fixture.port)
        XCTAssertEqual(try allowed.pread(count: 4096, offset: 0), try expected(0, 4096))
    }

    func testUnixSocket() throws {
        let client = try LibNBDClient()
        try client.setExportName(TestFixture.mainGUID.description)
        try client.connectUnix(fixture.unixSocketPath)
        XCTAssertEqual(try client.size(), 64 << 20)
        XCTAssertEqual(try client.pread(count: 1 << 20, offset: 4096), try expected(4096, 1 << 20))
    }

    // MARK: READ

    /// Ranges that cross every kind of piece boundary of the main volume.
    private var readRanges: [(UInt64, Int)] {
        [(0, 512), (0, 4096), (100, 5000), (4096, 1 << 20), (4000, 3 << 20), ((1 << 20) + 4096 - 7, 70_000),
         (2 << 20, 4 << 20), (1_000_000, 32 << 20), ((64 << 20) - 4096, 4096), ((64 << 20) - 1, 1)]
    }

    func testReadSimpleReplies() throws {
        let client = try connect(structured: false, metaContext: false)
        XCTAssertFalse(try client.structuredRepliesNegotiated())
        XCTAssertFalse(try client.canDF(), "SEND_DF must be clear without structured replies")
        for (offset, count) in readRanges {
            XCTAssertEqual(try client.pread(count: count, offset: offset), try expected(offset, count), "read \(count) at \(offset)")
        }
    }

    func testReadStructuredRepliesUseHoles() throws {
        let client = try connect()
        for (offset, count) in readRanges {
            let (bytes, chunks) = try client.preadStructured(count: count, offset: offset)
            XCTAssertEqual(bytes, try expected(offset, count), "read \(count) at \(offset)")
            // Chunks tile the request exactly, in any order.
            let sorted = chunks.sorted { $0.offset < $1.offset }
            var cursor = offset
            for chunk in sorted {
                XCTAssertEqual(chunk.offset, cursor)
                cursor += UInt64(chunk.count)
            }
            XCTAssertEqual(cursor, offset + UInt64(count))
        }
        // The 1 MiB zero run at 1 MiB + 4096 comes back as a hole chunk.
        let (_, chunks) = try client.preadStructured(count: 3 << 20, offset: 0)
        XCTAssertTrue(chunks.contains { $0.status == UInt32(LIBNBD_READ_HOLE) && $0.offset == (1 << 20) + 4096 && $0.count == 1 << 20 }, "\(chunks)")
        XCTAssertTrue(chunks.contains { $0.status == UInt32(LIBNBD_READ_DATA) })
    }

    func testReadDontFragmentSendsOneDataChunk() throws {
        let client = try connect()
        let offset: UInt64 = 0, count = 3 << 20
        let (bytes, chunks) = try client.preadStructured(count: count, offset: offset, flags: LIBNBD_CMD_FLAG_DF)
        XCTAssertEqual(bytes, try expected(offset, count))
        XCTAssertEqual(chunks, [LibNBDClient.Chunk(offset: 0, count: count, status: UInt32(LIBNBD_READ_DATA))])
    }

    // MARK: Other commands

    func testFlushAndCache() throws {
        let client = try connect()
        try client.flush()
        try client.cache(count: 8 << 20, offset: 0)
        try client.cache(count: 64 << 20, offset: 0)
        XCTAssertEqual(try client.pread(count: 4096, offset: 4096), try expected(4096, 4096))
    }

    func testBlockStatusMatchesVolumeLayout() throws {
        let client = try connect()
        XCTAssertTrue(try client.canMetaContext(LIBNBD_CONTEXT_BASE_ALLOCATION))
        let size: UInt64 = 64 << 20
        var collected: [(UInt64, UInt64, Bool)] = []  // offset, length, isZero
        var offset: UInt64 = 0
        while offset < size {
            let results = try client.blockStatus(count: size - offset, offset: offset)
            XCTAssertEqual(results.count, 1)
            XCTAssertEqual(results.first?.context, "base:allocation")
            guard let entries = results.first?.entries, !entries.isEmpty else { return XCTFail("no extents") }
            for (length, flags) in entries {
                let isZero = flags == UInt32(LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO)
                XCTAssertTrue(flags == 0 || isZero, "flags \(flags)")
                collected.append((offset, UInt64(length), isZero))
                offset += UInt64(length)
            }
        }
        // The volume's layout, seen through the advertised 512-byte minimum
        // block size: the layout's zero runs are block-aligned except the
        // 100-byte one inside data, which is reported as data.
        var expectedExtents: [VolumeExtent] = []
        var position: UInt64 = 0
        for extent in try fixture.mainVolume.blockStatus(offset: 0, length: size) {
            let aligned = position % 512 == 0 && extent.length % 512 == 0
            let isZero = extent.isZero && aligned
            if let last = expectedExtents.last, last.isZero == isZero {
                expectedExtents[expectedExtents.count - 1].length += extent.length
            } else {
                expectedExtents.append(VolumeExtent(length: extent.length, isZero: isZero))
            }
            position += extent.length
        }
        XCTAssertTrue(fixture.mainZeroRuns.contains { $0.1 == 100 }, "the layout has an unaligned zero run")
        XCTAssertEqual(collected.count, expectedExtents.count)
        var cursor: UInt64 = 0
        for (got, want) in zip(collected, expectedExtents) {
            XCTAssertEqual(got.0, cursor)
            XCTAssertEqual(got.1, want.length)
            XCTAssertEqual(got.2, want.isZero)
            cursor += want.length
        }
        // Every zero run of the layout is reported as hole+zero.
        for (start, length) in fixture.mainZeroRuns where length >= 4096 {
            XCTAssertTrue(collected.contains { $0.2 && $0.0 <= start && $0.0 + $0.1 >= start + length }, "zero run at \(start)")
        }
    }

    func testBlockStatusReqOne() throws {
        let client = try connect()
        let results = try client.blockStatus(count: 8 << 20, offset: 0, flags: LIBNBD_CMD_FLAG_REQ_ONE)
        XCTAssertEqual(results.first?.entries.count, 1)
        XCTAssertEqual(results.first?.entries.first?.0, 4096 + (1 << 20))
        XCTAssertEqual(results.first?.entries.first?.1, 0)
        let hole = try client.blockStatus(count: 4096, offset: (1 << 20) + 8192, flags: LIBNBD_CMD_FLAG_REQ_ONE)
        XCTAssertEqual(hole.first?.entries.first?.0, 4096)
        XCTAssertEqual(hole.first?.entries.first?.1, UInt32(LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO))
    }

    func testBlockStatusWithoutMetaContextIsRefused() throws {
        let client = try connect(metaContext: false, strict: false)
        XCTAssertThrowsError(try client.blockStatus(count: 4096, offset: 0)) { error in
            XCTAssertEqual((error as? LibNBDError)?.errno, EINVAL, "\(error)")
        }
        XCTAssertEqual(try client.pread(count: 512, offset: 0), try expected(0, 512))
    }

    func testWritesAreRejectedWithEPERM() throws {
        for structured in [false, true] {
            let client = try connect(structured: structured, strict: false)
            let payload = [UInt8](repeating: 0x5a, count: 256 << 10)
            XCTAssertThrowsError(try client.pwrite(payload, offset: 4096)) { error in
                XCTAssertEqual((error as? LibNBDError)?.errno, EPERM, "\(error)")
            }
            XCTAssertThrowsError(try client.trim(count: 4096, offset: 0)) { error in
                XCTAssertEqual((error as? LibNBDError)?.errno, EPERM, "\(error)")
            }
            XCTAssertThrowsError(try client.zero(count: 4096, offset: 0)) { error in
                XCTAssertEqual((error as? LibNBDError)?.errno, EPERM, "\(error)")
            }
            // The write payload was consumed: the stream is still in sync.
            XCTAssertEqual(try client.pread(count: 8192, offset: 4096), try expected(4096, 8192))
            XCTAssertEqual(try client.pread(count: 4096, offset: 4096), try expected(4096, 4096), "data unchanged")
        }
    }

    func testInvalidRequestsGetErrorsAndConnectionSurvives() throws {
        for structured in [false, true] {
            let client = try connect(structured: structured, strict: false)
            let size: UInt64 = 64 << 20
            let cases: [(String, Int, UInt64, Int32)] = [
                ("past the end", 8192, size - 4096, EINVAL),
                ("starting past the end", 512, size + 4096, EINVAL),
                ("offset overflow", 4096, UInt64.max - 100, EINVAL),
                ("zero length", 0, 0, EINVAL),
                ("oversized", (32 << 20) + 4096, 0, EINVAL),
            ]
            for (what, count, offset, errno) in cases {
                XCTAssertThrowsError(try client.pread(count: count, offset: offset), what) { error in
                    XCTAssertEqual((error as? LibNBDError)?.errno, errno, "\(what), structured \(structured): \(error)")
                }
                XCTAssertEqual(try client.pread(count: 4096, offset: 0), try expected(0, 4096), "after \(what)")
            }
            XCTAssertThrowsError(try client.cache(count: 8192, offset: size - 4096)) { error in
                XCTAssertEqual((error as? LibNBDError)?.errno, EINVAL)
            }
            if structured {
                XCTAssertThrowsError(try client.blockStatus(count: 8192, offset: size - 4096)) { error in
                    XCTAssertEqual((error as? LibNBDError)?.errno, EINVAL)
                }
            }
            XCTAssertEqual(try client.pread(count: 4096, offset: size - 4096), try expected(size - 4096, 4096))
        }
    }

    func testBackingIOErrorsGiveEIOAndConnectionSurvives() throws {
        for structured in [false, true] {
            let client = try connect(structured: structured, name: "{\(TestFixture.faultyGUID.description.uppercased())}")
            let failing = fixture.faultyFailingOffset, truncated = fixture.faultyTruncatedOffset
            for (what, offset, count) in [("failing metadata", failing, 4096), ("truncated file via sendfile path", truncated, 64 << 10),
                                          ("truncated file via copy path", truncated, 512)] {
                XCTAssertThrowsError(try client.pread(count: count, offset: offset), what) { error in
                    XCTAssertEqual((error as? LibNBDError)?.errno, EIO, "\(what): \(error)")
                }
                XCTAssertEqual(try client.pread(count: 4096, offset: 0), try fixture.faultyVolume.read(offset: 0, length: 4096))
            }
        }
    }

    // MARK: Concurrency and the registry

    func testManyConcurrentConnections() throws {
        let clients = try (0..<8).map { index in try connect(structured: index % 2 == 0) }
        XCTAssertEqual(fixture.registry.clientCount(guid: TestFixture.mainGUID), 8)
        let volume = fixture.mainVolume
        let failures = NSLock()
        nonisolated(unsafe) var mismatches: [String] = []
        nonisolated(unsafe) let shared = clients
        DispatchQueue.concurrentPerform(iterations: shared.count) { index in
            let client = shared[index]
            for round in 0..<6 {
                let offset = UInt64((index * 977 + round * 5003) % 60) << 20 + UInt64(index * 511)
                let count = (1 << 20) + round * 4099
                do {
                    let got = try client.pread(count: count, offset: offset)
                    if got != (try volume.read(offset: offset, length: count)) {
                        failures.withLock { mismatches.append("client \(index) round \(round)") }
                    }
                } catch {
                    failures.withLock { mismatches.append("client \(index) round \(round): \(error)") }
                }
            }
        }
        XCTAssertEqual(mismatches, [])
        for client in clients { try client.shutdown() }
    }

    func testRemoveExportWithClients() async throws {
        let client = try connect()
        XCTAssertEqual(fixture.registry.clientCount(guid: TestFixture.mainGUID), 1)
        XCTAssertThrowsError(try fixture.registry.remove(guid: TestFixture.mainGUID, force: false)) { error in
            XCTAssertEqual(error as? ExportRegistryError, .busy(TestFixture.mainGUID, clients: 1))
        }
        XCTAssertEqual(try client.pread(count: 512, offset: 0), try expected(0, 512), "a refused removal changes nothing")
        XCTAssertEqual(try fixture.registry.remove(guid: TestFixture.mainGUID, force: true), 1)
        XCTAssertEqual(fixture.registry.clientCount(guid: TestFixture.mainGUID), 0)
        // The stop is graceful: a request the server read before it would still
        // be answered, so wait until the idle connection is closed.
        for _ in 0..<200 where fixture.server.connectionCount > 0 {
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        XCTAssertEqual(fixture.server.connectionCount, 0, "an idle client is disconnected at once")
        XCTAssertThrowsError(try client.pread(count: 512, offset: 0), "a forcibly disconnected client cannot read")
        XCTAssertThrowsError(try connect(), "a removed export cannot be opened")
        // Removing an export without clients needs no force.
        XCTAssertEqual(try fixture.registry.remove(guid: TestFixture.faultyGUID, force: false), 0)
        XCTAssertEqual(fixture.registry.exports.count, 0)
    }

    func testDisconnectClientsKeepsTheExport() throws {
        let first = try connect(), second = try connect(structured: false)
        XCTAssertEqual(fixture.registry.clientCount(guid: TestFixture.mainGUID), 2)
        XCTAssertEqual(fixture.registry.disconnectClients(guid: TestFixture.mainGUID), 2)
        XCTAssertEqual(fixture.registry.clientCount(guid: TestFixture.mainGUID), 0)
        XCTAssertThrowsError(try first.pread(count: 512, offset: 0))
        XCTAssertThrowsError(try second.pread(count: 512, offset: 0))
        let third = try connect()
        XCTAssertEqual(try third.pread(count: 512, offset: 0), try expected(0, 512), "the export is still served")
        XCTAssertEqual(fixture.registry.clientCount(guid: TestFixture.mainGUID), 1)
    }

    func testClientCountDropsOnDisconnect() async throws {
        let client = try connect()
        XCTAssertEqual(fixture.registry.clientCount(guid: TestFixture.mainGUID), 1)
        try client.shutdown()
        for _ in 0..<100 where fixture.registry.clientCount(guid: TestFixture.mainGUID) != 0 {
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        XCTAssertEqual(fixture.registry.clientCount(guid: TestFixture.mainGUID), 0)
    }
}
