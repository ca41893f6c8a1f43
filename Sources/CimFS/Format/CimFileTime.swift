/// Windows FILETIME: 100-nanosecond ticks since 1601-01-01 UTC.
public enum CimFileTime {
    /// Seconds from 1601-01-01 to 1970-01-01.
    public static let epochDifference: Int64 = 11_644_473_600
    public static let ticksPerSecond: Int64 = 10_000_000

    /// The Unix time (seconds since 1970, nanoseconds) of a FILETIME. Values
    /// above `Int64.max` ticks are clamped to it.
    public static func unixTime(_ ticks: UInt64) -> (seconds: Int64, nanoseconds: UInt32) {
        let clamped = Int64(min(ticks, UInt64(Int64.max)))
        return (clamped / ticksPerSecond - epochDifference, UInt32(clamped % ticksPerSecond) * 100)
    }
}
