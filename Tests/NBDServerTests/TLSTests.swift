import Foundation
import NBDKernel
import NBDServer
import XCTest

/// `--tls off|on|require` with certificates and pre-shared keys, against real
/// GnuTLS clients (nbdinfo, nbdcopy, qemu-img) and byte-level checks.
///
/// The servers here send every file-backed byte with sendfile when TLS is not
/// in the way (`sendfileMinimumLength: 1`): a READ through TLS can only
/// succeed if the server copies instead.
final class TLSTests: XCTestCase {
    private var fixture: TestFixture?

    // Values from proto.md.
    let repAck: UInt32 = 1, errInvalid: UInt32 = 0x8000_0003, errTLSReqd: UInt32 = 0x8000_0005

    private var guid: String { TestFixture.mainGUID.description }

    override class func tearDown() {
        TestPKI.releaseShared()
        super.tearDown()
    }

    override func tearDown() async throws {
        try await fixture?.stop()
        fixture = nil
    }

    private func pki() throws -> TestPKI { try TestPKI.shared() }

    /// A server with the test exports, TLS as given, on 127.0.0.1:0 and a Unix socket.
    @discardableResult
    private func startServer(_ mode: NBDTLSMode, _ credentials: NBDServerTLS.Credentials?) async throws -> TestFixture {
        let tls = try NBDServerTLS(mode: mode, credentials: credentials)
        let fixture = try TestFixture(configuration: NBDServerConfiguration(
            eventLoopThreads: 2, blockingIOThreads: 4, sendfile: .always, sendfileMinimumLength: 1,
            handshakeTimeoutSeconds: 10, tls: tls))
        try await fixture.start()
        self.fixture = fixture
        return fixture
    }

    private func run(_ tool: String, _ arguments: [String]) throws -> ExternalTool.Result {
        try ExternalTool.run(tool, arguments, in: fixture?.directory ?? FileManager.default.temporaryDirectory, timeout: 60)
    }

    private func certificateURI(_ fixture: TestFixture, _ directory: URL, export: String? = nil) -> String {
        "nbds://localhost:\(fixture.port)/\(export ?? guid)?tls-certificates=\(directory.path)"
    }

    private func pskURI(_ fixture: TestFixture, user: String = "alice", _ file: URL) -> String {
        "nbds://\(user)@localhost:\(fixture.port)/\(guid)?tls-psk-file=\(file.path)"
    }

    /// nbdcopy of the whole main export through `uri` equals the volume's bytes.
    private func assertCopyEqualsExport(_ fixture: TestFixture, uri: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let copy = fixture.directory.appendingPathComponent("copy-\(UUID().uuidString).img")
        let result = try run("nbdcopy", [uri, copy.path])
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        let reference = try Data(contentsOf: try fixture.writeMainReference())
        XCTAssertEqual(try Data(contentsOf: copy), reference, "nbdcopy through TLS differs from the export", file: file, line: line)
    }

    // MARK: X.509 certificates

    func testCertificatesListCopyAndQemu() async throws {
        let pki = try pki()
        let fixture = try await startServer(.require, .certificates(directory: pki.serverDirectory.path, verifyPeer: false))

        let list = try run("nbdinfo", ["--list", "nbds://localhost:\(fixture.port)/?tls-certificates=\(pki.anonymousClientDirectory.path)"])
        XCTAssertEqual(list.status, 0, list.stderr)
        XCTAssertTrue(list.stdout.contains("export=\"\(TestFixture.mainGUID)\""), list.stdout)
        XCTAssertTrue(list.stdout.contains("export=\"\(TestFixture.faultyGUID)\""), list.stdout)

        try assertCopyEqualsExport(fixture, uri: certificateURI(fixture, pki.anonymousClientDirectory))

        // nbd-client's list mode needs no kernel device.
        let ca = pki.anonymousClientDirectory.appendingPathComponent("ca-cert.pem").path
        let nbdClient = try run("nbd-client", ["-l", "localhost", "\(fixture.port)", "-cacertfile", ca])
        XCTAssertEqual(nbdClient.status, 0, nbdClient.stderr)
        XCTAssertTrue(nbdClient.stdout.contains(guid), nbdClient.stdout)
        let plainList = try run("nbd-client", ["-l", "localhost", "\(fixture.port)"])
        XCTAssertNotEqual(plainList.status, 0, "nbd-client without TLS must be refused: \(plainList.stdout)")

        let qemu = try run("qemu-img", [
            "info", "--object", "tls-creds-x509,id=tls0,dir=\(pki.anonymousClientDirectory.path),endpoint=client",
            "--image-opts", "driver=nbd,host=localhost,port=\(fixture.port),export=\(guid),tls-creds=tls0",
        ])
        XCTAssertEqual(qemu.status, 0, qemu.stderr)
        XCTAssertTrue(qemu.stdout.contains("67108864"), qemu.stdout)
    }

