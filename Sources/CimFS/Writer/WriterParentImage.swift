#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A region set as listed in a filesystem header.
struct WriterRegionSet: Equatable {
    var guid: CimGUID
    var regionCount: UInt16
}

/// The parent of a forked image: its region sets (oldest first, its own last)
/// and the objects listed in their object-id files, addressed by the global
/// region index the child will use.
struct WriterParentImage {
    let path: String
    let directory: String
    /// Region sets the child lists as parents, oldest first.
    let regionSets: [WriterRegionSet]
    /// Objects found in the parents' object-id files, by content.
    var objects: [WriterObjectKey: (regionOffset: UInt64, regionPath: String, offset: UInt64)] = [:]
    var totalRegions: Int { regionSets.reduce(0) { $0 + Int($1.regionCount) } }

    /// Reads the parent's `.cim` header and object-id files.
    init(cimPath: String) throws {
        path = cimPath
        directory = WriterPaths.directory(of: cimPath)
        let header = try WriterParentImage.readFile(cimPath, limit: 72 + 24 * 65536)
        let reader = WriterByteReader(bytes: header, path: cimPath)
        guard try reader.slice(0, 8) == CimFormat.magic else {
            throw CimError.badMagic(path: cimPath, found: Array(header.prefix(8)))
        }
        let fileType = try reader.slice(12, 1)
        guard fileType == [CimFormat.FileType.filesystem.rawValue] else {
            throw CimError.invalidField(path: cimPath, offset: 12, field: "file type", value: UInt64(fileType.first ?? 0), expected: "0 (filesystem)")
        }
        let major = try reader.u32(16), minor = try reader.u32(20)
        guard CimFormat.knownMajorVersions.contains(major) else { throw CimError.unsupportedVersion(path: cimPath, major: major, minor: minor) }
        func regionSet(at offset: Int) throws -> WriterRegionSet {
            guard let guid = CimGUID(bytes: try reader.slice(offset, 16)) else {
                throw CimError.corrupt(path: cimPath, offset: UInt64(offset), problem: "bad region set GUID")
            }
            return WriterRegionSet(guid: guid, regionCount: try reader.u16(offset + 16))
        }
        let own = try regionSet(at: 32)
        let parentCount = Int(try reader.u16(70))
        var sets: [WriterRegionSet] = []
        for index in 0..<parentCount { sets.append(try regionSet(at: 72 + 24 * index)) }
        sets.append(own)
        regionSets = sets
        guard totalRegions <= 65535 else {
            throw CimError.invalidInput("\(cimPath): parent already uses \(totalRegions) regions; a child needs at least one more and the limit is 65536")
        }
        var globalIndex = 0
        for set in sets {
            for n in 0..<Int(set.regionCount) {
                let objectIDPath = WriterPaths.join(directory, CimFormat.objectIDFileName(set: set.guid, index: n))
                let regionPath = WriterPaths.join(directory, CimFormat.regionFileName(set: set.guid, index: n))
                guard access(regionPath, F_OK) == 0 else { throw CimError.missingFile(path: regionPath) }
                // Object-id files are optional for readers; without one the region simply is not deduplicated against.
                if access(objectIDPath, F_OK) == 0 {
                    try loadObjectIDs(objectIDPath, globalIndex: UInt16(globalIndex), regionPath: regionPath)
                }
                globalIndex += 1
            }
        }
    }

    private mutating func loadObjectIDs(_ objectIDPath: String, globalIndex: UInt16, regionPath: String) throws {
        for entry in try CimObjectIDFile(path: objectIDPath).entries {
            guard entry.length > 0, entry.offset > 0 else { continue }
            let key = WriterObjectKey(length: entry.length, digest: entry.digest)
            if objects[key] == nil {
                objects[key] = (CimFormat.regionOffset(region: globalIndex, offset: entry.offset), regionPath, entry.offset)
            }
        }
    }

    /// Whether the parent object really holds the bytes the digest promises
    /// (the parent may come from a writer with another digest algorithm).
    static func verify(regionPath: String, offset: UInt64, key: WriterObjectKey) -> Bool {
        guard let file = try? RegionFile(path: regionPath) else { return false }
        guard offset <= file.size, key.length <= file.size - offset else { return false }
        return (try? CimObjectDigest.of(file, offset: offset, length: key.length)) == key.digest
    }

    static func readFile(_ path: String, limit: Int) throws -> [UInt8] {
        let file = try RegionFile(path: path)
        guard file.size <= UInt64(limit) else {
            throw CimError.invalidField(path: path, offset: 0, field: "file size", value: file.size, expected: "at most \(limit) bytes")
        }
        return try file.read(at: 0, length: Int(file.size))
    }
}

/// Path helpers (plain strings: the writer works with POSIX paths).
enum WriterPaths {
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let head = String(path[..<slash])
        return head.isEmpty ? "/" : head
    }

    static func fileName(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// `realpath`, or nil when the path does not resolve.
    static func resolved(_ path: String) -> String? {
        guard let raw = realpath(path, nil) else { return nil }
        defer { free(raw) }
        return String(cString: raw)
    }
}

extension WriterPaths {
    static func replacing(_ text: String, _ from: Character, with to: Character) -> String {
        String(text.map { $0 == from ? to : $0 })
    }
}
