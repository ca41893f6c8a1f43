#if canImport(Glibc)
import Glibc
#endif

/// A streaming reader of tar archives: ustar, PAX (`x` and `g` records) and
/// GNU long names (`L`, `K`). Only one 512-byte header, one PAX or long-name
/// record (bounded) and the caller's buffer are in memory at a time.
///
/// Every field is checked before it is used: header checksums, octal and
/// base-256 numbers, record lengths. A stream that ends inside a header or a
/// member's data is truncated; two zero blocks (or the end of the stream at
/// a header boundary) end the archive.
public final class TarReader {
    static let blockSize = 512
    /// Upper bound of one PAX header or GNU long name, so a hostile size cannot exhaust memory.
    static let maxMetadataRecord: UInt64 = 16 << 20

    private let source: ByteSource
    private var buffer: [UInt8]
    private var bufferStart = 0
    private var bufferEnd = 0
    /// Bytes of the uncompressed stream consumed so far.
    public private(set) var position: UInt64 = 0
    private var dataLeft: UInt64 = 0
    private var paddingLeft: UInt64 = 0
    private var globalPAX: [String: String] = [:]
    private var ended = false

    public init(source: ByteSource) {
        self.source = source
        buffer = [UInt8](repeating: 0, count: 1 << 16)
    }

    public var name: String { source.name }

