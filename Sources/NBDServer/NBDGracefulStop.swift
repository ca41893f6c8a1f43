import NIOCore

/// Asks one client connection to stop the way proto.md wants a server to shut
/// down: replies already started are finished, requests not yet started (and
/// any that arrive meanwhile) are answered with `NBD_ESHUTDOWN`, and only then
/// is the connection closed. Connections still in the handshake close at once.
///
/// Sent down a connection's pipeline as a user inbound event by
/// ``NBDServer/shutdown()`` and ``ExportRegistry/remove(guid:force:gracePeriod:)``.
struct NBDGracefulStop: Sendable {
    /// Longest wait for started replies; the connection is closed after it
    /// even if a reply is still being sent (a client that stopped reading).
    var gracePeriod: TimeAmount

    /// The default bound on a graceful stop.
    static let defaultGracePeriod = TimeAmount.seconds(10)

    /// Starts a graceful stop of `channel` (from any thread).
    static func request(on channel: any Channel, gracePeriod: TimeAmount) {
        channel.pipeline.fireUserInboundEventTriggered(NBDGracefulStop(gracePeriod: gracePeriod))
    }
}
