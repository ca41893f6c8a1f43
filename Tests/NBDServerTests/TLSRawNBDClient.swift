import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A byte-level NBD client that can start TLS in the middle of option
/// haggling, for what libnbd never sends (a second NBD_OPT_STARTTLS, stateful
/// options before it). Reads poll with a deadline, so a silent server fails
/// the test instead of hanging it.
final class TLSRawNBDClient {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Collects every byte received.
    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = NIOLockedValueBox(ByteBuffer())
        let closed = NIOLockedValueBox(false)

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            received.withLockedValue { _ = $0.writeBuffer(&bytes) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            closed.withLockedValue { $0 = true }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let collector = Collector()
    private let channel: any Channel

    init(port: Int) async throws {
        let collector = self.collector
        channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
    }

    func close() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// Exactly `count` bytes, within five seconds.
    func receive(_ count: Int) async throws -> [UInt8] {
        for _ in 0..<500 {
            let bytes = collector.received.withLockedValue { buffer -> [UInt8]? in
                guard buffer.readableBytes >= count else { return nil }
                return buffer.readBytes(length: count)
            }
            if let bytes { return bytes }
            if collector.closed.withLockedValue({ $0 }) { throw Failure(description: "connection closed while waiting for \(count) bytes") }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        throw Failure(description: "no \(count) bytes within 5 s")
    }

    /// From here on everything goes through TLS with `configuration`.
    func startTLS(_ configuration: TLSConfiguration) async throws {
        let context = try NIOSSLContext(configuration: configuration)
        try await channel.eventLoop.submit { [channel] in
            try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: nil), position: .first)
        }.get()
    }

    func handshake() async throws {
        let greeting = try await receive(18)
        guard Array(greeting[0..<16]) == Array("NBDMAGICIHAVEOPT".utf8) else { throw Failure(description: "not a newstyle greeting") }
        try await send(RawNBDClient.be32(3))
    }

    func sendOption(_ option: UInt32, data: [UInt8] = []) async throws {
        try await send(Array("IHAVEOPT".utf8) + RawNBDClient.be32(option) + RawNBDClient.be32(UInt32(data.count)) + data)
    }

    func readOptionReply() async throws -> RawNBDClient.OptionReply {
        let header = try await receive(20)
        guard RawNBDClient.readBE64(header, 0) == 0x0003_e889_0455_65a9 else { throw Failure(description: "bad option reply magic") }
        let length = Int(RawNBDClient.readBE32(header, 16))
        return RawNBDClient.OptionReply(option: RawNBDClient.readBE32(header, 8), type: RawNBDClient.readBE32(header, 12),
                                        data: length > 0 ? try await receive(length) : [])
    }
}
