/// A forward-only stream of bytes (a file, stdin, a decompressor).
public protocol ByteSource: AnyObject {
    /// Reads up to `buffer.count` bytes; 0 means the end of the stream.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// A name for errors (a path, `-` for stdin, a blob digest).
    var name: String { get }
}
