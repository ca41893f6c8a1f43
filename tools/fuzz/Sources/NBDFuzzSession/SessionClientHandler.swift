import NIOCore

/// The client side of a fuzz session: writes the input as soon as the
/// channel is active, half-closes after it, and counts what the server sends
/// until the server closes. Completes `ended` with that count.
///
/// A write the server refuses (it closed first, e.g. after a bad magic) ends
/// the writing, not the session: what the server said is still read.
final class SessionClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let input: ByteBuffer
    private let ended: EventLoopPromise<Int>
    private var received = 0

    init(input: ByteBuffer, ended: EventLoopPromise<Int>) {
        self.input = input
        self.ended = ended
    }

    func channelActive(context: ChannelHandlerContext) {
        if input.readableBytes == 0 {
            context.close(mode: .output, promise: nil)
        } else {
            context.writeAndFlush(wrapOutboundOut(input)).assumeIsolated().whenComplete { _ in
                context.close(mode: .output, promise: nil)
            }
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytes
    }

    func channelInactive(context: ChannelHandlerContext) {
        ended.succeed(received)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Reset by the server: the session is over.
        context.close(promise: nil)
    }
}
