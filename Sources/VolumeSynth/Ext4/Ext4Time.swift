/// Encodes a ``Timestamp`` as an ext4 32-bit seconds field plus `*_extra`.
///
/// ext4 stores the low 32 bits of the seconds as a signed value and two
/// "epoch" bits in `*_extra` (bits 0-1) extending the range forwards, with the
/// nanoseconds in bits 2-31. Times outside what e2fsck accepts are clamped:
/// before 1901-12-13T20:45:52Z becomes that instant, and after
/// 2310-04-04T00:00Z-ish (the last second whose encoding e2fsck does not
/// mistake for a pre-1970 time, 3·2^32 − 2^31 − 1) becomes that second with
/// 999 999 999 ns. Nanoseconds above 999 999 999 are clamped too.
struct Ext4Time {
    let seconds: UInt32
    let extra: UInt32

    static let minimumSeconds: Int64 = -(1 << 31)
    static let maximumSeconds: Int64 = 3 * (1 << 32) - (1 << 31) - 1

    init(_ time: Timestamp) {
        var s = time.seconds
        var ns = min(time.nanoseconds, 999_999_999)
        if s < Self.minimumSeconds {
            s = Self.minimumSeconds
            ns = 0
        } else if s > Self.maximumSeconds {
            s = Self.maximumSeconds
            ns = 999_999_999
        }
        let low = Int32(truncatingIfNeeded: s)
        let epoch = UInt32(truncatingIfNeeded: (s - Int64(low)) >> 32) & 3
        seconds = UInt32(bitPattern: low)
        extra = epoch | (ns << 2)
    }
}
