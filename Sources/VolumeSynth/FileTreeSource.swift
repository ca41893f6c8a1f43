import CimFS

/// A point in time with nanosecond precision, seconds counted from the Unix epoch.
public struct Timestamp: Sendable, Equatable, Hashable {
    public var seconds: Int64
    public var nanoseconds: UInt32

    public init(seconds: Int64, nanoseconds: UInt32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }
}

/// The kind of a node in a ``FileTreeSource``.
public enum NodeKind: Sendable, Equatable {
    case directory
    case regularFile
    case symbolicLink
}

/// What a filesystem synthesizer needs to know about one node, compactly.
public struct NodeAttributes: Sendable, Equatable {
    public var kind: NodeKind
    /// Permission bits only (e.g. 0o755); the type bits come from `kind`.
    public var permissions: UInt16
    public var uid: UInt32
    public var gid: UInt32
    /// Regular file: data size in bytes. Symlink: target length. Directory: ignored.
    public var size: UInt64
    public var accessTime: Timestamp
    public var modificationTime: Timestamp
    public var changeTime: Timestamp
    public var creationTime: Timestamp

    public init(kind: NodeKind, permissions: UInt16, uid: UInt32, gid: UInt32, size: UInt64,
                accessTime: Timestamp, modificationTime: Timestamp, changeTime: Timestamp, creationTime: Timestamp) {
        self.kind = kind
        self.permissions = permissions
        self.uid = uid
        self.gid = gid
        self.size = size
        self.accessTime = accessTime
        self.modificationTime = modificationTime
        self.changeTime = changeTime
        self.creationTime = creationTime
    }
}

/// One entry of a directory in a ``FileTreeSource``.
public struct ChildEntry: Sendable, Equatable {
    /// The name as it will appear on Linux: valid UTF-8, 1...255 bytes, no `/` or NUL.
    public var name: [UInt8]
    /// The node the entry refers to. Several entries may refer to one node (hard links).
    public var node: UInt32

    public init(name: [UInt8], node: UInt32) {
        self.name = name
        self.node = node
    }
}

/// One extended attribute, e.g. `user.stream` or `trusted.ntfs_acl`.
public struct ExtendedAttribute: Sendable, Equatable {
    /// Full name including the namespace prefix (`user.`, `trusted.`, `security.`).
    public var name: String
    public var value: [UInt8]

    public init(name: String, value: [UInt8]) {
        self.name = name
        self.value = value
    }
}

/// One run of a regular file's data.
public enum DataRun: Sendable {
    /// `length` bytes that read as zeros (a hole).
    case zeros(length: UInt64)
    /// `length` bytes stored at `offset` of `file`.
    case file(RegionFile, offset: UInt64, length: UInt64)

    public var length: UInt64 {
        switch self {
        case .zeros(let length): return length
        case .file(_, _, let length): return length
        }
    }
}

/// A read-only tree of files that a filesystem synthesizer turns into a volume.
///
/// Nodes are numbered `1...maxNode`, possibly with gaps (numbers that no entry
/// references). Node numbers are stable for the life of the source. Every
/// method may be called from several threads at once; answers are
/// deterministic. Errors are thrown as they come (e.g. ``CimError``).
public protocol FileTreeSource: Sendable {
    /// The root directory's node.
    var rootNode: UInt32 { get }
    /// The highest node number in use.
    var maxNode: UInt32 { get }
    /// Attributes of one node.
    func attributes(of node: UInt32) throws -> NodeAttributes
    /// The entries of a directory (without `.` and `..`), in a fixed order, names unique.
    func children(of node: UInt32) throws -> [ChildEntry]
    /// Extended attributes of a node (may be empty).
    func extendedAttributes(of node: UInt32) throws -> [ExtendedAttribute]
    /// A regular file's data as runs whose lengths add up to `attributes(of:).size`.
    func dataRuns(of node: UInt32) throws -> [DataRun]
    /// A symbolic link's target, as bytes (no NUL).
    func symlinkTarget(of node: UInt32) throws -> [UInt8]
}
