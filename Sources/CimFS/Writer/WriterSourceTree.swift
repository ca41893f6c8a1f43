#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One file of the source tree: becomes one FileID. Hard links share a record.
final class WriterFileRecord {
    enum Kind { case directory, regular, symlink }

    let id: UInt32
    let kind: Kind
    let sourcePath: String
    /// `/`-separated path below the source root ("" for the root).
    let relativePath: String
    let stat: WriterStat
    let parentID: UInt32
    var xattrs: WriterXattrMapping
    var symlinkTarget: String?
    /// Directory entries (directories only), not yet sorted.
    var children: [(name: [UInt16], id: UInt32)] = []

    init(id: UInt32, kind: Kind, sourcePath: String, relativePath: String, stat: WriterStat, parentID: UInt32, xattrs: WriterXattrMapping) {
        self.id = id
        self.kind = kind
        self.sourcePath = sourcePath
        self.relativePath = relativePath
        self.stat = stat
        self.parentID = parentID
        self.xattrs = xattrs
    }
}

/// The scanned source tree: every record, indexed by FileID - 1.
///
/// FileIDs are handed out breadth-first in link-table order, so the root is 1
/// and a directory's files have neighbouring ids. The first link found of a
/// hard-linked file names its parent.
struct WriterSourceTree {
    private(set) var records: [WriterFileRecord] = []
    private(set) var skipped: [String] = []
    private(set) var renamed: [String] = []
    var linkCount = 0

    static func scan(_ root: String, caseConflicts: CimCaseConflictPolicy = .error,
                     overrides: WriterSourceOverrides = WriterSourceOverrides(),
                     progress: ((Int) -> Void)? = nil) throws -> WriterSourceTree {
        var tree = WriterSourceTree()
        let rootStat: WriterStat
        do { rootStat = try WriterLinux.stat(root) } catch CimError.missingFile { throw CimError.missingDirectory(path: root) }
        guard rootStat.isDirectory else { throw CimError.notADirectory(path: root) }
        let rootXattrs = try tree.readXattrs(root)
        tree.records.append(WriterFileRecord(id: 1, kind: .directory, sourcePath: root, relativePath: "", stat: rootStat, parentID: 1, xattrs: rootXattrs))
        var hardLinks: [[UInt64]: UInt32] = [:]
        var pathUnits: [UInt32: Int] = [1: 0]  // UTF-16 length of `\a\b` per directory
        var conflicts: [String] = []
        var renamedLinks: [UInt32: [OriginalNameEA.RenamedLink]] = [:]
        var queueIndex = 0
        while queueIndex < tree.records.count {
            let directory = tree.records[queueIndex]
            queueIndex += 1
            guard directory.kind == .directory else { continue }
            var named: [WriterSourceName] = []
            for rawName in try listDirectory(directory.sourcePath) {
                guard let name = String(validating: rawName, as: UTF8.self) else {
                    let shown = String(decoding: rawName, as: UTF8.self)
                    throw CimError.invalidInput("\(WriterPaths.join(directory.sourcePath, shown)): file name is not valid UTF-8")
                }
                let relative = directory.relativePath.isEmpty ? name : directory.relativePath + "/" + name
                let units = overrides.names[relative] ?? originalName(of: WriterPaths.join(directory.sourcePath, name), linuxName: rawName)
                    ?? Array(name.utf16)
                try checkName(units, path: WriterPaths.join(directory.sourcePath, name))
                named.append(WriterSourceName(name: name, units: units))
            }
            let resolution = WriterCaseConflicts.resolve(named, policy: caseConflicts, directory: directory.sourcePath)
            named = resolution.names
            conflicts += resolution.conflicts
            tree.skipped += resolution.skipped
            tree.renamed += resolution.renamed
            let parentUnits = pathUnits[directory.id] ?? 0
            for entry in named {
                let path = WriterPaths.join(directory.sourcePath, entry.name)
                let relative = directory.relativePath.isEmpty ? entry.name : directory.relativePath + "/" + entry.name
                let units = parentUnits + 1 + entry.stored.count
                try checkPathLength(units, path: path)
                let stat = try WriterLinux.stat(path)
                let kind: WriterFileRecord.Kind
                if stat.isDirectory { kind = .directory } else if stat.isRegular { kind = .regular } else if stat.isSymlink { kind = .symlink } else {
                    tree.skipped.append("\(path): not a regular file, directory or symlink")
                    continue
                }
                let linkKey = [stat.device, stat.inode]
                let xattrs = try tree.readXattrs(path)
                // A directory link is a directory in the image, and a directory has one name.
                let shared = kind == .regular || (kind == .symlink && !xattrs.isDirectory)
                if shared, stat.linkCount > 1, let existing = hardLinks[linkKey] {
                    if entry.stored != entry.units {
                        renamedLinks[existing, default: []].append(OriginalNameEA.RenamedLink(stored: entry.stored, original: entry.units))
                    }
                    directory.children.append((entry.stored, existing))
                    tree.linkCount += 1
                    continue
                }
                guard tree.records.count < Int(UInt32.max) else { throw CimError.invalidInput("\(path): too many files") }
                let id = UInt32(tree.records.count + 1)
                let record = WriterFileRecord(id: id, kind: kind, sourcePath: path, relativePath: relative, stat: stat,
                                              parentID: directory.id, xattrs: xattrs)
                record.xattrs.streams += overrides.streams[relative] ?? []
                if kind == .symlink { record.symlinkTarget = try readLink(path) }
                if kind == .directory { pathUnits[id] = units }
                if shared, stat.linkCount > 1 { hardLinks[linkKey] = id }
                tree.records.append(record)
                if entry.stored != entry.units {
                    renamedLinks[id, default: []].append(OriginalNameEA.RenamedLink(stored: entry.stored, original: entry.units))
                }
                directory.children.append((entry.stored, id))
                tree.linkCount += 1
                progress?(tree.records.count)
            }
        }
        if !conflicts.isEmpty { throw WriterCaseConflicts.error(conflicts, root: root) }
        for (id, links) in renamedLinks.sorted(by: { $0.key < $1.key }) {
            let record = tree.records[Int(id) - 1]
            record.xattrs.extendedAttributes = try OriginalNameEA.adding(links, to: record.xattrs.extendedAttributes, path: record.sourcePath)
        }
        return tree
    }

