/// FILETIME (100 ns ticks since 1601-01-01 UTC) to Unix time.
enum WindowsTime {
    /// Ticks between 1601-01-01 and 1970-01-01.
    static let epochDifference: Int64 = 116_444_736_000_000_000

    static func timestamp(_ fileTime: UInt64) -> Timestamp {
        // FILETIMEs above Int64.max are not meaningful; clamp before converting.
        let ticks = Int64(clamping: fileTime) - epochDifference
        var seconds = ticks / 10_000_000
        var remainder = ticks % 10_000_000
        if remainder < 0 {
            seconds -= 1
            remainder += 10_000_000
        }
        return Timestamp(seconds: seconds, nanoseconds: UInt32(remainder) * 100)
    }
}
