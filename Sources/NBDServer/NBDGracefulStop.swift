import NIOCore

/// Asks one client connection to stop the way proto.md wants a server to shut
/// down: replies already started are finished, requests not yet started (and
/// any that arrive meanwhile) are answered with `NBD_ESHUTDOWN`, and only then
/// is the connection closed. A connection still in the handshake gets
/// `NBD_REP_ERR_SHUTDOWN` for its next option (proto.md), then closes; one
/// that sends no option within ``handshakeAnswerWindow`` is closed.
///
/// Sent down a connection's pipeline as a user inbound event by
/// ``NBDServer/shutdown()`` and ``ExportRegistry/remove(guid:force:gracePeriod:)``.
struct NBDGracefulStop: Sendable {
    /// Longest wait for started replies; the connection is closed after it
    /// even if a reply is still being sent (a client that stopped reading).
    var gracePeriod: TimeAmount

    /// The default bound on a graceful stop.
    static let defaultGracePeriod = TimeAmount.seconds(10)

    /// How long a connection in the handshake may take to send the option
    /// that NBD_REP_ERR_SHUTDOWN answers: a live client sends its next option
    /// within a round trip, and an idle one must not hold the stop for the
    /// whole grace period.
    static let handshakeAnswerWindow = TimeAmount.seconds(1)

    /// Starts a graceful stop of `channel` (from any thread).
    static func request(on channel: any Channel, gracePeriod: TimeAmount) {
        channel.pipeline.fireUserInboundEventTriggered(NBDGracefulStop(gracePeriod: gracePeriod))
    }
}
