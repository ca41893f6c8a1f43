/// One extent: `length` blocks from logical block `logical` at physical `physical`.
struct Extent: Equatable {
    var logical: UInt32
    var physical: UInt64
    var length: UInt32
}
