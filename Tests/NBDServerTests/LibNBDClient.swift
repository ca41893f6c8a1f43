import CLibNBD
import Foundation

/// An error from libnbd: its message and errno.
struct LibNBDError: Error, CustomStringConvertible {
    let message: String
    let errno: Int32
    var description: String { "libnbd: \(message) (errno \(errno))" }

    static func current() -> LibNBDError {
        LibNBDError(message: nbd_get_error().map { String(cString: $0) } ?? "unknown error", errno: nbd_get_errno())
    }
}

/// A thin Swift wrapper over a libnbd handle; blocking calls.
final class LibNBDClient {
    let handle: OpaquePointer

    init() throws {
        guard let handle = nbd_create() else { throw LibNBDError.current() }
        self.handle = handle
    }

    deinit { nbd_close(handle) }

    private func check(_ result: Int32) throws {
        if result < 0 { throw LibNBDError.current() }
    }

    private func check64(_ result: Int64) throws -> Int64 {
        if result < 0 { throw LibNBDError.current() }
        return result
    }

    // MARK: Settings before connecting

    func setExportName(_ name: String) throws { try check(nbd_set_export_name(handle, name)) }
    func setStructuredReplies(_ on: Bool) throws { try check(nbd_set_request_structured_replies(handle, on)) }
    func setOptMode(_ on: Bool) throws { try check(nbd_set_opt_mode(handle, on)) }
    func setFullInfo(_ on: Bool) throws { try check(nbd_set_full_info(handle, on)) }
    func addMetaContext(_ name: String) throws { try check(nbd_add_meta_context(handle, name)) }
    func setStrictMode(_ flags: UInt32) throws { try check(nbd_set_strict_mode(handle, flags)) }
    /// Keeps libnbd's other checks but lets it send requests that are not
    /// aligned to the advertised minimum block size (512): the server serves
    /// them too, and the tests read at odd offsets on purpose.
    func allowUnalignedRequests() throws {
        try setStrictMode(nbd_get_strict_mode(handle) & ~UInt32(LIBNBD_STRICT_ALIGN))
    }
    func setTLS(_ mode: Int32) throws { try check(nbd_set_tls(handle, mode)) }

    // MARK: Connecting

    func connectTCP(port: Int) throws { try check(nbd_connect_tcp(handle, "127.0.0.1", "\(port)")) }
    func connectUnix(_ path: String) throws { try check(nbd_connect_unix(handle, path)) }
    func connectURI(_ uri: String) throws { try check(nbd_connect_uri(handle, uri)) }

    // MARK: Options (opt mode)

    func optList() throws -> [(name: String, description: String)] {
        final class Box { var items: [(String, String)] = [] }
        let box = Box()
        let unmanaged = Unmanaged.passRetained(box)
        let callback = nbd_list_callback(
            callback: { userData, name, description in
                guard let userData else { return -1 }
                let box = Unmanaged<Box>.fromOpaque(userData).takeUnretainedValue()
                box.items.append((name.map { String(cString: $0) } ?? "", description.map { String(cString: $0) } ?? ""))
                return 0
            },
            user_data: unmanaged.toOpaque(),
            free: { userData in
                if let userData { Unmanaged<Box>.fromOpaque(userData).release() }
            })
        try check(nbd_opt_list(handle, callback))
        return box.items
    }

    func optListMetaContext() throws -> [String] {
        final class Box { var items: [String] = [] }
        let box = Box()
        let unmanaged = Unmanaged.passRetained(box)
        let callback = nbd_context_callback(
            callback: { userData, name in
                guard let userData else { return -1 }
                Unmanaged<Box>.fromOpaque(userData).takeUnretainedValue().items.append(name.map { String(cString: $0) } ?? "")
                return 0
            },
            user_data: unmanaged.toOpaque(),
            free: { userData in
                if let userData { Unmanaged<Box>.fromOpaque(userData).release() }
            })
        try check(nbd_opt_list_meta_context(handle, callback))
        return box.items
    }

    func optInfo() throws { try check(nbd_opt_info(handle)) }
    func optGo() throws { try check(nbd_opt_go(handle)) }
    func optAbort() throws { try check(nbd_opt_abort(handle)) }

    // MARK: State and export information

