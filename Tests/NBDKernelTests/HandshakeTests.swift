import Foundation
import XCTest
@testable import NBDKernel

/// The handshake client against a real nbdkit started by the test.
final class HandshakeTests: XCTestCase {
    private var server: Process?
    private var tempDir = ""

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/nbdkit") || FileManager.default.isExecutableFile(atPath: "/usr/sbin/nbdkit") else {
            throw XCTSkip("nbdkit is not installed (apt-get install nbdkit)")
        }
        tempDir = NSTemporaryDirectory() + "nbdkernel-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: tempDir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if let server, server.isRunning {
            server.terminate()
            server.waitUntilExit()
        }
        server = nil
        try? FileManager.default.removeItem(atPath: tempDir)
    }

    /// Starts nbdkit in the foreground with `args` and waits until `ready()` holds.
    private func startNBDKit(_ args: [String], ready: () -> Bool) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["nbdkit", "-f", "--exit-with-parent"] + args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        server = p
        for _ in 0..<200 {
            if ready() { return }
            XCTAssertTrue(p.isRunning, "nbdkit exited early: \(args)")
            usleep(25_000)
        }
        XCTFail("nbdkit did not become ready: \(args)")
    }

    /// A TCP port that was free a moment ago.
    private func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { ptr -> Int32 in
                guard bind(fd, ptr, len) == 0 else { return -1 }
                return getsockname(fd, ptr, &len)
            }
        }
        guard rc == 0 else { throw XCTSkip("cannot bind a test port") }
        return UInt16(bigEndian: addr.sin_port)
    }

    private func tcpListening(_ port: UInt16) -> Bool {
        (try? NBDHandshake.openSocket(NBDServerAddress(endpoint: .tcp(host: "127.0.0.1", port: port)), timeout: 1)).map { close($0); return true } ?? false
    }

    func testTCPHandshakeReportsSizeAndFlags() throws {
        let port = try freePort()
        try startNBDKit(["-i", "127.0.0.1", "-p", String(port), "memory", "1M"]) { tcpListening(port) }
        let server = try NBDServerAddress(parsing: "nbd://127.0.0.1:\(port)/anything")
        let conn = try NBDHandshake.connect(to: server, exportName: server.exportName!)
        XCTAssertEqual(conn.info.size, 1_048_576)
        XCTAssertNotEqual(conn.info.transmissionFlags & NBDProtocol.flagHasFlags, 0)
        XCTAssertFalse(conn.info.isReadOnly)
        XCTAssertTrue(conn.info.canMultiConn, "nbdkit's memory plugin allows multi-conn")
        XCTAssertNotEqual(conn.info.transmissionFlags & NBDProtocol.flagSendFlush, 0)
        XCTAssertGreaterThanOrEqual(conn.fd, 0)

        // The socket is in the transmission phase: an NBD_CMD_READ of 512 bytes at 0 works.
        var req = ByteWriter()
        req.u32(0x2560_9513); req.u16(0); req.u16(0); req.u64(0xfeed); req.u64(0); req.u32(512)
        let io = HandshakeIO(fd: conn.fd, server: "test", timeout: 5)
        try io.write(req.bytes)
        var reply = ByteReader(try io.read(16))
        XCTAssertEqual(try reply.u32(), 0x6744_6698)   // simple reply magic
        XCTAssertEqual(try reply.u32(), 0)             // no error
        XCTAssertEqual(try reply.u64(), 0xfeed)        // handle
        XCTAssertEqual(try io.read(512), [UInt8](repeating: 0, count: 512))
    }

    func testUnixSocketReadOnlyExport() throws {
        let sock = tempDir + "/nbd.sock"
        try startNBDKit(["-r", "-U", sock, "memory", "3M"]) { FileManager.default.fileExists(atPath: sock) }
        let server = try NBDServerAddress(parsing: "nbd+unix:///vol?socket=\(sock)")
        let conns = try NBDDeviceManager.handshake(server: server, exportName: "vol", count: 3, timeout: 5)
        XCTAssertEqual(conns.count, 3)
        for c in conns {
            XCTAssertEqual(c.info.size, 3 * 1_048_576)
            XCTAssertTrue(c.info.isReadOnly)
        }
        XCTAssertEqual(Set(conns.map(\.fd)).count, 3)
    }

    func testUnknownExport() throws {
        let port = try freePort()
        try startNBDKit(["-r", "-i", "127.0.0.1", "-p", String(port), "--filter=exportname", "memory", "1M",
                         "exportname=3f2a9c4e-5b1d-4e7a-9c2f-0d8e6b4a1c57", "exportname-strict=true"]) { tcpListening(port) }
        let server = NBDServerAddress(endpoint: .tcp(host: "127.0.0.1", port: port))
        // the right name works …
        XCTAssertEqual(try NBDHandshake.connect(to: server, exportName: "3f2a9c4e-5b1d-4e7a-9c2f-0d8e6b4a1c57").info.size, 1_048_576)
        // … a wrong one is NBD_REP_ERR_UNKNOWN
        XCTAssertThrowsError(try NBDHandshake.connect(to: server, exportName: "00000000-0000-0000-0000-000000000000")) { error in
            guard case NBDKernelError.unknownExport(let name, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(name, "00000000-0000-0000-0000-000000000000")
            XCTAssertTrue("\(error)".contains("has no export named '00000000-0000-0000-0000-000000000000'"), "\(error)")
        }
    }

    func testServerUnreachable() throws {
        let port = try freePort()  // nothing listens there
        XCTAssertThrowsError(try NBDHandshake.connect(to: NBDServerAddress(endpoint: .tcp(host: "127.0.0.1", port: port)), exportName: "x", timeout: 2)) { error in
            guard case NBDKernelError.serverUnreachable(_, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("ECONNREFUSED"), reason)
        }
        XCTAssertThrowsError(try NBDHandshake.connect(to: NBDServerAddress(endpoint: .unix(path: tempDir + "/none.sock")), exportName: "x")) { error in
            guard case NBDKernelError.serverUnreachable = error else { return XCTFail("\(error)") }
        }
    }

    func testNotAnNBDServer() throws {
        // A listener that answers like a web server: the handshake must fail with a protocol
        // error, not hang.
        let path = tempDir + "/junk.sock"
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(listener, 0)
        defer { close(listener) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in
            for (i, b) in path.utf8.enumerated() { buf[i] = b }
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        XCTAssertEqual(listen(listener, 1), 0)
        let thread = Thread {
            let c = accept(listener, nil, nil)
            guard c >= 0 else { return }
            let junk = Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8)
            _ = junk.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var buf = [UInt8](repeating: 0, count: 16)
            _ = recv(c, &buf, buf.count, 0)
            close(c)
        }
        thread.start()
        XCTAssertThrowsError(try NBDHandshake.connect(to: NBDServerAddress(endpoint: .unix(path: path)), exportName: "x", timeout: 5)) { error in
            guard case NBDKernelError.handshake(_, let detail) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(detail.contains("not an NBD server"), detail)
        }
    }
}
