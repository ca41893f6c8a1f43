/// The htree directory hash, "half MD4" variant with unsigned characters
/// (ext4 hash version 1 combined with the superblock's unsigned-hash flag).
///
/// Implemented from the published algorithm: the name is packed into 32-bit
/// words padded with a length-derived pattern, 32 bytes at a time, and mixed
/// with three rounds of the MD4 round functions into a state seeded from
/// `s_hash_seed`.
struct DirectoryHash {
    /// The 4-word seed (`s_hash_seed`); all zeros selects the MD4 constants.
    let seed: (UInt32, UInt32, UInt32, UInt32)

    init(seed: [UInt32]) {
        if seed.count == 4, seed.contains(where: { $0 != 0 }) {
            self.seed = (seed[0], seed[1], seed[2], seed[3])
        } else {
            self.seed = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476)
        }
    }

    /// Returns (major hash with bit 0 cleared, minor hash).
    func hash(_ name: [UInt8]) -> (UInt32, UInt32) {
        var a = seed.0, b = seed.1, c = seed.2, d = seed.3
        var words = [UInt32](repeating: 0, count: 8)
        var position = 0
        var remaining = name.count
        repeat {
            Self.pack(name, from: position, remaining: remaining, into: &words)
            Self.transform(&a, &b, &c, &d, words)
            remaining -= 32
            position += 32
        } while remaining > 0
        var major = b & ~1
        if major == 0x7FFF_FFFF << 1 { major = (0x7FFF_FFFF - 1) << 1 }
        return (major, c)
    }

    private static func pack(_ name: [UInt8], from start: Int, remaining: Int, into words: inout [UInt32]) {
        var pad = UInt32(truncatingIfNeeded: remaining) | UInt32(truncatingIfNeeded: remaining) << 8
        pad |= pad << 16
        var value = pad
        let length = min(remaining, 32)
        var slot = 0
        for i in 0..<length {
            value = UInt32(name[start + i]) &+ (value << 8)
            if i % 4 == 3 {
                words[slot] = value
                slot += 1
                value = pad
            }
        }
        if slot < 8 {
            words[slot] = value
            slot += 1
        }
        while slot < 8 {
            words[slot] = pad
            slot += 1
        }
    }

    @inline(__always) private static func rotl(_ x: UInt32, _ s: UInt32) -> UInt32 { (x << s) | (x >> (32 - s)) }

    private static func transform(_ a0: inout UInt32, _ b0: inout UInt32, _ c0: inout UInt32, _ d0: inout UInt32, _ x: [UInt32]) {
        var a = a0, b = b0, c = c0, d = d0
        func f(_ x: UInt32, _ y: UInt32, _ z: UInt32) -> UInt32 { z ^ (x & (y ^ z)) }
        func g(_ x: UInt32, _ y: UInt32, _ z: UInt32) -> UInt32 { (x & y) &+ ((x ^ y) & z) }
        func h(_ x: UInt32, _ y: UInt32, _ z: UInt32) -> UInt32 { x ^ y ^ z }
        let k2: UInt32 = 0o13240474631
        let k3: UInt32 = 0o15666365641
        // Round 1
        a = rotl(a &+ f(b, c, d) &+ x[0], 3)
        d = rotl(d &+ f(a, b, c) &+ x[1], 7)
        c = rotl(c &+ f(d, a, b) &+ x[2], 11)
        b = rotl(b &+ f(c, d, a) &+ x[3], 19)
        a = rotl(a &+ f(b, c, d) &+ x[4], 3)
        d = rotl(d &+ f(a, b, c) &+ x[5], 7)
        c = rotl(c &+ f(d, a, b) &+ x[6], 11)
        b = rotl(b &+ f(c, d, a) &+ x[7], 19)
        // Round 2
        a = rotl(a &+ g(b, c, d) &+ x[1] &+ k2, 3)
        d = rotl(d &+ g(a, b, c) &+ x[3] &+ k2, 5)
        c = rotl(c &+ g(d, a, b) &+ x[5] &+ k2, 9)
        b = rotl(b &+ g(c, d, a) &+ x[7] &+ k2, 13)
        a = rotl(a &+ g(b, c, d) &+ x[0] &+ k2, 3)
        d = rotl(d &+ g(a, b, c) &+ x[2] &+ k2, 5)
        c = rotl(c &+ g(d, a, b) &+ x[4] &+ k2, 9)
        b = rotl(b &+ g(c, d, a) &+ x[6] &+ k2, 13)
        // Round 3
        a = rotl(a &+ h(b, c, d) &+ x[3] &+ k3, 3)
        d = rotl(d &+ h(a, b, c) &+ x[7] &+ k3, 9)
        c = rotl(c &+ h(d, a, b) &+ x[2] &+ k3, 11)
        b = rotl(b &+ h(c, d, a) &+ x[6] &+ k3, 15)
        a = rotl(a &+ h(b, c, d) &+ x[1] &+ k3, 3)
        d = rotl(d &+ h(a, b, c) &+ x[5] &+ k3, 9)
        c = rotl(c &+ h(d, a, b) &+ x[0] &+ k3, 11)
        b = rotl(b &+ h(c, d, a) &+ x[4] &+ k3, 15)
        a0 = a0 &+ a
        b0 = b0 &+ b
        c0 = c0 &+ c
        d0 = d0 &+ d
    }
}
