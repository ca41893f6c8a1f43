/// Whether a server offers or insists on TLS (nbdkit's `--tls` values).
///
/// proto.md calls these NOTLS, SELECTIVETLS (every export available with or
/// without TLS) and FORCEDTLS.
public enum NBDTLSMode: String, Sendable, CaseIterable, CustomStringConvertible {
    /// NBD_OPT_STARTTLS is refused with NBD_REP_ERR_POLICY.
    case off
    /// NBD_OPT_STARTTLS is accepted; plain-text clients are served too.
    case on
    /// Every option but NBD_OPT_STARTTLS and NBD_OPT_ABORT is answered with
    /// NBD_REP_ERR_TLS_REQD until TLS is up; NBD_OPT_EXPORT_NAME, which cannot
    /// carry an error, closes the connection.
    case require

    public var description: String { rawValue }
}
