/// One file or directory of an in-memory tree written by ``CimTreeWriter``.
///
/// Importers (container layers, MSIX packages) build such a tree while they
/// stream their input: metadata lives here, file data is already stored in the
/// image being written (or in a parent image) and referenced by ``CimStream``.
/// A node that appears under several names is a hard link: one FileID.
public final class CimTreeNode {
    public enum Kind: Sendable, Equatable { case directory, file }

    public let kind: Kind
    /// The Windows attribute word. READONLY, HIDDEN, SYSTEM, ARCHIVE and
    /// SPARSE_FILE are stored; DIRECTORY and REPARSE_POINT follow from the
    /// node's kind and reparse data; other bits have no place in a CIM entry.
    public var attributes: UInt32 = 0
    /// FILETIME ticks (100 ns since 1601-01-01 UTC).
    public var creationTime: UInt64 = 0
    public var lastWriteTime: UInt64 = 0
    public var changeTime: UInt64 = 0
    public var lastAccessTime: UInt64 = 0
    /// Self-relative security descriptor, or nil for none.
    public var securityDescriptor: [UInt8]?
    /// FILE_FULL_EA_INFORMATION chain (at most 65535 bytes), or nil.
    public var extendedAttributes: [UInt8]?
    /// The whole REPARSE_DATA_BUFFER (tag first), or nil.
    public var reparseData: [UInt8]?
    /// The default stream of a file (ignored for directories).
    public var data = CimStream(dataOffset: 0, length: 0, rawType: CimFormat.StreamType.data.rawValue, isSparse: false)
    /// Alternate data streams, at most one per case-insensitive name.
    public private(set) var alternateStreams: [(name: [UInt16], stream: CimStream)] = []
    /// Directory entries keyed by ``CimTreeNode/key(_:)``.
    public private(set) var children: [[UInt16]: (name: [UInt16], node: CimTreeNode)] = [:]

    public init(kind: Kind) { self.kind = kind }

    /// The case-insensitive form of a name (each UTF-16 unit through the upcase
    /// table the writer stores): two names with one key cannot share a directory.
    public static func key(_ name: [UInt16]) -> [UInt16] { WriterUpcaseTable.upcased(name) }

    /// The entry whose name equals `name` case-insensitively.
    public func child(named name: [UInt16]) -> (name: [UInt16], node: CimTreeNode)? {
        children[CimTreeNode.key(name)]
    }

    /// Adds or replaces the entry of that (case-insensitive) name.
    public func setChild(_ node: CimTreeNode, named name: [UInt16]) {
        children[CimTreeNode.key(name)] = (name, node)
    }

    /// Removes the entry of that name; returns it.
    @discardableResult
    public func removeChild(named name: [UInt16]) -> CimTreeNode? {
        children.removeValue(forKey: CimTreeNode.key(name))?.node
    }

    /// Adds or replaces the alternate stream of that (case-insensitive) name.
    public func setAlternateStream(_ stream: CimStream, named name: [UInt16]) {
        let key = CimTreeNode.key(name)
        alternateStreams.removeAll { CimTreeNode.key($0.name) == key }
        alternateStreams.append((name, stream))
    }

    /// Drops every alternate stream.
    public func removeAlternateStreams() { alternateStreams.removeAll() }

    /// A new node of the same kind with the same metadata, data and streams
    /// (directory entries are not copied).
    public func copyMetadata(kind newKind: Kind? = nil) -> CimTreeNode {
        let copy = CimTreeNode(kind: newKind ?? kind)
        copy.attributes = attributes
        copy.creationTime = creationTime
        copy.lastWriteTime = lastWriteTime
        copy.changeTime = changeTime
        copy.lastAccessTime = lastAccessTime
        copy.securityDescriptor = securityDescriptor
        copy.extendedAttributes = extendedAttributes
        copy.reparseData = reparseData
        copy.data = data
        copy.alternateStreams = alternateStreams
        return copy
    }
}
