/// Conversion between Linux timestamps and Windows FILETIME.
///
/// FILETIME counts 100-nanosecond ticks since 1601-01-01 UTC. Linux times
/// keep nanoseconds, so the last two decimal digits are dropped (truncated);
/// times before 1601 clamp to 0, times past the FILETIME range clamp to its maximum.
enum WriterFileTime {
    static let epochDifference = CimFileTime.epochDifference
    static let ticksPerSecond = CimFileTime.ticksPerSecond

    static func ticks(_ time: WriterTimespec) -> UInt64 {
        let seconds = time.seconds.addingReportingOverflow(epochDifference)
        if seconds.overflow { return UInt64(Int64.max) }
        if seconds.partialValue < 0 { return 0 }
        let scaled = seconds.partialValue.multipliedReportingOverflow(by: ticksPerSecond)
        if scaled.overflow { return UInt64(Int64.max) }
        let total = scaled.partialValue.addingReportingOverflow(Int64(time.nanoseconds % 1_000_000_000) / 100)
        return total.overflow ? UInt64(Int64.max) : UInt64(total.partialValue)
    }

    static func timespec(_ ticks: UInt64) -> WriterTimespec {
        let time = CimFileTime.unixTime(ticks)
        return WriterTimespec(seconds: time.seconds, nanoseconds: time.nanoseconds)
    }
}