    func testUntrustedServerCertificateFailsCleanly() async throws {
        let pki = try pki()
        let fixture = try await startServer(.require, .certificates(directory: pki.serverDirectory.path, verifyPeer: false))
        let refused = try run("nbdinfo", ["--size", certificateURI(fixture, pki.distrustingClientDirectory)])
        XCTAssertNotEqual(refused.status, 0, "a client that does not trust the server's CA must refuse it")
        XCTAssertFalse(refused.stderr.isEmpty)
        // The server is unharmed: the next client is served.
        let next = try run("nbdinfo", ["--size", certificateURI(fixture, pki.anonymousClientDirectory)])
        XCTAssertEqual(next.status, 0, next.stderr)
        XCTAssertEqual(next.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "67108864")
    }

    func testVerifyPeerWantsAClientCertificateTheCASigned() async throws {
        let pki = try pki()
        let fixture = try await startServer(.require, .certificates(directory: pki.serverDirectory.path, verifyPeer: true))
        let signed = try run("nbdinfo", ["--size", certificateURI(fixture, pki.clientDirectory)])
        XCTAssertEqual(signed.status, 0, signed.stderr)
        XCTAssertEqual(signed.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "67108864")

        let anonymous = try run("nbdinfo", ["--size", certificateURI(fixture, pki.anonymousClientDirectory)])
        XCTAssertNotEqual(anonymous.status, 0, "no client certificate must be refused under --tls-verify-peer")
        let rogue = try run("nbdinfo", ["--size", certificateURI(fixture, pki.rogueClientDirectory)])
        XCTAssertNotEqual(rogue.status, 0, "a client certificate from another CA must be refused")

        let client = pki.clientDirectory
        let nbdClient = try run("nbd-client", [
            "-l", "localhost", "\(fixture.port)", "-cacertfile", client.appendingPathComponent("ca-cert.pem").path,
            "-certfile", client.appendingPathComponent("client-cert.pem").path,
            "-keyfile", client.appendingPathComponent("client-key.pem").path,
        ])
        XCTAssertEqual(nbdClient.status, 0, nbdClient.stderr)
        XCTAssertTrue(nbdClient.stdout.contains(guid), nbdClient.stdout)

        try assertCopyEqualsExport(fixture, uri: certificateURI(fixture, pki.clientDirectory))
        let qemu = try run("qemu-img", [
            "info", "--object", "tls-creds-x509,id=tls0,dir=\(pki.clientDirectory.path),endpoint=client",
            "--image-opts", "driver=nbd,host=localhost,port=\(fixture.port),export=\(guid),tls-creds=tls0",
        ])
        XCTAssertEqual(qemu.status, 0, qemu.stderr)
    }

    /// Without --tls-verify-peer a client certificate is neither asked for nor checked.
    func testClientCertificateIsOptionalWithoutVerifyPeer() async throws {
        let pki = try pki()
        let fixture = try await startServer(.require, .certificates(directory: pki.serverDirectory.path, verifyPeer: false))
        let rogue = try run("nbdinfo", ["--size", certificateURI(fixture, pki.rogueClientDirectory)])
        XCTAssertEqual(rogue.status, 0, rogue.stderr)
    }

    // MARK: Pre-shared keys

    func testPreSharedKeys() async throws {
        let pki = try pki()
        let fixture = try await startServer(.require, .preSharedKeys(file: pki.pskFile.path))

        let info = try run("nbdinfo", ["--size", pskURI(fixture, pki.pskFile)])
        XCTAssertEqual(info.status, 0, info.stderr)
        XCTAssertEqual(info.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "67108864")

        let wrongKey = try run("nbdinfo", ["--size", pskURI(fixture, pki.wrongPSKFile)])
        XCTAssertNotEqual(wrongKey.status, 0, "a wrong key must fail the handshake")
        let unknownUser = try run("nbdinfo", ["--size", pskURI(fixture, user: "mallory", pki.unknownUserPSKFile)])
        XCTAssertNotEqual(unknownUser.status, 0, "an unknown username must fail the handshake")

        let list = try run("nbdinfo", ["--list", "nbds://alice@localhost:\(fixture.port)/?tls-psk-file=\(pki.pskFile.path)"])
        XCTAssertEqual(list.status, 0, list.stderr)
        XCTAssertTrue(list.stdout.contains("export=\"\(TestFixture.mainGUID)\""), list.stdout)
        try assertCopyEqualsExport(fixture, uri: pskURI(fixture, pki.pskFile))

        let qemu = try run("qemu-img", [
            "info", "--object", "tls-creds-psk,id=tls0,dir=\(pki.pskDirectory.path),username=alice,endpoint=client",
            "--image-opts", "driver=nbd,host=localhost,port=\(fixture.port),export=\(guid),tls-creds=tls0",
        ])
        XCTAssertEqual(qemu.status, 0, qemu.stderr)
        XCTAssertTrue(qemu.stdout.contains("67108864"), qemu.stdout)
    }

    // MARK: Modes

