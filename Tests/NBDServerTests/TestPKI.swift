import Foundation
import XCTest

/// Certificates and pre-shared keys made with GnuTLS's own tools, as
/// nbdkit-tls(1) describes, in a temporary directory.
///
/// - `serverDirectory`: ca-cert.pem, server-cert.pem (localhost, 127.0.0.1), server-key.pem
/// - `clientDirectory`: ca-cert.pem plus a client certificate the CA signed
/// - `anonymousClientDirectory`: ca-cert.pem only (trusts the server, no client certificate)
/// - `rogueClientDirectory`: ca-cert.pem plus a client certificate another CA signed
/// - `distrustingClientDirectory`: only the other CA, so the server's certificate is untrusted
/// - `pskFile`: `alice:KEY` (psktool); `wrongPSKFile`: `alice:OTHERKEY`; `unknownUserPSKFile`: `mallory:KEY`
final class TestPKI {
    let root: URL
    var serverDirectory: URL { root.appendingPathComponent("server") }
    var clientDirectory: URL { root.appendingPathComponent("client") }
    var anonymousClientDirectory: URL { root.appendingPathComponent("anonymous") }
    var rogueClientDirectory: URL { root.appendingPathComponent("rogue-client") }
    var distrustingClientDirectory: URL { root.appendingPathComponent("distrusting") }
    var pskDirectory: URL { root.appendingPathComponent("psk") }
    var pskFile: URL { pskDirectory.appendingPathComponent("keys.psk") }
    var wrongPSKFile: URL { root.appendingPathComponent("wrong.psk") }
    var unknownUserPSKFile: URL { root.appendingPathComponent("mallory.psk") }

    nonisolated(unsafe) private static var cached: TestPKI?

    /// One set per test class: key generation is slow. Release it in the
    /// class's `tearDown` with ``releaseShared()``.
    static func shared() throws -> TestPKI {
        if let cached { return cached }
        let made = try TestPKI()
        cached = made
        return made
    }

    /// Removes the shared set's files.
    static func releaseShared() {
        cached = nil
    }

    init() throws {
        guard ExternalTool.path("certtool") != nil, ExternalTool.path("psktool") != nil else {
            throw XCTSkip("certtool/psktool are not installed (Debian: gnutls-bin)")
        }
        root = FileManager.default.temporaryDirectory.appendingPathComponent("nbd-pki-\(UUID().uuidString)")
        for directory in [root, serverDirectory, clientDirectory, anonymousClientDirectory, rogueClientDirectory,
                          distrustingClientDirectory, pskDirectory] {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        let ca = root.appendingPathComponent("ca")
        let rogueCA = root.appendingPathComponent("rogue-ca")
        try makeAuthority(ca, name: "cimnbd test CA")
        try makeAuthority(rogueCA, name: "someone else's CA")
        try makeCertificate(signedBy: ca, key: serverDirectory.appendingPathComponent("server-key.pem"),
                            certificate: serverDirectory.appendingPathComponent("server-cert.pem"),
                            template: "cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\n")
        try makeCertificate(signedBy: ca, key: clientDirectory.appendingPathComponent("client-key.pem"),
                            certificate: clientDirectory.appendingPathComponent("client-cert.pem"),
                            template: "cn = client.example.com\ntls_www_client\nencryption_key\nsigning_key\n")
        try makeCertificate(signedBy: rogueCA, key: rogueClientDirectory.appendingPathComponent("client-key.pem"),
                            certificate: rogueClientDirectory.appendingPathComponent("client-cert.pem"),
                            template: "cn = client.example.com\ntls_www_client\nencryption_key\nsigning_key\n")
        let caCertificate = ca.appendingPathExtension("cert.pem")
        for directory in [serverDirectory, clientDirectory, anonymousClientDirectory, rogueClientDirectory] {
            try FileManager.default.copyItem(at: caCertificate, to: directory.appendingPathComponent("ca-cert.pem"))
        }
        try FileManager.default.copyItem(at: rogueCA.appendingPathExtension("cert.pem"),
                                         to: distrustingClientDirectory.appendingPathComponent("ca-cert.pem"))
        try tool("psktool", ["-u", "alice", "-p", pskFile.path])
        try tool("psktool", ["-u", "alice", "-p", wrongPSKFile.path])
        let aliceKey = try String(contentsOf: pskFile, encoding: .utf8).split(separator: ":")[1]
        try "mallory:\(aliceKey)".write(to: unknownUserPSKFile, atomically: true, encoding: .utf8)
    }

    deinit {
        try? FileManager.default.removeItem(at: root)
    }

    private func tool(_ name: String, _ arguments: [String]) throws {
        let result = try ExternalTool.run(name, arguments, in: root)
        guard result.status == 0 else {
            throw XCTSkip("\(name) \(arguments.joined(separator: " ")) failed: \(result.stderr)")
        }
    }

    /// `base.key.pem` and a self-signed `base.cert.pem`.
    private func makeAuthority(_ base: URL, name: String) throws {
        let key = base.appendingPathExtension("key.pem")
        let template = base.appendingPathExtension("info")
        try "cn = \(name)\nca\ncert_signing_key\nexpiration_days = 3\n".write(to: template, atomically: true, encoding: .utf8)
        try tool("certtool", ["--generate-privkey", "--outfile", key.path])
        try tool("certtool", ["--generate-self-signed", "--load-privkey", key.path, "--template", template.path,
                              "--outfile", base.appendingPathExtension("cert.pem").path])
    }

    private func makeCertificate(signedBy ca: URL, key: URL, certificate: URL, template: String) throws {
        let info = certificate.deletingPathExtension().appendingPathExtension("info")
        try (template + "expiration_days = 3\n").write(to: info, atomically: true, encoding: .utf8)
        try tool("certtool", ["--generate-privkey", "--outfile", key.path])
        try tool("certtool", ["--generate-certificate", "--load-ca-certificate", ca.appendingPathExtension("cert.pem").path,
                              "--load-ca-privkey", ca.appendingPathExtension("key.pem").path,
                              "--load-privkey", key.path, "--template", info.path, "--outfile", certificate.path])
    }
}
