#if canImport(Glibc)
import Glibc
#endif
import CZlib
import CZstd
import Crypto

/// The plain bytes of a possibly compressed stream: gzip (zlib, members may
/// follow one another), zstd (frames may follow one another) or none,
/// recognised from the first bytes. Optionally hashes what comes out (a
/// layer's diff_id is the SHA-256 of its uncompressed tar).
///
/// Damaged or truncated input is an error naming the compressed byte offset;
/// a stream that ends inside a gzip member or zstd frame is truncated.
public final class DecompressingSource: ByteSource {
    public enum Format: String, Sendable { case none, gzip, zstd }

    public var name: String { inner.name }
    public private(set) var format: Format = .none
    private let inner: ByteSource
    private var input: UnsafeMutableRawBufferPointer
    private var inputStart = 0
    private var inputEnd = 0
    private var inputConsumed: UInt64 = 0
    private var innerEnded = false
    private var finished = false
    private var zlib = z_stream()
    private var zlibReady = false
    private var zstd: OpaquePointer?
    private var frameOpen = false
    private var hasher: SHA256?
    /// Uncompressed bytes produced so far.
    public private(set) var bytesProduced: UInt64 = 0

    public init(_ inner: ByteSource, hashing: Bool = false) throws {
        self.inner = inner
        input = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        if hashing { hasher = SHA256() }
        try fill(minimum: 4)
        let head = Array(UnsafeRawBufferPointer(rebasing: input[inputStart..<inputEnd]).prefix(6))
        if head.count >= 2, head[0] == 0x1F, head[1] == 0x8B {
            format = .gzip
            guard inflateInit2_(&zlib, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw ImportError.badCompression(input: inner.name, offset: 0, detail: "zlib could not be initialised")
            }
            zlibReady = true
        } else if head.count >= 4, head[0] == 0x28, head[1] == 0xB5, head[2] == 0x2F, head[3] == 0xFD {
            format = .zstd
            guard let context = ZSTD_createDStream() else {
                throw ImportError.badCompression(input: inner.name, offset: 0, detail: "zstd could not be initialised")
            }
            zstd = context
            ZSTD_initDStream(context)
        } else if head.count >= 6, head[0] == 0xFD, head.starts(with: [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) {
            throw ImportError.badCompression(input: inner.name, offset: 0, detail: "xz compression is not supported (use gzip, zstd or none)")
        } else if head.count >= 3, head[0] == 0x42, head[1] == 0x5A, head[2] == 0x68 {
            throw ImportError.badCompression(input: inner.name, offset: 0, detail: "bzip2 compression is not supported (use gzip, zstd or none)")
        }
    }

    deinit {
        if zlibReady { inflateEnd(&zlib) }
        if let zstd { ZSTD_freeDStream(zstd) }
        input.deallocate()
    }

    /// `sha256:<hex>` of the uncompressed bytes (hashing must have been asked for).
    public func digest() -> String? {
        hasher.map { "sha256:" + Hex.string($0.finalize()) }
    }

    /// Reads from the inner source until at least `minimum` bytes are buffered or it ends.
    private func fill(minimum: Int) throws {
        if inputStart == inputEnd { inputStart = 0; inputEnd = 0 }
        if inputStart > 0 && input.count - inputEnd < minimum {
            let count = inputEnd - inputStart
            if let base = input.baseAddress { memmove(base, base + inputStart, count) }
            inputStart = 0
            inputEnd = count
        }
        while !innerEnded && inputEnd - inputStart < minimum && inputEnd < input.count {
            let n = try inner.read(into: UnsafeMutableRawBufferPointer(rebasing: input[inputEnd...]))
            if n == 0 { innerEnded = true } else { inputEnd += n }
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard buffer.count > 0, !finished else { return 0 }
        let produced: Int
        switch format {
        case .none:
            if inputStart == inputEnd { try fill(minimum: 1) }
            let n = min(buffer.count, inputEnd - inputStart)
            if n == 0 { finished = true; return 0 }
            buffer.baseAddress?.copyMemory(from: UnsafeRawPointer(input.baseAddress! + inputStart), byteCount: n)
            inputStart += n
            inputConsumed += UInt64(n)
            produced = n
        case .gzip: produced = try inflate(into: buffer)
        case .zstd: produced = try decompressZstd(into: buffer)
        }
        if produced > 0 {
            hasher?.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<produced]))
            bytesProduced += UInt64(produced)
        } else {
            finished = true
        }
        return produced
    }

    private func inflate(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            if inputStart == inputEnd { try fill(minimum: 1) }
            let available = inputEnd - inputStart
            if available == 0 {
                if frameOpen {
                    throw ImportError.truncated(input: inner.name, offset: inputConsumed, what: "the gzip stream ends inside a member")
                }
                return 0
            }
            if !frameOpen {
                // A new member starts here (the first one, or one after another).
                frameOpen = true
                if inputConsumed > 0 { inflateReset(&zlib) }
            }
            zlib.next_in = input.baseAddress!.advanced(by: inputStart).assumingMemoryBound(to: Bytef.self)
            zlib.avail_in = UInt32(available)
            zlib.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
            zlib.avail_out = UInt32(min(buffer.count, Int(UInt32.max)))
            let status = CZlib.inflate(&zlib, Z_NO_FLUSH)
            let used = available - Int(zlib.avail_in)
            inputStart += used
            inputConsumed += UInt64(used)
            let produced = min(buffer.count, Int(UInt32.max)) - Int(zlib.avail_out)
            switch status {
            case Z_STREAM_END:
                frameOpen = false
                if produced > 0 { return produced }
            case Z_OK, Z_BUF_ERROR:
                if produced > 0 { return produced }
                if used == 0 && status == Z_BUF_ERROR {
                    try fill(minimum: inputEnd - inputStart + 1)
                    if innerEnded && inputEnd - inputStart == available {
                        throw ImportError.truncated(input: inner.name, offset: inputConsumed, what: "the gzip stream ends inside a member")
                    }
                }
            default:
                let message = zlib.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                throw ImportError.badCompression(input: inner.name, offset: inputConsumed, detail: message)
            }
        }
    }

    private func decompressZstd(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let zstd else { return 0 }
        while true {
            if inputStart == inputEnd { try fill(minimum: 1) }
            let available = inputEnd - inputStart
            if available == 0 {
                if frameOpen {
                    throw ImportError.truncated(input: inner.name, offset: inputConsumed, what: "the zstd stream ends inside a frame")
                }
                return 0
            }
            var source = ZSTD_inBuffer(src: UnsafeRawPointer(input.baseAddress! + inputStart), size: available, pos: 0)
            var target = ZSTD_outBuffer(dst: buffer.baseAddress, size: buffer.count, pos: 0)
            let hint = ZSTD_decompressStream(zstd, &target, &source)
            if ZSTD_isError(hint) != 0 {
                throw ImportError.badCompression(input: inner.name, offset: inputConsumed, detail: String(cString: ZSTD_getErrorName(hint)))
            }
            inputStart += source.pos
            inputConsumed += UInt64(source.pos)
            frameOpen = hint != 0
            if target.pos > 0 { return target.pos }
            if source.pos == 0 && hint != 0 {
                try fill(minimum: available + 1)
                if innerEnded && inputEnd - inputStart == available {
                    throw ImportError.truncated(input: inner.name, offset: inputConsumed, what: "the zstd stream ends inside a frame")
                }
            }
        }
    }
}