    /// Fills the buffer with at least `count` bytes (count ≤ buffer size); false at the end of the stream.
    private func ensure(_ count: Int) throws -> Bool {
        if bufferEnd - bufferStart >= count { return true }
        if bufferStart > 0 {
            let remaining = bufferEnd - bufferStart
            buffer.withUnsafeMutableBytes { raw in
                if let base = raw.baseAddress { memmove(base, base + bufferStart, remaining) }
            }
            bufferStart = 0
            bufferEnd = remaining
        }
        while bufferEnd - bufferStart < count {
            let n = try buffer.withUnsafeMutableBytes { raw in
                try source.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[bufferEnd...]))
            }
            if n == 0 { return false }
            bufferEnd += n
        }
        return true
    }

    private func take(_ count: Int) -> ArraySlice<UInt8> {
        let slice = buffer[bufferStart..<bufferStart + count]
        bufferStart += count
        position += UInt64(count)
        return slice
    }

    /// Skips `count` bytes of the stream.
    private func skip(_ count: UInt64, what: String) throws {
        var left = count
        while left > 0 {
            if bufferStart == bufferEnd {
                guard try ensure(1) else { throw ImportError.truncated(input: name, offset: position, what: what) }
            }
            let n = Int(min(left, UInt64(bufferEnd - bufferStart)))
            bufferStart += n
            position += UInt64(n)
            left -= UInt64(n)
        }
    }

    /// Reads data of the current member; 0 once it is all read.
    public func readData(into target: UnsafeMutableRawBufferPointer) throws -> Int {
        guard dataLeft > 0, target.count > 0 else { return 0 }
        if bufferStart == bufferEnd {
            guard try ensure(1) else { throw ImportError.truncated(input: name, offset: position, what: "member data (\(dataLeft) bytes missing)") }
        }
        let n = Int(min(dataLeft, UInt64(min(target.count, bufferEnd - bufferStart))))
        buffer.withUnsafeBytes { raw in
            if let base = raw.baseAddress { target.baseAddress?.copyMemory(from: base + bufferStart, byteCount: n) }
        }
        bufferStart += n
        position += UInt64(n)
        dataLeft -= UInt64(n)
        return n
    }

    /// The whole data of the current (metadata) member, at most `limit` bytes.
    private func readRecord(size: UInt64, what: String) throws -> [UInt8] {
        guard size <= TarReader.maxMetadataRecord else {
            throw ImportError.badTar(input: name, offset: position, problem: "\(what) of \(size) bytes is over the \(TarReader.maxMetadataRecord >> 20) MiB limit")
        }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        var done = 0
        while done < bytes.count {
            let n = try bytes.withUnsafeMutableBytes { raw in
                try readData(into: UnsafeMutableRawBufferPointer(rebasing: raw[done...]))
            }
            if n == 0 { throw ImportError.truncated(input: name, offset: position, what: what) }
            done += n
        }
        try skip(paddingLeft, what: what)
        paddingLeft = 0
        return bytes
    }

    /// The next member, or nil at the end of the archive. Data the caller did
    /// not read of the previous member is skipped.
    public func next() throws -> TarEntry? {
        guard !ended else { return nil }
        try skip(dataLeft + paddingLeft, what: "member data")
        dataLeft = 0
        paddingLeft = 0
        var pax: [String: String] = [:]
        var longName: String?
        var longLink: String?
        var firstOffset: UInt64?
        while true {
            let headerOffset = position
            guard try ensure(TarReader.blockSize) else {
                if bufferEnd - bufferStart == 0 { ended = true; return nil }
                throw ImportError.truncated(input: name, offset: position, what: "tar header")
            }
            let header = Array(take(TarReader.blockSize))
            if header.allSatisfy({ $0 == 0 }) {
                // End of archive (one zero block is enough; a second is read if present).
                if try ensure(TarReader.blockSize), buffer[bufferStart..<bufferStart + TarReader.blockSize].allSatisfy({ $0 == 0 }) {
                    _ = take(TarReader.blockSize)
                }
                ended = true
                if firstOffset != nil {
                    throw ImportError.badTar(input: name, offset: headerOffset, problem: "the archive ends after a PAX or long-name record with no member")
                }
                return nil
            }
            if firstOffset == nil { firstOffset = headerOffset }
            try TarReader.checkChecksum(header, input: name, offset: headerOffset)
            let type = header[156]
            let size = try TarReader.number(header, 124, 12, field: "size", input: name, offset: headerOffset)
            guard size <= UInt64(Int64.max) else {
                throw ImportError.badTar(input: name, offset: headerOffset, problem: "size \(size) is out of range")
            }
            dataLeft = size
            paddingLeft = (UInt64(TarReader.blockSize) - size % UInt64(TarReader.blockSize)) % UInt64(TarReader.blockSize)
            switch type {
            case UInt8(ascii: "x"), UInt8(ascii: "g"):
                let record = try readRecord(size: size, what: "PAX header")
                let parsed = try TarReader.parsePAX(record, input: name, offset: headerOffset)
                if type == UInt8(ascii: "g") {
                    globalPAX.merge(parsed) { $1 }
                } else {
                    pax.merge(parsed) { $1 }
                }
                continue
            case UInt8(ascii: "L"), UInt8(ascii: "K"):
                let record = try readRecord(size: size, what: "GNU long name")
                let text = try TarReader.text(record.prefix { $0 != 0 }, field: "GNU long name", input: name, offset: headerOffset)
                if type == UInt8(ascii: "L") { longName = text } else { longLink = text }
                continue
            default:
                break
            }
            var path: String
            if let paxPath = pax["path"] {
                path = paxPath
            } else if let longName {
                path = longName
            } else {
                path = try TarReader.text(TarReader.field(header, 0, 100), field: "name", input: name, offset: headerOffset)
                let magic = Array(header[257..<263])
                if magic == Array("ustar\0".utf8) || magic == Array("ustar ".utf8) {
                    let prefix = try TarReader.text(TarReader.field(header, 345, 155), field: "prefix", input: name, offset: headerOffset)
                    if !prefix.isEmpty && magic == Array("ustar\0".utf8) { path = prefix + "/" + path }
                }
            }
            let linkName = try pax["linkpath"] ?? longLink
                ?? TarReader.text(TarReader.field(header, 157, 100), field: "link name", input: name, offset: headerOffset)
            if let paxSize = pax["size"] {
                guard let value = UInt64(paxSize), value <= UInt64(Int64.max) else {
                    throw ImportError.badTar(input: name, offset: headerOffset, problem: "PAX size \"\(paxSize)\" is not a number")
                }
                dataLeft = value
                paddingLeft = (UInt64(TarReader.blockSize) - value % UInt64(TarReader.blockSize)) % UInt64(TarReader.blockSize)
            }
            let kind: TarEntry.Kind
            switch type {
            case UInt8(ascii: "0"), 0, UInt8(ascii: "7"): kind = .regular
            case UInt8(ascii: "1"): kind = .hardLink
            case UInt8(ascii: "2"): kind = .symbolicLink
            case UInt8(ascii: "5"): kind = .directory
            default: kind = .other(type)
            }
            let mtime = try TarReader.number(header, 136, 12, field: "mtime", input: name, offset: headerOffset)
            var records = globalPAX
            records.merge(pax) { $1 }
            return TarEntry(path: path, linkName: linkName, kind: kind, size: dataLeft,
                            headerModificationTime: Int64(truncatingIfNeeded: mtime), pax: records, offset: firstOffset ?? headerOffset)
        }
    }

    static func field(_ header: [UInt8], _ start: Int, _ length: Int) -> ArraySlice<UInt8> {
        header[start..<start + length].prefix { $0 != 0 }
    }

    static func text(_ bytes: ArraySlice<UInt8>, field: String, input: String, offset: UInt64) throws -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ImportError.badTar(input: input, offset: offset, problem: "\(field) is not valid UTF-8")
        }
        return text
    }

    /// Octal (NUL/space terminated) or base-256 (high bit set) numbers.
    static func number(_ header: [UInt8], _ start: Int, _ length: Int, field: String, input: String, offset: UInt64) throws -> UInt64 {
        let bytes = header[start..<start + length]
        if let first = bytes.first, first & 0x80 != 0 {
            guard first & 0x40 == 0 else {
                throw ImportError.badTar(input: input, offset: offset, problem: "\(field) is a negative base-256 number")
            }
            var value: UInt64 = UInt64(first & 0x3F)
            for byte in bytes.dropFirst() {
                guard value >> 56 == 0 else { throw ImportError.badTar(input: input, offset: offset, problem: "\(field) overflows 64 bits") }
                value = value << 8 | UInt64(byte)
            }
            return value
        }
        var value: UInt64 = 0
        var seenDigit = false
        for byte in bytes {
            if byte == 0 || byte == 0x20 {
                if seenDigit { break } else { continue }
            }
            guard byte >= 0x30, byte <= 0x37 else {
                throw ImportError.badTar(input: input, offset: offset, problem: "\(field) field is not an octal number")
            }
            guard value >> 61 == 0 else { throw ImportError.badTar(input: input, offset: offset, problem: "\(field) overflows 64 bits") }
            value = value << 3 | UInt64(byte - 0x30)
            seenDigit = true
        }
        return value
    }

    static func checkChecksum(_ header: [UInt8], input: String, offset: UInt64) throws {
        let stored = try number(header, 148, 8, field: "checksum", input: input, offset: offset)
        var unsigned: Int64 = 0
        var signed: Int64 = 0
        for (index, byte) in header.enumerated() {
            let value = (148..<156).contains(index) ? 0x20 : byte
            unsigned += Int64(value)
            signed += Int64(Int8(bitPattern: value))
        }
        guard Int64(stored) == unsigned || Int64(stored) == signed else {
            throw ImportError.badTar(input: input, offset: offset, problem: "header checksum \(stored) does not match \(unsigned) (not a tar stream, or a damaged one)")
        }
    }

    /// PAX records: `LENGTH KEY=VALUE\n`, LENGTH counting the whole record.
    static func parsePAX(_ record: [UInt8], input: String, offset: UInt64) throws -> [String: String] {
        var result: [String: String] = [:]
        var index = 0
        while index < record.count {
            var length = 0
            var cursor = index
            while cursor < record.count, record[cursor] >= 0x30, record[cursor] <= 0x39, cursor - index < 10 {
                length = length * 10 + Int(record[cursor] - 0x30)
                cursor += 1
            }
            guard cursor < record.count, record[cursor] == 0x20, cursor > index, length > cursor - index + 1,
                  index + length <= record.count, record[index + length - 1] == 0x0A else {
                throw ImportError.badTar(input: input, offset: offset, problem: "malformed PAX record at byte \(index) of the PAX header")
            }
            let body = record[(cursor + 1)..<(index + length - 1)]
            guard let equals = body.firstIndex(of: UInt8(ascii: "=")) else {
                throw ImportError.badTar(input: input, offset: offset, problem: "PAX record at byte \(index) has no '='")
            }
            let key = try text(body[body.startIndex..<equals], field: "PAX key", input: input, offset: offset)
            let value = try text(body[(equals + 1)...], field: "PAX value of \(key)", input: input, offset: offset)
            result[key] = value
            index += length
        }
        return result
    }
}
