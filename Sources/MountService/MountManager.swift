import CimFS
import Logging
import NBDServer
import NIOConcurrencyHelpers
import VolumeSynth
#if canImport(Glibc)
import Glibc
#endif

/// Builds the volume served for a mounted image.
public typealias VolumeFactory = @Sendable (_ image: CimImage, _ record: MountRecord) throws -> any Volume

/// The mount table: `CimMountImage`/`CimDismountImage` semantics on top of an
/// ``ExportRegistry``, saved to a state file after every change.
public final class MountManager: Sendable {
    public let registry: ExportRegistry
    private let store: MountStateStore?
    private let makeVolume: VolumeFactory
    private let logger: Logger
    /// How clients reach the server, for the URIs printed (e.g. `127.0.0.1` or `127.0.0.1:10810`).
    public let advertisedAuthority: String
    /// Export descriptions (seen by every client, `nbdinfo --list`) name the
    /// image's host path instead of only its file name.
    public let describePaths: Bool
    /// `nbd`, or `nbds` when the server requires TLS.
    public let advertisedScheme: String
    /// A Unix socket the server listens on, never forced to TLS: where a
    /// kernel device attaches when TCP requires TLS. Nil when there is none.
    public let plainSocketPath: String?

    private struct Mounted: Sendable {
        var record: MountRecord
        var volume: any Volume
    }

    private struct State: Sendable {
        var mounted: [String: Mounted] = [:]
        /// Records from the state file that could not be mounted again; kept so nothing is lost.
        var pending: [MountRecord] = []
        /// GUIDs left out of the state file (e.g. the demo image in a temporary directory).
        var transient: Set<String> = []
    }

    private let state = NIOLockedValueBox(State())

    public init(registry: ExportRegistry, store: MountStateStore?, advertisedAuthority: String = "127.0.0.1",
                describePaths: Bool = false, advertisedScheme: String = "nbd", plainSocketPath: String? = nil,
                logger: Logger = Logger(label: "cimnbd.mount"), makeVolume: @escaping VolumeFactory) {
        self.describePaths = describePaths
        self.registry = registry
        self.store = store
        self.makeVolume = makeVolume
        self.logger = logger
        self.advertisedAuthority = advertisedAuthority
        self.advertisedScheme = advertisedScheme
        self.plainSocketPath = plainSocketPath
    }

    /// Mounts `name` from `directory` under `guid` (a random one when nil).
    ///
    /// Checks, in order: flags, directory, image file, access for
    /// `callerUID`/`callerGID` (nil: no check), GUID in use.
    @discardableResult
    public func mount(directory: String, name: String, flags: UInt32, guid: CimGUID?, mapping: MappingOptions,
                      callerUID: UInt32? = nil, callerGID: UInt32? = nil, device: String? = nil) throws -> MountRecord {
        try MountManager.checkFlags(flags)
        var info = stat()
        guard stat(directory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            if errno == EACCES { throw MountError.accessDenied(path: directory) }
            throw MountError.pathNotFound(path: directory)
        }
        let imagePath = CimImage.imagePath(directory: directory, name: name)
        guard !name.isEmpty, !name.contains("/"), stat(imagePath, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw MountError.fileNotFound(path: (directory.hasSuffix("/") ? directory : directory + "/") + name)
        }
        let fileName = String(imagePath.split(separator: "/").last ?? Substring(name))
        let image: CimImage
        do {
            image = try CimImage(path: imagePath)
        } catch let error as CimError {
            throw MountManager.translate(error, imagePath: imagePath)
        }
        if let uid = callerUID, uid != 0 {
            for path in [image.path] + image.regions.map(\.path) where !MountManager.mayRead(path, uid: uid, gid: callerGID ?? UInt32.max) {
                throw MountError.accessDenied(path: path)
            }
        }
        let volumeGUID = guid ?? CimGUID.random()
        let key = volumeGUID.description
        let record = MountRecord(guid: key, imageDirectory: directory, imageName: fileName, flags: flags, mapping: mapping, device: device)
        if state.withLockedValue({ $0.mounted[key] != nil }) { throw MountError.alreadyExists(guid: key) }
        let volume: any Volume
        do {
            volume = try makeVolume(image, record)
        } catch let error as CimError {
            throw MountManager.translate(error, imagePath: image.path)
        } catch {
            throw MountError.invalidImage(detail: "\(image.path): \(error)")
        }
        try state.withLockedValue { state in
            guard state.mounted[key] == nil else { throw MountError.alreadyExists(guid: key) }
            do {
                // The host path tells clients about the server's disks: only on request.
                let shown = describePaths ? image.path : fileName
                try registry.add(guid: volumeGUID, volume: volume, description: "\(shown) (CIM as \(volume.format))")
            } catch {
                throw MountError.alreadyExists(guid: key)
            }
            state.mounted[key] = Mounted(record: record, volume: volume)
            state.pending.removeAll { $0.guid == key }
        }
        logger.info("mounted \(image.path) as \(key) (\(volume.size) bytes, \(volume.format))")
        try save()
        return record
    }

    /// Removes the volume `guid`. Refuses while clients are connected unless `force`.
    public func dismount(guid text: String, force: Bool) throws {
        guard let guid = CimGUID(string: text) else { throw MountError.invalidGUID(text: text) }
        let key = guid.description
        try state.withLockedValue { state in
            guard state.mounted[key] != nil else { throw MountError.notMounted(guid: key) }
            do {
                let closed = try registry.remove(guid: guid, force: force)
                if closed > 0 { logger.notice("dismount \(key): stopping \(closed) client connection(s): started replies finish, the rest get NBD_ESHUTDOWN") }
            } catch ExportRegistryError.busy(_, let clients) {
                throw MountError.busy(guid: key, clients: clients)
            } catch ExportRegistryError.notFound {
                // Not exported (should not happen); the table entry still goes.
            }
            state.mounted[key] = nil
        }
        logger.info("dismounted \(key)")
        try save()
    }

