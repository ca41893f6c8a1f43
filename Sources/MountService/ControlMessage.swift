/// A request on the control socket: one JSON object per connection, ended by a newline.
public struct ControlRequest: Codable, Sendable, Equatable {
    public enum Operation: String, Codable, Sendable {
        case mount, dismount, list, setDevice = "set-device", ping
    }

    public var op: Operation
    public var directory: String?
    public var name: String?
    public var flags: UInt32?
    public var guid: String?
    public var uid: UInt32?
    public var gid: UInt32?
    public var directoryMask: UInt16?
    public var fileMask: UInt16?
    public var force: Bool?
    public var device: String?
    /// Image directory to mount as the volume's root (mount only).
    public var root: String?

    public init(op: Operation, directory: String? = nil, name: String? = nil, flags: UInt32? = nil, guid: String? = nil,
                uid: UInt32? = nil, gid: UInt32? = nil, directoryMask: UInt16? = nil, fileMask: UInt16? = nil,
                force: Bool? = nil, device: String? = nil, root: String? = nil) {
        self.root = root
        self.op = op
        self.directory = directory
        self.name = name
        self.flags = flags
        self.guid = guid
        self.uid = uid
        self.gid = gid
        self.directoryMask = directoryMask
        self.fileMask = fileMask
        self.force = force
        self.device = device
    }
}

/// The daemon's answer.
public struct ControlResponse: Codable, Sendable, Equatable {
    public var ok: Bool
    public var error: MountError?
    public var record: MountRecord?
    public var uri: String?
    /// Where `mount --attach` connects the kernel (``MountManager/kernelURI(for:)``):
    /// absent when the server requires TLS and has no Unix socket (and from
    /// daemons older than this field, which then means `uri`).
    public var kernelURI: String?
    public var mounts: [MountInfo]?

    public init(ok: Bool, error: MountError? = nil, record: MountRecord? = nil, uri: String? = nil, kernelURI: String? = nil,
                mounts: [MountInfo]? = nil) {
        self.ok = ok
        self.error = error
        self.record = record
        self.uri = uri
        self.kernelURI = kernelURI
        self.mounts = mounts
    }
}
