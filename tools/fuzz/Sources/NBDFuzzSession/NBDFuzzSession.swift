import Logging
@testable import NBDServer
import NIOCore
import NIOEmbedded

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Plays one client session against the server's real `NBDConnectionHandler`.
///
/// The handler sits in an `EmbeddedChannel` and does its blocking work
/// (volume reads that are not page-cached, block status) inline, on the
/// fuzzer's thread (``BlockingWork/inline``), so a whole session is a few
/// function calls: no socket, no event-loop thread, no thread hop per
/// request. The input is delivered in pieces of ``pieceSize`` bytes, so
/// messages are also met cut in two, as a socket delivers them; what the
/// server writes is taken out after every piece and counted (a file region,
/// which a socket would `sendfile`, counts its length).
///
/// At the end of input every request the server accepted must have been
/// answered: with no thread pool in between, a reply still missing then is
/// one that will never come, and that is a finding (a trap). The one request
/// exempt is a WRITE still waiting for its payload.
public final class NBDFuzzSession {
    /// One session per process, built on first use (the export takes a few ms).
    /// libFuzzer calls the target from one thread only.
    nonisolated(unsafe) public static let shared = NBDFuzzSession()

    /// Bytes handed to the handler per `channelRead`: prime, so that the cuts
    /// fall at every offset within the 28-byte request headers and options.
    public static let pieceSize = 509

    private let registry = ExportRegistry()
    private let configuration: NBDServerConfiguration
    private let logger = Logger(label: "cimnbd.fuzz", factory: { _ in DiscardingLogHandler() })

    private init() {
        // The defaults, except a smaller largest READ (64 KiB instead of
        // 32 MiB: still above the 16 KiB from which file data is sent with
        // sendfile) so that one input costs microseconds, not milliseconds,
        // and sendfile always: an EmbeddedChannel has no peer address, which
        // the default (sendfile to remote peers only) would take for a local one.
        configuration = NBDServerConfiguration(eventLoopThreads: 1, blockingIOThreads: 1, maximumPayloadSize: 64 * 1024,
                                               sendfile: .always)
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        do {
            try FuzzExport.register(in: registry, directory: "\(base)/cimnbd-fuzz-nbd-\(getpid())")
        } catch {
            fatalError("cannot build the fuzz export: \(error)")
        }
    }

    /// The fixed handshake the request target starts with, chosen by the low
    /// four bits of `mode`: bit 0 client flag NO_ZEROES, bit 1
    /// NBD_OPT_STRUCTURED_REPLY, bit 2 NBD_OPT_SET_META_CONTEXT
    /// `base:allocation`, bit 3 NBD_OPT_EXPORT_NAME instead of NBD_OPT_GO.
    public static func handshake(mode: UInt8) -> [UInt8] {
        var bytes: [UInt8] = []
        func be<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.bigEndian) { bytes += $0 } }
        func option(_ code: UInt32, _ payload: [UInt8]) {
            be(NBDProtocol.optionMagic)
            be(code)
            be(UInt32(payload.count))
            bytes += payload
        }
        let name = Array(FuzzExport.name.utf8)
        be(NBDProtocol.clientFlagFixedNewstyle | (mode & 1 != 0 ? NBDProtocol.clientFlagNoZeroes : 0))
        if mode & 2 != 0 { option(NBDProtocol.optStructuredReply, []) }
        if mode & 4 != 0 {
            let query = Array(NBDProtocol.baseAllocation.utf8)
            var payload: [UInt8] = []
            func append(_ value: UInt32) { withUnsafeBytes(of: value.bigEndian) { payload += $0 } }
            append(UInt32(name.count))
            payload += name
            append(1)
            append(UInt32(query.count))
            payload += query
            option(NBDProtocol.optSetMetaContext, payload)
        }
        if mode & 8 != 0 {
            option(NBDProtocol.optExportName, name)
        } else {
            var payload: [UInt8] = []
            withUnsafeBytes(of: UInt32(name.count).bigEndian) { payload += $0 }
            payload += name
            payload += [0, 0]  // no information requests
            option(NBDProtocol.optGo, payload)
        }
        return bytes
    }

    /// Sends `bytes` as everything a client says after the greeting, then
    /// ends the input. Returns the number of bytes the server sent (greeting
    /// included).
    @discardableResult
    public func run(_ bytes: UnsafeRawBufferPointer) -> Int {
        let channel = EmbeddedChannel()
        let handler = NBDConnectionHandler(registry: registry, configuration: configuration,
                                           blockingWork: .inline, logger: logger)
        var sent = 0
        func collect() {
            channel.embeddedEventLoop.run()
            while let data = try? channel.readOutbound(as: IOData.self) {
                sent += data.readableBytes
            }
        }
        do {
            try channel.pipeline.syncOperations.addHandler(handler)
            // Becomes active as an accepted Unix-socket connection does: the greeting goes out.
            try channel.connect(to: SocketAddress(unixDomainSocketPath: "/cimnbd-fuzz")).wait()
        } catch {
            fatalError("the fuzz channel did not start: \(error)")
        }
        collect()
        var rest = bytes[...]
        while !rest.isEmpty && channel.isActive {
            let piece = rest.prefix(Self.pieceSize)
            rest = rest.dropFirst(piece.count)
            do {
                try channel.writeInbound(ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: piece)))
            } catch {
                break  // the server closed the connection: the rest is not read
            }
            collect()
        }
        if channel.isActive {
            let waitingForPayload = handler.discardRemaining > 0 ? 1 : 0
            if handler.inFlight - waitingForPayload > 0 {
                fatalError("\(handler.inFlight) requests still unanswered at the end of input (\(bytes.count) bytes)")
            }
        }
        _ = try? channel.finish(acceptAlreadyClosed: true)
        collect()
        return sent
    }
}