    func testRequireRefusesPlainTextOnTCP() async throws {
        let pki = try pki()
        let fixture = try await startServer(.require, .preSharedKeys(file: pki.pskFile.path))

        let plain = try run("nbdinfo", ["--size", "nbd://127.0.0.1:\(fixture.port)/\(guid)"])
        XCTAssertNotEqual(plain.status, 0, "a plain-text client must be refused under --tls require")
        XCTAssertTrue(plain.stderr.contains("TLS"), plain.stderr)

        let raw = try RawNBDClient(port: fixture.port)
        try raw.handshake()
        for (option, data) in [(UInt32(3), [UInt8]()), (8, []), (6, RawNBDClient.be32(0) + RawNBDClient.be16(0)),
                               (7, RawNBDClient.be32(0) + RawNBDClient.be16(0)), (99, [])] {
            try raw.sendOption(option, data: data)
            let reply = try raw.readOptionReply()
            XCTAssertEqual(reply.option, option)
            XCTAssertEqual(reply.type, errTLSReqd, "option \(option) before STARTTLS")
            XCTAssertTrue(reply.text.contains("NBD_OPT_STARTTLS"), reply.text)
        }
        // STARTTLS with data is invalid, and changes nothing.
        try raw.sendOption(5, data: [1])
        XCTAssertEqual(try raw.readOptionReply().type, errInvalid)
        // ABORT is still answered.
        try raw.sendOption(2)
        XCTAssertEqual(try raw.readOptionReply().type, repAck)

        // NBD_OPT_EXPORT_NAME cannot carry an error: the server hangs up.
        let legacy = try RawNBDClient(port: fixture.port)
        try legacy.handshake()
        try legacy.sendOption(1, data: Array(guid.utf8))
        XCTAssertTrue(legacy.closedByServer())

        // Plain text after an accepted STARTTLS is not a TLS record: closed.
        let confused = try RawNBDClient(port: fixture.port)
        try confused.handshake()
        try confused.sendOption(5)
        XCTAssertEqual(try confused.readOptionReply().type, repAck)
        try confused.sendOption(3)
        XCTAssertTrue(confused.closedByServer())

        // The Unix socket stays plain: that is where the kernel attaches.
        let local = try LibNBDClient()
        try local.setExportName(guid)
        try local.connectUnix(fixture.unixSocketPath)
        XCTAssertEqual(try local.size(), 64 << 20)

        // And TLS clients are served after all of that.
        let info = try run("nbdinfo", ["--size", pskURI(fixture, pki.pskFile)])
        XCTAssertEqual(info.status, 0, info.stderr)
    }

    func testOnServesPlainAndTLSClients() async throws {
        let pki = try pki()
        let fixture = try await startServer(.on, .certificates(directory: pki.serverDirectory.path, verifyPeer: false))
        let plain = try run("nbdinfo", ["--size", "nbd://127.0.0.1:\(fixture.port)/\(guid)"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        try assertCopyEqualsExport(fixture, uri: certificateURI(fixture, pki.anonymousClientDirectory))

        // A STARTTLS with data is refused and leaves the plain session usable.
        let raw = try RawNBDClient(port: fixture.port)
        try raw.handshake()
        try raw.sendOption(5, data: [0])
        XCTAssertEqual(try raw.readOptionReply().type, errInvalid)
        XCTAssertEqual(try raw.list().count, 2)
    }

    func testOffRefusesStartTLS() async throws {
        try await startServer(.off, nil)
        let fixture = try XCTUnwrap(fixture)
        let raw = try RawNBDClient(port: fixture.port)
        try raw.handshake()
        try raw.sendOption(5)
        XCTAssertEqual(try raw.readOptionReply().type, 0x8000_0002, "NBD_REP_ERR_POLICY")
        XCTAssertEqual(try raw.list().count, 2)
    }

    // MARK: The kernel cannot carry TLS

    /// The handshake `cimnbd attach` does, against a TLS-only listener: a
    /// message that says why and where to attach instead; the Unix socket of
    /// the same server then works.
    func testAttachHandshakeRefusesTLSOnlyServer() async throws {
        let pki = try pki()
        let fixture = try await startServer(.require, .preSharedKeys(file: pki.pskFile.path))
        let tcp = NBDServerAddress(endpoint: .tcp(host: "127.0.0.1", port: UInt16(fixture.port)))
        XCTAssertThrowsError(try NBDHandshake.connect(to: tcp, exportName: guid, timeout: 5)) { error in
            guard case NBDKernelError.tlsRequired = error else { return XCTFail("\(error)") }
            let text = "\(error)"
            XCTAssertTrue(text.contains("cannot carry TLS"), text)
            XCTAssertTrue(text.contains("nbd+unix:///GUID?socket="), text)
            XCTAssertTrue(text.contains("loopback"), text)
        }
        let unix = NBDServerAddress(endpoint: .unix(path: fixture.unixSocketPath))
        let connection = try NBDHandshake.connect(to: unix, exportName: guid, timeout: 5)
        XCTAssertEqual(connection.info.size, 64 << 20)
        XCTAssertTrue(connection.info.isReadOnly)
    }
}
