/// Receives the bytes of one data object for ``CimTreeWriter/storeData(length:what:_:)``.
///
/// Small objects are gathered in memory (they go to the small-data region);
/// larger ones are written straight into a data region as they arrive.
public struct CimDataSink {
    enum Target {
        case memory([UInt8])
        case region(WriterStreamSink)
    }

    var target: Target
    /// Bytes received so far.
    public private(set) var count: UInt64 = 0

    /// Appends bytes.
    public mutating func write(_ raw: UnsafeRawBufferPointer) throws {
        switch target {
        case .memory(var bytes):
            target = .memory([])
            bytes.append(contentsOf: raw)
            target = .memory(bytes)
        case .region(var sink):
            try sink.write(raw)
            target = .region(sink)
        }
        count += UInt64(raw.count)
    }

    /// Appends `length` zero bytes; in a data region they become a hole.
    public mutating func writeZeros(_ length: UInt64) {
        switch target {
        case .memory(var bytes):
            target = .memory([])
            bytes.append(contentsOf: repeatElement(0, count: Int(length)))
            target = .memory(bytes)
        case .region(var sink):
            sink.skip(length)
            target = .region(sink)
        }
        count += length
    }
}