    /// Records the kernel device an export is attached to (nil: detached).
    public func setDevice(guid text: String, device: String?) throws {
        guard let guid = CimGUID(string: text) else { throw MountError.invalidGUID(text: text) }
        try state.withLockedValue { state in
            guard state.mounted[guid.description] != nil else { throw MountError.notMounted(guid: guid.description) }
            state.mounted[guid.description]?.record.device = device
        }
        try save()
    }

    /// The mounted volumes, sorted by GUID.
    public func list() -> [MountInfo] {
        let mounted = state.withLockedValue { Array($0.mounted.values) }
        return mounted.map { entry in
            let clients = CimGUID(string: entry.record.guid).map { registry.clientCount(guid: $0) } ?? 0
            return MountInfo(guid: entry.record.guid, image: entry.record.imagePath, size: entry.volume.size, format: entry.volume.format,
                             clients: clients, device: entry.record.device, uri: uri(for: entry.record.guid))
        }.sorted { $0.guid < $1.guid }
    }

    /// The record of one mounted volume.
    public func record(guid text: String) -> MountRecord? {
        guard let guid = CimGUID(string: text) else { return nil }
        return state.withLockedValue { $0.mounted[guid.description]?.record }
    }

    /// `nbd://AUTHORITY/GUID` (`nbds://` when TLS is required).
    public func uri(for guid: String) -> String { "\(advertisedScheme)://\(advertisedAuthority)/\(guid)" }

    /// Where the kernel's nbd driver, which cannot carry TLS, reaches `guid`:
    /// ``uri(for:)`` when TCP serves plain text, else the Unix socket
    /// (`nbd+unix:///GUID?socket=PATH`), else nil (nowhere).
    public func kernelURI(for guid: String) -> String? {
        guard advertisedScheme == "nbds" else { return uri(for: guid) }
        return plainSocketPath.map { "nbd+unix:///\(guid)?socket=\(Self.percentEncoded($0))" }
    }

    /// A socket path as a URI query value: `%`, `&`, `?`, `#` and the like
    /// escaped, so that parsing the URI gives the path back unchanged.
    private static func percentEncoded(_ path: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var bytes: [UInt8] = []
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
                bytes.append(byte)
            default:
                bytes += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Mounts every record of the state file again, under the same GUIDs.
    /// Records that fail are logged and kept in the state file. A damaged
    /// state file is moved aside (logged) and the table starts empty.
    public func restore() throws {
        guard let store else { return }
        let loaded = try store.loadSettingAsideDamage()
        if let (movedTo, problem) = loaded.setAside {
            logger.error("state file \(store.path) is damaged (\(problem)); kept as \(movedTo), starting with an empty mount table")
        }
        for record in loaded.records {
            do {
                try mount(directory: record.imageDirectory, name: record.imageName, flags: record.flags,
                          guid: CimGUID(string: record.guid), mapping: record.mapping, device: record.device)
            } catch {
                logger.error("cannot restore \(record.guid) (\(record.imagePath)): \(error)")
                state.withLockedValue { $0.pending.append(record) }
            }
        }
        try save()
    }

    /// Keeps `guid` out of the state file, so it is not restored on the next start.
    public func dismountOnShutdown(guid text: String) throws {
        guard let guid = CimGUID(string: text) else { throw MountError.invalidGUID(text: text) }
        state.withLockedValue { _ = $0.transient.insert(guid.description) }
        try save()
    }

    private func save() throws {
        guard let store else { return }
        let records = state.withLockedValue { state in
            state.mounted.values.map(\.record).filter { !state.transient.contains($0.guid) }.sorted { $0.guid < $1.guid } + state.pending
        }
        try store.save(records)
    }

    // MARK: Checks

    static func checkFlags(_ flags: UInt32) throws {
        let unknown = flags & ~CimFormat.MountFlag.all
        if unknown != 0 { throw MountError.invalidFlag(flags: flags, detail: "unknown flag bits 0x\(String(unknown, radix: 16))") }
        // DAX has no meaning for a volume served over NBD; it is accepted and ignored.
        let unsupported: [(UInt32, String)] = [
            (CimFormat.MountFlag.childOnly, "child-only (0x1) is documented as not implemented"),
            (CimFormat.MountFlag.blockDeviceCim, "block-device CIMs (0x10): their layout is not public"),
            (CimFormat.MountFlag.singleFileCim, "single-file CIMs (0x20): their layout is not public"),
            (CimFormat.MountFlag.verifiedCim, "verified CIMs (0x80): their layout is not public"),
        ]
        for (bit, why) in unsupported where flags & bit != 0 {
            throw MountError.invalidFlag(flags: flags, detail: "unsupported: \(why)")
        }
    }

    static func translate(_ error: CimError, imagePath: String) -> MountError {
        switch error {
        case .missingFile(let path) where path == imagePath: return .fileNotFound(path: path)
        case .missingDirectory(let path): return .pathNotFound(path: path)
        case .accessDenied(let path): return .accessDenied(path: path)
        default: return .invalidImage(detail: error.description)
        }
    }

    /// Whether `uid`/`gid` may read `path` by its permission bits.
    static func mayRead(_ path: String, uid: UInt32, gid: UInt32) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else { return false }
        if uid == 0 { return true }
        if info.st_uid == uid { return info.st_mode & S_IRUSR != 0 }
        if info.st_gid == gid { return info.st_mode & S_IRGRP != 0 }
        return info.st_mode & S_IROTH != 0
    }
}
