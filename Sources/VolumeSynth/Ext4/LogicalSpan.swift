/// A run of allocated logical blocks of a file (data present somewhere in each block).
struct LogicalSpan: Equatable {
    var start: UInt64
    var count: UInt64
}
