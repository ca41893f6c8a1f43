#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The keys of a pre-shared-key file in psktool's format: one
/// `username:hexkey` per line (GnuTLS's and nbdkit's `--tls-psk` format).
///
/// Blank lines are skipped and a trailing CR is ignored. Every other line must
/// hold a username of 1-128 bytes (BoringSSL's identity limit) without NUL,
/// then a colon, then 1-256 bytes of key as an even number of hex digits.
/// Errors name the file and line and never repeat key material.
struct PSKKeyFile: Sendable, Equatable {
    /// Largest file read: far more than any list of keys needs.
    static let maximumFileSize = 1 << 20
    static let maximumIdentityLength = 128
    static let maximumKeyLength = 256

    let path: String
    /// Username → key.
    let keys: [String: [UInt8]]

    /// Reads and parses the file at `path`.
    init(path: String) throws {
        try self.init(path: path, contents: try Self.readFile(path))
    }

    /// Parses `contents` as the file at `path`.
    init(path: String, contents: [UInt8]) throws {
        var keys: [String: [UInt8]] = [:]
        var firstLine: [String: Int] = [:]
        for (index, rawLine) in contents.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            var line = rawLine[...]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
            func bad(_ problem: String) -> NBDTLSError {
                .malformedPSKLine(path: path, line: lineNumber, problem: problem)
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { throw bad("no colon") }
            let nameBytes = line[..<colon]
            let hex = line[line.index(after: colon)...]
            guard !nameBytes.isEmpty else { throw bad("empty username") }
            guard nameBytes.count <= Self.maximumIdentityLength else {
                throw bad("username longer than \(Self.maximumIdentityLength) bytes")
            }
            guard !nameBytes.contains(0), let name = String(validating: nameBytes, as: UTF8.self) else {
                throw bad("username is not UTF-8 text")
            }
            guard let key = Self.decodeHex(hex) else { throw bad("key of user \"\(name)\" is not an even number of hex digits") }
            guard !key.isEmpty, key.count <= Self.maximumKeyLength else {
                throw bad("key of user \"\(name)\" must be 1 to \(Self.maximumKeyLength) bytes")
            }
            if let first = firstLine[name] {
                throw bad("user \"\(name)\" appears again (first on line \(first))")
            }
            firstLine[name] = lineNumber
            keys[name] = key
        }
        guard !keys.isEmpty else { throw NBDTLSError.emptyPSKFile(path: path) }
        self.path = path
        self.keys = keys
    }

    private static func decodeHex(_ digits: ArraySlice<UInt8>) -> [UInt8]? {
        guard digits.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = digits.startIndex
        while index < digits.endIndex {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func readFile(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NBDTLSError.unreadablePSKFile(path: path, errno: errno) }
        defer { close(fd) }
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw NBDTLSError.unreadablePSKFile(path: path, errno: errno)
            }
            if count == 0 { return contents }
            contents += chunk[..<count]
            guard contents.count <= maximumFileSize else {
                throw NBDTLSError.oversizedPSKFile(path: path, limit: maximumFileSize)
            }
        }
    }
}
