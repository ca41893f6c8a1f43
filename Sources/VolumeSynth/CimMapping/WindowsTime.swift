import CimFS

/// FILETIME (100 ns ticks since 1601-01-01 UTC) to the synthesizers' Unix time.
enum WindowsTime {
    static func timestamp(_ fileTime: UInt64) -> Timestamp {
        let time = CimFileTime.unixTime(fileTime)
        return Timestamp(seconds: time.seconds, nanoseconds: time.nanoseconds)
    }
}