    /// The name `trusted.cimnbd.name` records, when `linuxName` is the `~hash`
    /// form ``WindowsName`` makes of it (`~N` may follow): extraction's
    /// replacement for a name Linux cannot hold. A name changed since is taken as it is.
    static func originalName(of path: String, linuxName: [UInt8]) -> [UInt16]? {
        guard linuxName.count >= 17, linuxName.contains(UInt8(ascii: "~")),
              let value = try? WriterLinux.getXattr(path, name: WindowsName.originalNameAttribute),
              value.count >= 2, value.count % 2 == 0, value.count <= 2 * CimFormat.maxNameUnits else { return nil }
        let units = stride(from: 0, to: value.count, by: 2).map { UInt16(value[$0]) | UInt16(value[$0 + 1]) << 8 }
        let replacement = WindowsName.replacement(units)
        guard linuxName.starts(with: replacement) else { return nil }
        let rest = linuxName.dropFirst(replacement.count)
        guard rest.isEmpty || (rest.first == UInt8(ascii: "~") && rest.count > 1 && rest.dropFirst().allSatisfy { (0x30...0x39).contains($0) }) else { return nil }
        return units
    }

    /// Names are at most 255 UTF-16 units. (Linux allows 255 UTF-8 bytes, which is
    /// never more units, so this only fires for names from elsewhere.)
    static func checkName(_ units: [UInt16], path: String) throws {
        guard !units.isEmpty, units.count <= CimFormat.maxNameUnits else {
            throw CimError.invalidInput("\(path): name is \(units.count) UTF-16 units long, 1 to \(CimFormat.maxNameUnits) are allowed")
        }
    }

    /// Paths in the image (`\a\b`) are at most 32767 UTF-16 units.
    static func checkPathLength(_ units: Int, path: String) throws {
        guard units <= CimFormat.maxPathUnits else {
            throw CimError.invalidInput("\(path): path is \(units) UTF-16 units long in the image, at most \(CimFormat.maxPathUnits) are allowed")
        }
    }

    private mutating func readXattrs(_ path: String) throws -> WriterXattrMapping {
        let mapping = try WriterXattrMapping.read(path)
        for name in mapping.ignored { skipped.append("\(path): xattr \(name) has no CIM counterpart") }
        return mapping
    }

    static func listDirectory(_ path: String) throws -> [[UInt8]] {
        guard let stream = opendir(path) else {
            let code = errno
            if code == EACCES || code == EPERM { throw CimError.accessDenied(path: path) }
            throw CimError.io(path: path, offset: 0, errno: code, what: "opendir")
        }
        defer { closedir(stream) }
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw CimError.io(path: path, offset: 0, errno: errno, what: "readdir") }
                break
            }
            let name: [UInt8] = withUnsafeBytes(of: &entry.pointee.d_name) { raw in
                Array(raw.prefix { $0 != 0 })
            }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append(name)
        }
        return names
    }

    static func readLink(_ path: String) throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count)
        guard count >= 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "readlink") }
        guard let target = String(validating: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) else {
            throw CimError.invalidInput("\(path): symlink target is not valid UTF-8")
        }
        return target
    }
}
