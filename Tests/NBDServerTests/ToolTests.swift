import Foundation
import NBDServer
import XCTest

/// The server against real tools: nbdinfo, nbdcopy, qemu-img, qemu-io.
final class ToolTests: XCTestCase {
    var fixture: TestFixture!

    override func setUp() async throws {
        fixture = try TestFixture()
        try await fixture.start()
    }

    override func tearDown() async throws {
        try await fixture?.stop()
        fixture = nil
    }

    private func run(_ tool: String, _ arguments: [String], timeout: TimeInterval = 120) throws -> ExternalTool.Result {
        try ExternalTool.run(tool, arguments, in: fixture.directory, timeout: timeout)
    }

    func testNbdinfoList() throws {
        let result = try run("nbdinfo", ["--list", "nbd://127.0.0.1:\(fixture.port)"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("export=\"\(TestFixture.mainGUID)\""), result.stdout)
        XCTAssertTrue(result.stdout.contains("export=\"\(TestFixture.faultyGUID)\""), result.stdout)
        XCTAssertTrue(result.stdout.contains("description: \(TestFixture.mainDescription)"), result.stdout)
        XCTAssertTrue(result.stdout.contains("export-size: \(64 << 20)"), result.stdout)
        XCTAssertTrue(result.stdout.contains("is_read_only: true"), result.stdout)
        XCTAssertTrue(result.stdout.contains("can_multi_conn: true"), result.stdout)
        XCTAssertTrue(result.stdout.contains("block_size_maximum: \(32 << 20)"), result.stdout)
    }

    func testNbdinfoUnknownExport() throws {
        let result = try run("nbdinfo", ["nbd://127.0.0.1:\(fixture.port)/00000000-0000-0000-0000-000000000000"])
        XCTAssertNotEqual(result.status, 0)
        // libnbd 1.14 shows NBD_REP_ERR_UNKNOWN as ENOENT (the server's own
        // message, with the --list hint, is checked by RawProtocolTests).
        XCTAssertTrue(result.stderr.contains("No such file or directory for export: 00000000-0000-0000-0000-000000000000"), result.stderr)
    }

    func testNbdinfoMapShowsHolesAndData() throws {
        let result = try run("nbdinfo", ["--map", fixture.mainURI])
        XCTAssertEqual(result.status, 0, result.stderr)
        // Lines: offset length type description, e.g. "0  1052672  0  data".
        var map: [(UInt64, UInt64, Int)] = []
        for line in result.stdout.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 3, let offset = UInt64(fields[0]), let length = UInt64(fields[1]), let type = Int(fields[2]) else {
                return XCTFail("unexpected line: \(line)")
            }
            map.append((offset, length, type))
        }
        let expected = try fixture.mainVolume.blockStatus(offset: 0, length: fixture.mainVolume.size)
        XCTAssertEqual(map.count, expected.count, result.stdout)
        var cursor: UInt64 = 0
        for (got, want) in zip(map, expected) {
            XCTAssertEqual(got.0, cursor)
            XCTAssertEqual(got.1, want.length)
            XCTAssertEqual(got.2, want.isZero ? 3 : 0, "type at \(cursor)")
            cursor += want.length
        }
        XCTAssertEqual(cursor, 64 << 20)
    }

    func testNbdcopyProducesIdenticalImage() throws {
        let reference = try fixture.writeMainReference()
        for (label, source) in [("tcp", fixture.mainURI),
                                ("unix", "nbd+unix:///\(TestFixture.mainGUID)?socket=\(fixture.unixSocketPath)")] {
            let out = fixture.directory.appendingPathComponent("copy-\(label).img")
            let result = try run("nbdcopy", [source, out.path])
            XCTAssertEqual(result.status, 0, result.stderr)
            let copied = try Data(contentsOf: out)
            let wanted = try Data(contentsOf: reference)
            XCTAssertEqual(copied.count, wanted.count, label)
            XCTAssertTrue(copied == wanted, "\(label): nbdcopy output differs from the volume")
        }
    }

    func testQemuImgInfoAndCompare() throws {
        let info = try run("qemu-img", ["info", "--output=json", fixture.mainURI])
        XCTAssertEqual(info.status, 0, info.stderr)
        XCTAssertTrue(info.stdout.contains("\"virtual-size\": \(64 << 20)"), info.stdout)
        let reference = try fixture.writeMainReference()
        let compare = try run("qemu-img", ["compare", "-f", "raw", "-F", "raw", reference.path, fixture.mainURI])
        XCTAssertEqual(compare.status, 0, compare.stdout + compare.stderr)
        XCTAssertTrue(compare.stdout.contains("Images are identical"), compare.stdout)
        // And a differing image is noticed (the comparison is real).
        var altered = try Data(contentsOf: reference)
        altered[5000] ^= 0xff
        try altered.write(to: reference)
        let differ = try run("qemu-img", ["compare", "-f", "raw", "-F", "raw", reference.path, fixture.mainURI])
        XCTAssertEqual(differ.status, 1, differ.stdout + differ.stderr)
    }

    func testQemuIoReadDump() throws {
        let offset: UInt64 = 4096
        let result = try run("qemu-io", ["-r", "-f", "raw", "-c", "read -v \(offset) 512", fixture.mainURI])
        XCTAssertEqual(result.status, 0, result.stderr)
        // Dump lines: "00001000:  6b 4a ...  ascii"; collect the hex bytes.
        var bytes: [UInt8] = []
        for line in result.stdout.split(separator: "\n") where line.first?.isHexDigit == true && line.contains(":  ") {
            let hexPart = line.split(separator: ":", maxSplits: 1)[1].prefix(50)
            for token in hexPart.split(separator: " ") {
                if token.count == 2, let value = UInt8(token, radix: 16) { bytes.append(value) }
            }
        }
        XCTAssertEqual(bytes, try fixture.mainVolume.read(offset: offset, length: 512), result.stdout)
        XCTAssertTrue(result.stdout.contains("read 512/512 bytes at offset 4096"), result.stdout)
    }
}