    var isNegotiating: Bool { nbd_aio_is_negotiating(handle) == 1 }
    var isReady: Bool { nbd_aio_is_ready(handle) == 1 }
    var isClosed: Bool { nbd_aio_is_closed(handle) == 1 }
    func size() throws -> Int64 { try check64(nbd_get_size(handle)) }
    func isReadOnly() throws -> Bool { try check64(Int64(nbd_is_read_only(handle))) == 1 }
    func canFlush() throws -> Bool { try check64(Int64(nbd_can_flush(handle))) == 1 }
    func canCache() throws -> Bool { try check64(Int64(nbd_can_cache(handle))) == 1 }
    func canMultiConn() throws -> Bool { try check64(Int64(nbd_can_multi_conn(handle))) == 1 }
    func canDF() throws -> Bool { try check64(Int64(nbd_can_df(handle))) == 1 }
    func canTrim() throws -> Bool { try check64(Int64(nbd_can_trim(handle))) == 1 }
    func canMetaContext(_ name: String) throws -> Bool { try check64(Int64(nbd_can_meta_context(handle, name))) == 1 }
    func structuredRepliesNegotiated() throws -> Bool { try check64(Int64(nbd_get_structured_replies_negotiated(handle))) == 1 }
    func blockSize(_ which: Int32) throws -> Int64 { try check64(nbd_get_block_size(handle, which)) }

    func canonicalExportName() throws -> String {
        guard let name = nbd_get_canonical_export_name(handle) else { throw LibNBDError.current() }
        defer { free(name) }
        return String(cString: name)
    }

    func exportDescription() throws -> String {
        guard let text = nbd_get_export_description(handle) else { throw LibNBDError.current() }
        defer { free(text) }
        return String(cString: text)
    }

    // MARK: Commands

    func pread(count: Int, offset: UInt64, flags: UInt32 = 0) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0xAA, count: max(count, 1))
        try buffer.withUnsafeMutableBytes { raw in
            try check(nbd_pread(handle, raw.baseAddress, count, offset, flags))
        }
        return Array(buffer.prefix(count))
    }

    /// One chunk seen by `nbd_pread_structured`.
    struct Chunk: Equatable {
        var offset: UInt64
        var count: Int
        var status: UInt32
    }

    func preadStructured(count: Int, offset: UInt64, flags: UInt32 = 0) throws -> (bytes: [UInt8], chunks: [Chunk]) {
        final class Box { var chunks: [Chunk] = [] }
        let box = Box()
        let unmanaged = Unmanaged.passRetained(box)
        let callback = nbd_chunk_callback(
            callback: { userData, _, count, offset, status, _ in
                guard let userData else { return -1 }
                Unmanaged<Box>.fromOpaque(userData).takeUnretainedValue().chunks.append(Chunk(offset: offset, count: count, status: status))
                return 0
            },
            user_data: unmanaged.toOpaque(),
            free: { userData in
                if let userData { Unmanaged<Box>.fromOpaque(userData).release() }
            })
        var buffer = [UInt8](repeating: 0xAA, count: max(count, 1))
        try buffer.withUnsafeMutableBytes { raw in
            try check(nbd_pread_structured(handle, raw.baseAddress, count, offset, callback, flags))
        }
        return (Array(buffer.prefix(count)), box.chunks)
    }

    /// Block status entries as (length, flags) for one context.
    func blockStatus(count: UInt64, offset: UInt64, flags: UInt32 = 0) throws -> [(context: String, entries: [(UInt32, UInt32)])] {
        final class Box { var results: [(String, [(UInt32, UInt32)])] = [] }
        let box = Box()
        let unmanaged = Unmanaged.passRetained(box)
        let callback = nbd_extent_callback(
            callback: { userData, context, _, entries, count, _ in
                guard let userData else { return -1 }
                var pairs: [(UInt32, UInt32)] = []
                if let entries {
                    var i = 0
                    while i + 1 < count {
                        pairs.append((entries[i], entries[i + 1]))
                        i += 2
                    }
                }
                Unmanaged<Box>.fromOpaque(userData).takeUnretainedValue().results.append((context.map { String(cString: $0) } ?? "", pairs))
                return 0
            },
            user_data: unmanaged.toOpaque(),
            free: { userData in
                if let userData { Unmanaged<Box>.fromOpaque(userData).release() }
            })
        try check(nbd_block_status(handle, count, offset, callback, flags))
        return box.results
    }

    func pwrite(_ bytes: [UInt8], offset: UInt64) throws {
        try bytes.withUnsafeBytes { raw in
            try check(nbd_pwrite(handle, raw.baseAddress, raw.count, offset, 0))
        }
    }

    func flush() throws { try check(nbd_flush(handle, 0)) }
    func cache(count: UInt64, offset: UInt64) throws { try check(nbd_cache(handle, count, offset, 0)) }
    func trim(count: UInt64, offset: UInt64) throws { try check(nbd_trim(handle, count, offset, 0)) }
    func zero(count: UInt64, offset: UInt64) throws { try check(nbd_zero(handle, count, offset, 0)) }
    func shutdown() throws { try check(nbd_shutdown(handle, 0)) }
}
