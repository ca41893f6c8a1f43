import NIOCore
import NIOPosix

/// Where a connection runs work that may wait for the disk: reading a volume
/// that is not in the page cache, block status, CACHE's readahead.
///
/// The server uses its blocking-I/O pool, so the event loop never waits. The
/// fuzz harness runs the work on the calling thread instead: it drives the
/// connection handler through an `EmbeddedChannel`, whose event loop may only
/// be touched from its own thread, and it gains a session per few
/// microseconds instead of a thread hop per request.
struct BlockingWork: Sendable {
    private let pool: NIOThreadPool?

    /// Work runs on `pool`; its result is delivered on the connection's event loop.
    static func pool(_ pool: NIOThreadPool) -> BlockingWork { BlockingWork(pool: pool) }

    /// Work runs at once, on the calling thread (the event loop's): for harnesses only.
    static let inline = BlockingWork(pool: nil)

    /// Runs `body` and completes the returned future, on `eventLoop`, with its result.
    func run<Value: Sendable>(on eventLoop: any EventLoop, _ body: @escaping @Sendable () throws -> Value) -> EventLoopFuture<Value> {
        guard let pool else {
            return eventLoop.makeCompletedFuture(Result { try body() })
        }
        return pool.runIfActive(eventLoop: eventLoop, body)
    }
}
