import CimFS
import Synchronization

/// A CIM image seen as a Linux file tree: the mapping the translator applies
/// before any filesystem layout is chosen.
///
/// - Nodes are CIM FileIDs, so hard links share a node.
/// - Names: see ``WindowsName``. Symlink and mount-point reparse points
///   become symlinks (see ``ReparseLink``); other reparse points stay files
///   or directories and keep their buffer in `trusted.ntfs_reparse_data`.
/// - Windows metadata as xattrs, ntfs-3g's names moved to `trusted.`:
///   alternate data streams → `user.<stream name>`, security descriptor →
///   `trusted.ntfs_acl`, attribute word → `trusted.ntfs_attrib` (u32 LE),
///   EAs → `trusted.ntfs_ea`, reparse buffer → `trusted.ntfs_reparse_data`.
///   A value over Linux's 64 KiB cap is left out with a warning naming the file.
/// - Ownership and permissions from ``MappingOptions``; the read-only
///   attribute clears the write bits.
public final class CimTreeSource: FileTreeSource {
    /// Linux caps one xattr value at 64 KiB.
    public static let maxAttributeValue = 65536

    public let image: CimImage
    public let options: MappingOptions
    /// The image's root, or the directory ``MappingOptions/root`` names.
    public let rootNode: UInt32
    public var maxNode: UInt32 { image.maxFileID }

    /// Symlink targets of the nodes that become symlinks.
    private let symlinks: [CimFileID: [UInt8]]
    /// Original UTF-16 names of nodes whose Linux name had to be replaced.
    private let replacedNames: [CimFileID: [UInt16]]
    private let warningLog = Mutex<[String]>([])

    /// Walks the image once (metadata only) to learn symlink targets (which
    /// depend on the depth of the link's first name) and replaced names.
    public init(image: CimImage, options: MappingOptions = MappingOptions()) throws {
        self.image = image
        self.options = options
        let root = try CimTreeSource.resolveRoot(options.root, in: image)
        rootNode = root
        var seen = [Bool](repeating: false, count: Int(image.maxFileID) + 1)
        var reparseNodes: [(CimFileID, Int)] = []
        var replaced: [CimFileID: [UInt16]] = [:]
        // Walked from the volume's root: link depths (for absolute symlink targets) count from there.
        try image.walk(from: root) { _, child, components in
            let index = Int(child.fileID)
            guard index < seen.count, !seen[index] else { return }
            seen[index] = true
            if WindowsName.direct(child.nameUnits) == nil { replaced[child.fileID] = child.nameUnits }
            if try image.entry(child.fileID).reparseDataOffset != 0 { reparseNodes.append((child.fileID, components.count - 1)) }
        }
        var symlinks: [CimFileID: [UInt8]] = [:]
        for (id, depth) in reparseNodes {
            let entry = try image.entry(id)
            guard let buffer = try image.reparseData(of: id),
                  let target = ReparseLink.target(buffer: buffer, tag: entry.reparseTag, depth: depth), !target.isEmpty,
                  target.count < 4096 else { continue }
            // A directory that still has entries stays a directory, so nothing is hidden.
            if entry.isDirectory, try !image.children(of: id).isEmpty { continue }
            symlinks[id] = target
        }
        self.symlinks = symlinks
        self.replacedNames = replaced
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

    /// Problems met while mapping (values left out), one line each, naming the file.
    public var warnings: [String] { warningLog.withLock { $0 } }

    private func warn(_ text: String) { warningLog.withLock { $0.append(text) } }

    public func attributes(of node: UInt32) throws -> NodeAttributes {
        let entry = try image.entry(node)
        let kind: NodeKind
        var permissions: UInt16
        var size: UInt64 = 0
        if let target = symlinks[node] {
            kind = .symbolicLink
            permissions = 0o777
            size = UInt64(target.count)
        } else if entry.isDirectory {
            kind = .directory
            permissions = 0o777 & ~options.directoryMask
        } else {
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
        if symlinks[node] != nil { return [] }
        let entries = try image.children(of: node)
        var result: [ChildEntry] = []
        result.reserveCapacity(entries.count)
        var replacements: [Int] = []
        for (index, entry) in entries.enumerated() {
            if let name = WindowsName.direct(entry.nameUnits) {
                result.append(ChildEntry(name: name, node: entry.fileID))
            } else {
                result.append(ChildEntry(name: WindowsName.replacement(entry.nameUnits), node: entry.fileID))
                replacements.append(index)
            }
        }
        if !replacements.isEmpty {
            // Replacements must not collide with any other name of the directory.
            var taken = Set(result.enumerated().filter { !replacements.contains($0.offset) }.map { $0.element.name })
            for index in replacements {
                var candidate = result[index].name
                var counter = 2
                while taken.contains(candidate) {
                    candidate = result[index].name + Array("~\(counter)".utf8)
                    counter += 1
                }
                taken.insert(candidate)
                result[index].name = candidate
            }
        }
        return result
    }

    public func extendedAttributes(of node: UInt32) throws -> [ExtendedAttribute] {
        let entry = try image.entry(node)
        var result: [ExtendedAttribute] = []
        func add(_ name: String, _ value: [UInt8]) {
            if value.count > CimTreeSource.maxAttributeValue {
                warn("FileID \(node): xattr \(name) has \(value.count) bytes, over Linux's 64 KiB limit; left out")
            } else {
                result.append(ExtendedAttribute(name: name, value: value))
            }
        }
        if let sd = try image.securityDescriptor(of: node) { add("trusted.ntfs_acl", sd) }
        let attributes = entry.attributes
        add("trusted.ntfs_attrib", withUnsafeBytes(of: attributes.littleEndian, Array.init))
        if let ea = try image.extendedAttributes(of: node) { add("trusted.ntfs_ea", ea) }
        if let reparse = try image.reparseData(of: node) { add("trusted.ntfs_reparse_data", reparse) }
        if let original = replacedNames[node] {
            add(WindowsName.originalNameAttribute, original.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })
        }
        // Streams last: when space runs out, the Windows metadata above is what survives.
        for stream in try image.alternateStreams(of: node) {
            let name = WindowsName.direct(stream.nameUnits).map { String(decoding: $0, as: UTF8.self) }
                ?? String(decoding: WindowsName.replacement(stream.nameUnits), as: UTF8.self)
            if stream.size > UInt64(CimTreeSource.maxAttributeValue) {
                warn("FileID \(node): alternate stream \"\(stream.name)\" has \(stream.size) bytes, over Linux's 64 KiB xattr limit; left out")
                continue
            }
            add("user." + name, try image.read(stream.stream, at: 0, length: Int(stream.size), fileID: node))
        }
        return result
    }

    public func dataRuns(of node: UInt32) throws -> [DataRun] {
        let entry = try image.entry(node)
        guard !entry.isDirectory, symlinks[node] == nil else { return [] }
        return try image.layout(of: entry.defaultStream, fileID: node).map { run in
            switch run {
            case .zeros(let length): return .zeros(length: length)
            case .region(_, let file, let offset, let length): return .file(file, offset: offset, length: length)
            }
        }
    }

    public func symlinkTarget(of node: UInt32) throws -> [UInt8] {
        guard let target = symlinks[node] else {
            throw CimError.invalidInput("FileID \(node) is not a symbolic link")
        }
        return target
    }
}
