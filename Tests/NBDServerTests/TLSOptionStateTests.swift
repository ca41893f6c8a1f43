import NIOSSL
@testable import NBDServer
import XCTest

/// What happens to option state across NBD_OPT_STARTTLS (proto.md: nothing
/// negotiated before it survives; a second STARTTLS is invalid), driven byte
/// by byte through a TLS-PSK session of swift-nio-ssl's own client.
final class TLSOptionStateTests: XCTestCase {
    let repAck: UInt32 = 1, repServer: UInt32 = 2, repMetaContext: UInt32 = 4, errInvalid: UInt32 = 0x8000_0003

    override class func tearDown() {
        TestPKI.releaseShared()
        super.tearDown()
    }

    private func expectReply(_ type: UInt32, from client: TLSRawNBDClient, line: UInt = #line) async throws {
        let reply = try await client.readOptionReply()
        XCTAssertEqual(reply.type, type, reply.text, line: line)
    }

    func testStartTLSForgetsEarlierOptionsAndCannotRepeat() async throws {
        let pki = try TestPKI.shared()
        let keys = try PSKKeyFile(path: pki.pskFile.path)
        let aliceKey = try XCTUnwrap(keys.keys["alice"])
        let fixture = try TestFixture(configuration: NBDServerConfiguration(
            eventLoopThreads: 1, blockingIOThreads: 2,
            tls: try NBDServerTLS(mode: .on, credentials: .preSharedKeys(file: pki.pskFile.path))))
        try await fixture.start()
        let client = try await TLSRawNBDClient(port: fixture.port)

        do {
            try await client.handshake()
            // Structured replies in plain text, then STARTTLS.
            try await client.sendOption(8)
            try await expectReply(repAck, from: client)
            try await client.sendOption(5)
            try await expectReply(repAck, from: client)

            var tls = TLSConfiguration.makePreSharedKeyConfiguration()
            tls.minimumTLSVersion = .tlsv12
            tls.maximumTLSVersion = .tlsv12
            tls.cipherSuites = NBDServerTLS.pskCipherSuites
            tls.pskClientProvider = { _ in
                var key = NIOSSLSecureBytes()
                key.append(aliceKey)
                return PSKClientIdentityResponse(key: key, identity: "alice")
            }
            try await client.startTLS(tls)

            // Inside TLS: a second STARTTLS is invalid…
            try await client.sendOption(5)
            let again = try await client.readOptionReply()
            XCTAssertEqual(again.type, errInvalid)
            XCTAssertEqual(again.text, "TLS is already active on this connection")

            // …and the structured replies asked for in plain text are forgotten:
            // metadata contexts need them, so SET_META_CONTEXT is refused.
            let name = Array(TestFixture.mainGUID.description.utf8)
            let context = Array("base:allocation".utf8)
            let setMeta = RawNBDClient.be32(UInt32(name.count)) + name + RawNBDClient.be32(1)
                + RawNBDClient.be32(UInt32(context.count)) + context
            try await client.sendOption(10, data: setMeta)
            let refused = try await client.readOptionReply()
            XCTAssertEqual(refused.type, errInvalid)
            XCTAssertTrue(refused.text.contains("structured replies"), refused.text)

            // Asked again inside TLS, both work, and LIST answers.
            try await client.sendOption(8)
            try await expectReply(repAck, from: client)
            try await client.sendOption(10, data: setMeta)
            try await expectReply(repMetaContext, from: client)
            try await expectReply(repAck, from: client)
            try await client.sendOption(3)
            var servers = 0
            while try await client.readOptionReply().type == repServer { servers += 1 }
            XCTAssertEqual(servers, 2)
        } catch {
            XCTFail("\(error)")
        }
        await client.close()
        try await fixture.stop()
    }
}
