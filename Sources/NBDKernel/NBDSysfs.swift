#if canImport(Glibc)
import Glibc
#endif

/// Reads /sys/block/nbdN/* and the mount table. `root` is "/" except in tests.
public struct NBDSysfs: Sendable {
    public var sysBlock: String
    public var mountinfo: String
    public var mounts: String

    public init(root: String = "") {
        sysBlock = root + "/sys/block"
        mountinfo = root + "/proc/self/mountinfo"
        mounts = root + "/proc/mounts"
    }

    /// Indexes of the nbd devices that exist.
    public func deviceIndexes() -> [UInt32] {
        guard let dir = opendir(sysBlock) else { return [] }
        defer { closedir(dir) }
        var out: [UInt32] = []
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix("nbd"), let n = UInt32(name.dropFirst(3)) { out.append(n) }
        }
        return out.sorted()
    }

    public func exists(_ index: UInt32) -> Bool { access("\(sysBlock)/nbd\(index)", F_OK) == 0 }

    /// /sys/block/nbdN/backend (set from NBD_ATTR_BACKEND_IDENTIFIER), nil when empty or absent.
    public func backend(_ index: UInt32) -> String? {
        guard let text = readSmallFile("\(sysBlock)/nbd\(index)/backend") else { return nil }
        let trimmed = text.trimmingTrailingNewlines()
        return trimmed.isEmpty ? nil : trimmed
    }

    /// Size in bytes (sysfs reports 512-byte sectors).
    public func sizeBytes(_ index: UInt32) -> UInt64? {
        readSmallFile("\(sysBlock)/nbd\(index)/size").flatMap { UInt64($0.trimmingTrailingNewlines()) }.map { $0 * 512 }
    }

    /// The receiving task's pid: present only while the device is connected.
    public func pid(_ index: UInt32) -> Int? {
        readSmallFile("\(sysBlock)/nbd\(index)/pid").flatMap { Int($0.trimmingTrailingNewlines()) }
    }

    /// A device that looks unused (no pid, size 0), for the ioctl path.
    public func firstFreeDevice() -> UInt32? {
        deviceIndexes().first { pid($0) == nil && (sizeBytes($0) ?? 0) == 0 }
    }

    /// Device whose backend equals `guid` (case-insensitive), a connected one first.
    public func device(withBackend guid: String) -> UInt32? {
        let matches = deviceIndexes().filter { backend($0)?.lowercased() == guid.lowercased() }
        return matches.first { pid($0) != nil } ?? matches.first
    }

    /// "major:minor" of the device and of its partitions.
    func deviceNumbers(_ index: UInt32) -> Set<String> {
        var out = Set<String>()
        let base = "\(sysBlock)/nbd\(index)"
        if let dev = readSmallFile("\(base)/dev") { out.insert(dev.trimmingTrailingNewlines()) }
        if let dir = opendir(base) {
            defer { closedir(dir) }
            while let ent = readdir(dir) {
                let name = withUnsafeBytes(of: ent.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name.hasPrefix("nbd\(index)p"), let dev = readSmallFile("\(base)/\(name)/dev") {
                    out.insert(dev.trimmingTrailingNewlines())
                }
            }
        }
        return out
    }

    /// Mount points of /dev/nbdN or its partitions: by device number from mountinfo, and by
    /// name from /proc/mounts (which also catches mounts made in another namespace's view).
    public func mountPoints(_ index: UInt32) -> [String] {
        var points: [String] = []
        let numbers = deviceNumbers(index)
        if let text = readSmallFile(mountinfo) {
            for line in text.split(separator: "\n") {
                let f = line.split(separator: " ")
                if f.count > 4, numbers.contains(String(f[2])) { points.append(Self.unescape(String(f[4]))) }
            }
        }
        if let text = readSmallFile(mounts) {
            let dev = "/dev/nbd\(index)"
            for line in text.split(separator: "\n") {
                let f = line.split(separator: " ")
                guard f.count > 1 else { continue }
                let src = String(f[0])
                if src == dev || (src.hasPrefix(dev + "p") && UInt32(src.dropFirst(dev.count + 1)) != nil) {
                    let mp = Self.unescape(String(f[1]))
                    if !points.contains(mp) { points.append(mp) }
                }
            }
        }
        return points
    }

    /// The mount table escapes space, tab, newline and backslash as \ooo.
    static func unescape(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 3 < b.count,
               let v = UInt8(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else {
                out.append(b[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; return out.isEmpty ? nil : String(decoding: out, as: UTF8.self) }
        if n == 0 { break }
        out += buf.prefix(n)
    }
    return String(decoding: out, as: UTF8.self)
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == " " || last == "\r" { s = s.dropLast() }
        return String(s)
    }
}
