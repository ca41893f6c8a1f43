import ArgumentParser
import Logging
import NBDServer

/// `serve`'s TLS options, named and meant as nbdkit's (nbdkit-tls(1)).
struct TLSArguments: ParsableArguments {
    @Option(name: .customLong("tls"), help: ArgumentHelp(
        "off: refuse NBD_OPT_STARTTLS; on: offer TLS, plain-text clients are still served; require: answer every option but STARTTLS and ABORT with NBD_REP_ERR_TLS_REQD on TCP (Unix sockets stay open to plain clients such as the kernel). Default: on when --tls-certificates or --tls-psk is given, else off. Example: --tls require --tls-certificates /etc/pki/cimnbd",
        valueName: "off|on|require"))
    var mode: String?

    @Option(name: .customLong("tls-certificates"), help: ArgumentHelp(
        "Directory with server-cert.pem, server-key.pem and (for --tls-verify-peer) ca-cert.pem, as certtool makes them. Clients: nbdinfo 'nbds://HOST/GUID?tls-certificates=CLIENTDIR'. Example: --tls-certificates /etc/pki/cimnbd",
        valueName: "DIR"))
    var certificates: String?

    @Option(name: .customLong("tls-psk"), help: ArgumentHelp(
        "Pre-shared keys instead of certificates: username:hexkey lines, as 'psktool -u alice -p FILE' writes them (TLS 1.2 PSK). Clients: nbdinfo 'nbds://alice@HOST/GUID?tls-psk-file=FILE'. Example: --tls-psk /etc/cimnbd/keys.psk",
        valueName: "FILE"))
    var psk: String?

    @Flag(name: .customLong("tls-verify-peer"), help: ArgumentHelp(
        "With --tls-certificates: accept only clients whose certificate ca-cert.pem signed. Example: --tls require --tls-certificates /etc/pki/cimnbd --tls-verify-peer"))
    var verifyPeer = false

    func validate() throws {
        if let mode, NBDTLSMode(rawValue: mode) == nil {
            throw ValidationError("--tls: \"\(mode)\" is not off, on or require")
        }
        if certificates != nil && psk != nil {
            throw ValidationError("--tls-certificates and --tls-psk exclude each other: choose certificates or pre-shared keys")
        }
        if verifyPeer && certificates == nil {
            throw ValidationError("--tls-verify-peer checks client certificates against DIR/ca-cert.pem: it needs --tls-certificates DIR")
        }
    }

    /// The mode given, or nbdkit's default: on when credentials are given.
    var effectiveMode: NBDTLSMode {
        if let mode, let parsed = NBDTLSMode(rawValue: mode) { return parsed }
        return certificates != nil || psk != nil ? .on : .off
    }

    var credentials: NBDServerTLS.Credentials? {
        if let certificates { return .certificates(directory: certificates, verifyPeer: verifyPeer) }
        if let psk { return .preSharedKeys(file: psk) }
        return nil
    }

    /// Loads the credentials; throws ``NBDTLSError`` naming the file at fault.
    func load(logger: Logger) throws -> NBDServerTLS {
        try NBDServerTLS(mode: effectiveMode, credentials: credentials, logger: logger)
    }
}
