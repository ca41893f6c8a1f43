/// One member of a tar stream, its PAX and GNU long-name records applied.
public struct TarEntry: Sendable {
    public enum Kind: Sendable, Equatable {
        case regular, hardLink, symbolicLink, directory
        /// Character or block device, FIFO, GNU sparse file: not importable.
        case other(UInt8)
    }

    /// The member's path exactly as the archive gives it.
    public var path: String
    /// Target of a hard or symbolic link.
    public var linkName: String
    public var kind: Kind
    /// Bytes of data that follow the header.
    public var size: UInt64
    /// Modification time from the header (seconds), used when PAX has none.
    public var headerModificationTime: Int64
    /// PAX records of the member (global ones first, the member's own override them).
    public var pax: [String: String]
    /// Byte offset of the member's first header in the uncompressed stream.
    public var offset: UInt64
}
