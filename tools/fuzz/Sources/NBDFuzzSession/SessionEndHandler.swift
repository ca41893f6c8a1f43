@testable import NBDServer
import NIOCore

/// Ends a fuzz session deterministically. The client half-closes after its
/// last byte; this handler (after the connection handler in the pipeline)
/// then waits until every request the server accepted has been answered and
/// closes the channel, so replies are never cut off by the end of input.
///
/// A request still waiting for its WRITE payload can never finish once the
/// input has ended; it is the one request not waited for.
final class SessionEndHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let connection: NBDConnectionHandler
    /// How often an idle check is repeated while replies are still pending.
    private static let pollInterval = TimeAmount.microseconds(50)

    init(connection: NBDConnectionHandler) {
        self.connection = connection
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            closeWhenIdle(context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func closeWhenIdle(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        let waitingForPayload = connection.discardRemaining > 0 ? 1 : 0
        if connection.inFlight - waitingForPayload <= 0 {
            context.close(promise: nil)
            return
        }
        context.eventLoop.assumeIsolated().scheduleTask(in: Self.pollInterval) { [self] in
            closeWhenIdle(context: context)
        }
    }
}
