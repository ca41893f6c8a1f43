import Logging
import NIOCore
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// TLS for an ``NBDServer``, with nbdkit's interface: a mode, and either a
/// directory of X.509 files or a file of pre-shared keys.
///
/// The credentials are loaded once, by the initializer, so that a missing or
/// broken file stops the server before it listens. TLS starts when a client
/// sends NBD_OPT_STARTTLS; option haggling then continues inside TLS.
///
/// ```swift
/// let tls = try NBDServerTLS(mode: .require, credentials: .certificates(directory: "/etc/pki/cimnbd", verifyPeer: false))
/// let server = NBDServer(configuration: NBDServerConfiguration(tls: tls), registry: registry)
/// // clients: nbdinfo 'nbds://host/GUID?tls-certificates=/etc/pki/cimnbd-client'
/// ```
public struct NBDServerTLS: Sendable {
    /// Where the server's credentials come from.
    public enum Credentials: Sendable, Equatable {
        /// `ca-cert.pem`, `server-cert.pem` and `server-key.pem` in `directory`
        /// (nbdkit's names). With `verifyPeer`, clients must present a
        /// certificate signed by `ca-cert.pem`.
        case certificates(directory: String, verifyPeer: Bool)
        /// `username:hexkey` lines as psktool writes them (TLS 1.2 PSK ciphers).
        case preSharedKeys(file: String)
    }

    /// The file names nbdkit looks for in its certificates directory.
    public static let caCertificateFile = "ca-cert.pem"
    public static let serverCertificateFile = "server-cert.pem"
    public static let serverKeyFile = "server-key.pem"

    /// PSK cipher suites BoringSSL implements, forward-secret ones first.
    /// (BoringSSL has PSK for TLS 1.2 only, so PSK sessions are TLS 1.2.)
    static let pskCipherSuites = [
        "ECDHE-PSK-CHACHA20-POLY1305", "ECDHE-PSK-AES128-CBC-SHA", "ECDHE-PSK-AES256-CBC-SHA",
        "PSK-AES128-CBC-SHA", "PSK-AES256-CBC-SHA",
    ].joined(separator: ":")

    /// Off, on (offered) or require.
    public let mode: NBDTLSMode
    /// The credentials loaded; nil only when ``mode`` is off.
    public let credentials: Credentials?
    /// Usernames of the PSK file (empty with certificates).
    public let pskIdentities: [String]
    /// The TLS context every connection's handler is made from; nil when off.
    let context: NIOSSLContext?

    /// TLS switched off: NBD_OPT_STARTTLS is refused with NBD_REP_ERR_POLICY.
    public static let off = NBDServerTLS(mode: .off)

    private init(mode: NBDTLSMode) {
        self.mode = mode
        self.credentials = nil
        self.pskIdentities = []
        self.context = nil
    }

    /// Loads `credentials` for `mode`. Mode off ignores the credentials;
    /// on and require need them. `logger` receives one line per PSK client
    /// that names an unknown user.
    public init(mode: NBDTLSMode, credentials: Credentials?, logger: Logger = Logger(label: "cimnbd.tls")) throws {
        self.mode = mode
        guard mode != .off else {
            self.credentials = nil
            self.pskIdentities = []
            self.context = nil
            return
        }
        guard let credentials else { throw NBDTLSError.noCredentials(mode: mode) }
        var configuration: TLSConfiguration
        var identities: [String] = []
        switch credentials {
        case .certificates(let directory, let verifyPeer):
            configuration = try Self.certificateConfiguration(directory: directory, verifyPeer: verifyPeer)
        case .preSharedKeys(let file):
            let keys = try PSKKeyFile(path: file)
            identities = keys.keys.keys.sorted()
            configuration = TLSConfiguration.makePreSharedKeyConfiguration()
            configuration.cipherSuites = Self.pskCipherSuites
            configuration.maximumTLSVersion = .tlsv12
            configuration.pskServerProvider = { [keys = keys.keys] context in
                guard let key = keys[context.clientIdentity] else {
                    logger.notice("TLS-PSK: unknown username \"\(NBDWireEncoding.protocolString(context.clientIdentity, limit: 128))\"")
                    throw UnknownPSKUsername()
                }
                var secure = NIOSSLSecureBytes()
                secure.append(key)
                return PSKServerIdentityResponse(key: secure)
            }
        }
        // proto.md: TLS 1.2 at least; older versions only by configuration.
        configuration.minimumTLSVersion = .tlsv12
        do {
            self.context = try NIOSSLContext(configuration: configuration)
        } catch {
            let path: String
            switch credentials {
            case .certificates(let directory, _): path = directory
            case .preSharedKeys(let file): path = file
            }
            throw NBDTLSError.unusableFile(path: path, detail: "TLS context rejected the credentials: \(error)")
        }
        self.credentials = credentials
        self.pskIdentities = identities
    }

    private static func certificateConfiguration(directory: String, verifyPeer: Bool) throws -> TLSConfiguration {
        let base = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        let certificatePath = base + "/" + serverCertificateFile
        let keyPath = base + "/" + serverKeyFile
        let caPath = base + "/" + caCertificateFile
        let chain = try loadCertificates(certificatePath, purpose: "the server certificate")
        try requireFile(keyPath, purpose: "the server private key")
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw NBDTLSError.unusableFile(path: keyPath, detail: "not a PEM private key (\(error))")
        }
        let certificates = chain.map { NIOSSLCertificateSource.certificate($0) }
        guard verifyPeer else {
            return TLSConfiguration.makeServerConfiguration(certificateChain: certificates, privateKey: .privateKey(key))
        }
        let authorities = try loadCertificates(caPath, purpose: "the CA that signs client certificates (--tls-verify-peer)")
        var configuration = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: certificates, privateKey: .privateKey(key), trustRoots: .certificates(authorities))
        // Lets clients with several certificates pick the one our CA signed.
        configuration.sendCANameList = true
        return configuration
    }

    private static func requireFile(_ path: String, purpose: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { throw NBDTLSError.missingFile(path: path, purpose: purpose) }
    }

    private static func loadCertificates(_ path: String, purpose: String) throws -> [NIOSSLCertificate] {
        try requireFile(path, purpose: purpose)
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw NBDTLSError.unusableFile(path: path, detail: "not a PEM certificate (\(error))")
        }
        guard !certificates.isEmpty else {
            throw NBDTLSError.unusableFile(path: path, detail: "holds no PEM certificate")
        }
        return certificates
    }

    /// Thrown to BoringSSL's PSK callback, which then fails the handshake.
    private struct UnknownPSKUsername: Error {}

    /// A new TLS handler for one connection that just accepted NBD_OPT_STARTTLS.
    func makeHandler() -> (any ChannelHandler)? {
        context.map { NIOSSLServerHandler(context: $0) as any ChannelHandler }
    }
}
