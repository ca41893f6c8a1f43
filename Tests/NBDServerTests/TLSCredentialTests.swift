import Foundation
@testable import NBDServer
import XCTest

/// Loading TLS credentials: psktool's file format and nbdkit's file names,
/// with errors that name the file (and line) at fault.
final class TLSCredentialTests: XCTestCase {
    override class func tearDown() {
        TestPKI.releaseShared()
        super.tearDown()
    }

    private func parse(_ text: String) throws -> PSKKeyFile {
        try PSKKeyFile(path: "/etc/keys.psk", contents: Array(text.utf8))
    }

    func testPSKFileAsPsktoolWritesIt() throws {
        let file = try parse("alice:03fba3743ff6c53d50bdb494390dca5dd533939f1ec331845cd704a81a455834\nbob:00FF\r\n\n")
        XCTAssertEqual(file.keys.count, 2)
        XCTAssertEqual(file.keys["alice"]?.count, 32)
        XCTAssertEqual(file.keys["alice"]?.prefix(2), [0x03, 0xfb])
        XCTAssertEqual(file.keys["bob"], [0x00, 0xff])
    }

    func testMalformedPSKLinesNameFileAndLine() {
        let cases: [(String, Int, String)] = [
            ("alice:00\nbob\n", 2, "no colon"),
            (":00", 1, "empty username"),
            ("alice:0", 1, "not an even number of hex digits"),
            ("alice:zz", 1, "not an even number of hex digits"),
            ("alice:", 1, "must be 1 to 256 bytes"),
            ("alice:\(String(repeating: "ab", count: 257))", 1, "must be 1 to 256 bytes"),
            ("\(String(repeating: "a", count: 129)):00", 1, "longer than 128 bytes"),
            ("alice:00\n\nalice:01", 3, "appears again (first on line 1)"),
        ]
        for (text, line, problem) in cases {
            XCTAssertThrowsError(try parse(text), text) { error in
                guard case NBDTLSError.malformedPSKLine(let path, let found, let message) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(path, "/etc/keys.psk")
                XCTAssertEqual(found, line, text)
                XCTAssertTrue(message.contains(problem), "\(message) for \(text)")
                XCTAssertTrue("\(error)".hasPrefix("/etc/keys.psk:\(line): "), "\(error)")
                XCTAssertFalse("\(error)".contains("0123"), "no key material in messages")
            }
        }
        XCTAssertThrowsError(try parse("\n \n")) { error in
            XCTAssertEqual(error as? NBDTLSError, .emptyPSKFile(path: "/etc/keys.psk"))
        }
    }

    func testMissingFilesAreNamed() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tls-empty-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        XCTAssertThrowsError(try NBDServerTLS(mode: .require, credentials: .certificates(directory: directory.path, verifyPeer: false))) { error in
            XCTAssertEqual(error as? NBDTLSError, .missingFile(path: directory.path + "/server-cert.pem", purpose: "the server certificate"))
        }
        XCTAssertThrowsError(try NBDServerTLS(mode: .on, credentials: .preSharedKeys(file: directory.path + "/none.psk"))) { error in
            XCTAssertEqual(error as? NBDTLSError, .unreadablePSKFile(path: directory.path + "/none.psk", errno: ENOENT))
        }
        try Data("not a certificate\n".utf8).write(to: directory.appendingPathComponent("server-cert.pem"))
        XCTAssertThrowsError(try NBDServerTLS(mode: .require, credentials: .certificates(directory: directory.path, verifyPeer: false))) { error in
            guard case NBDTLSError.unusableFile(let path, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, directory.path + "/server-cert.pem")
        }
        XCTAssertThrowsError(try NBDServerTLS(mode: .require, credentials: nil)) { error in
            XCTAssertEqual("\(error)", "--tls require needs --tls-certificates DIR or --tls-psk FILE")
        }
        XCTAssertEqual(try NBDServerTLS(mode: .off, credentials: nil).mode, .off)
    }

    func testVerifyPeerNeedsTheCA() throws {
        let pki = try TestPKI.shared()
        let directory = pki.root.appendingPathComponent("no-ca")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for name in ["server-cert.pem", "server-key.pem"] {
            try FileManager.default.copyItem(at: pki.serverDirectory.appendingPathComponent(name), to: directory.appendingPathComponent(name))
        }
        XCTAssertNoThrow(try NBDServerTLS(mode: .require, credentials: .certificates(directory: directory.path, verifyPeer: false)))
        XCTAssertThrowsError(try NBDServerTLS(mode: .require, credentials: .certificates(directory: directory.path, verifyPeer: true))) { error in
            guard case NBDTLSError.missingFile(let path, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, directory.path + "/ca-cert.pem")
        }
    }
}
