import CimFS
import Synchronization

/// A CIM image seen as a Linux file tree: the mapping the translator applies
/// before any filesystem layout is chosen.
///
/// Names, symlinks and xattrs come from `CimLinuxMapping` (in CimFS, shared
/// with `cim extract`); absolute link targets are made relative to the link,
/// so they resolve inside the volume wherever it is mounted. Ownership and
/// permissions come from ``MappingOptions``; the read-only attribute clears
/// the write bits.
public final class CimTreeSource: FileTreeSource {
    /// Linux caps one xattr value at 64 KiB.
    public static let maxAttributeValue = CimLinuxMapping.maxAttributeValue

    public let image: CimImage
    public let options: MappingOptions
    /// The image's root, or the directory ``MappingOptions/root`` names.
    public let rootNode: UInt32
    public var maxNode: UInt32 { image.maxFileID }

    private let mapping: CimLinuxMapping
    private let warningLog = Mutex<[String]>([])

    /// Walks the image once (metadata only), see `CimLinuxMapping`.
    public init(image: CimImage, options: MappingOptions = MappingOptions()) throws {
        self.image = image
        self.options = options
        let root = try CimTreeSource.resolveRoot(options.root, in: image)
        self.rootNode = root
        self.mapping = try CimLinuxMapping(image: image, absoluteTargets: .relativeToLink, root: root)
    }

    /// The FileID of the directory `path` names (`\` or `/` separated; nil or `\`: the image root).
    public static func resolveRoot(_ path: String?, in image: CimImage) throws -> CimFileID {
        guard let path, path.contains(where: { $0 != "\\" && $0 != "/" }) else { return image.rootID }
        let id: CimFileID
        do { id = try image.lookup(path: path) } catch CimError.notFound {
            throw CimError.invalidInput("\(image.path): --root \(path): no such directory in the image")
        } catch CimError.notADirectory {
            throw CimError.invalidInput("\(image.path): --root \(path): a component is not a directory")
        }
        guard try image.entry(id).isDirectory else {
            throw CimError.invalidInput("\(image.path): --root \(path): not a directory")
        }
        return id
    }

    /// Problems met while mapping (values left out), one line per file.
    public var warnings: [String] { warningLog.withLock { $0 } }

    public func attributes(of node: UInt32) throws -> NodeAttributes {
        let entry = try image.entry(node)
        var permissions: UInt16
        var size: UInt64 = 0
        let kind: NodeKind
        switch mapping.kind(of: node, entry: entry) {
        case .symbolicLink:
            kind = .symbolicLink
            permissions = 0o777
            size = UInt64(mapping.symlinkTarget(of: node)?.count ?? 0)
        case .directory:
            kind = .directory
            permissions = 0o777 & ~options.directoryMask
        case .regularFile:
            kind = .regularFile
            permissions = 0o666 & ~options.fileMask
            size = entry.defaultStream.length
        }
        if kind != .symbolicLink && entry.flags & CimFormat.EntryFlag.readOnly != 0 { permissions &= ~0o222 }
        return NodeAttributes(kind: kind, permissions: permissions, uid: options.uid, gid: options.gid, size: size,
                              accessTime: WindowsTime.timestamp(entry.lastAccessTime),
                              modificationTime: WindowsTime.timestamp(entry.lastWriteTime),
                              changeTime: WindowsTime.timestamp(entry.changeTime),
                              creationTime: WindowsTime.timestamp(entry.creationTime))
    }

    public func children(of node: UInt32) throws -> [ChildEntry] {
        try mapping.children(of: node).map { ChildEntry(name: $0.name, node: $0.node) }
    }

    public func extendedAttributes(of node: UInt32) throws -> [ExtendedAttribute] {
        let attributes = try mapping.extendedAttributes(of: node)
        if !attributes.leftOut.isEmpty {
            let line = "FileID \(node): extended attributes left out: " + attributes.leftOut.map { "\($0.name) (\($0.reason))" }.joined(separator: "; ")
            warningLog.withLock { $0.append(line) }
        }
        return attributes.list.map { ExtendedAttribute(name: $0.name, value: $0.value) }
    }

    public func dataRuns(of node: UInt32) throws -> [DataRun] {
        let entry = try image.entry(node)
        guard mapping.kind(of: node, entry: entry) == .regularFile else { return [] }
        return try image.layout(of: entry.defaultStream, fileID: node).map { run in
            switch run {
            case .zeros(let length): return .zeros(length: length)
            case .region(_, let file, let offset, let length): return .file(file, offset: offset, length: length)
            }
        }
    }

    public func symlinkTarget(of node: UInt32) throws -> [UInt8] {
        guard let target = mapping.symlinkTarget(of: node) else {
            throw CimError.invalidInput("FileID \(node) is not a symbolic link")
        }
        return target
    }
}
