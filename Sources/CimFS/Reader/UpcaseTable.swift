/// The image's upcase table: the uppercase of each UTF-16 code unit.
public struct UpcaseTable: Sendable {
    let table: [UInt16]

    init(table: [UInt16]) {
        self.table = table
    }

    /// The identity table, for images that must be compared without one.
    static let identity = UpcaseTable(table: (0...0xFFFF).map { UInt16($0) })

    public subscript(unit: UInt16) -> UInt16 {
        // The table always has 65536 entries (checked at load), so any u16 is in range.
        table.withUnsafeBufferPointer { $0[Int(unit)] }
    }

    /// Upper-cases every unit of a name.
    public func upcase(_ name: [UInt16]) -> [UInt16] { name.map { self[$0] } }
}
