/// The upcase table the writer stores, and the name order it implies.
///
/// For every BMP code unit the table holds its simple uppercase: Swift's
/// `Unicode.Scalar.Properties.uppercaseMapping` when that is exactly one BMP
/// scalar, otherwise the unit itself (multi-scalar mappings such as ß → SS
/// cannot be expressed per unit). Surrogate code units map to themselves.
enum WriterUpcaseTable {
    static let table: [UInt16] = {
        var result = [UInt16](repeating: 0, count: CimFormat.upcaseTableEntries)
        for unit in 0..<CimFormat.upcaseTableEntries {
            result[unit] = UInt16(unit)
            guard let scalar = Unicode.Scalar(UInt32(unit)) else { continue }  // surrogates
            let upper = scalar.properties.uppercaseMapping.unicodeScalars
            if upper.count == 1, let first = upper.first, first.value <= 0xFFFF {
                result[unit] = UInt16(first.value)
            }
        }
        return result
    }()

    /// The table as it is stored: 65536 little-endian u16 values.
    static var bytes: [UInt8] {
        var buffer = WriterByteBuffer(capacity: CimFormat.upcaseTableEntries * 2)
        for value in table { buffer.u16(value) }
        return buffer.bytes
    }

    static func upcased(_ name: [UInt16]) -> [UInt16] { name.map { table[Int($0)] } }

    /// Code-unit order after upcasing, as the link tables are sorted.
    static func less(_ a: [UInt16], _ b: [UInt16]) -> Bool {
        let upperA = upcased(a), upperB = upcased(b)
        return upperA.lexicographicallyPrecedes(upperB)
    }
}
