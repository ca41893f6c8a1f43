import NIOConcurrencyHelpers
import NIOCore
import VolumeSynth

/// The set of exports a server offers, changed at runtime by the daemon.
///
/// Thread-safe: every method may be called from any thread. One registry may
/// back several ``NBDServer`` instances. Each connection that enters the
/// transmission phase attaches itself to its export, so ``clientCount(guid:)``
/// is exact and ``remove(guid:force:)`` can disconnect clients.
public final class ExportRegistry: Sendable {
    private struct Entry {
        var export: NBDExport
        /// Connections in transmission phase on this export, by channel identity.
        var clients: [ObjectIdentifier: any Channel]
    }

    private let state = NIOLockedValueBox<[ExportGUID: Entry]>([:])

    /// Creates an empty registry.
    public init() {}

    /// Adds an export. Throws ``ExportRegistryError/duplicate(_:)`` if the GUID
    /// is already exported.
    public func add(guid: ExportGUID, volume: any Volume, description: String) throws {
        try state.withLockedValue { exports in
            guard exports[guid] == nil else { throw ExportRegistryError.duplicate(guid) }
            exports[guid] = Entry(export: NBDExport(guid: guid, volume: volume, description: description), clients: [:])
        }
    }

    /// Adds an export named by GUID text (braces and letter case are accepted).
    public func add(guid text: String, volume: any Volume, description: String) throws {
        guard let guid = ExportGUID(text) else { throw ExportRegistryError.invalidGUID(text) }
        try add(guid: guid, volume: volume, description: description)
    }

    /// Removes an export so that no new client can open it.
    ///
    /// With connected clients and `force == false` this throws
    /// ``ExportRegistryError/busy(_:clients:)`` and changes nothing. With
    /// `force == true` the clients' connections are stopped gracefully: replies
    /// already started are finished (for at most `gracePeriod`), requests not
    /// yet started get `NBD_ESHUTDOWN`, then the connections close. This
    /// returns at once; the stop goes on in the background.
    ///
    /// - Returns: The number of client connections being closed.
    @discardableResult
    public func remove(guid: ExportGUID, force: Bool, gracePeriod: TimeAmount = .seconds(10)) throws -> Int {
        let toClose: [any Channel] = try state.withLockedValue { exports in
            guard let entry = exports[guid] else { throw ExportRegistryError.notFound(guid) }
            if !entry.clients.isEmpty && !force {
                throw ExportRegistryError.busy(guid, clients: entry.clients.count)
            }
            exports[guid] = nil
            return Array(entry.clients.values)
        }
        // Outside the lock: stopping runs handlers that call back into us.
        for channel in toClose {
            NBDGracefulStop.request(on: channel, gracePeriod: gracePeriod)
        }
        return toClose.count
    }

    /// The number of connections currently in transmission phase on the export
    /// (0 for an unknown GUID).
    public func clientCount(guid: ExportGUID) -> Int {
        state.withLockedValue { $0[guid]?.clients.count ?? 0 }
    }

    /// Closes every connection on the export without removing it.
    /// - Returns: The number of connections closed.
    @discardableResult
    public func disconnectClients(guid: ExportGUID) -> Int {
        let toClose: [any Channel] = state.withLockedValue { exports in
            guard var entry = exports[guid] else { return [] }
            let channels = Array(entry.clients.values)
            entry.clients = [:]
            exports[guid] = entry
            return channels
        }
        for channel in toClose {
            channel.close(mode: .all, promise: nil)
        }
        return toClose.count
    }

    /// All exports, sorted by name.
    public var exports: [NBDExport] {
        state.withLockedValue { $0.values.map(\.export) }.sorted { $0.guid < $1.guid }
    }

    /// The export with this GUID, if any.
    public func export(guid: ExportGUID) -> NBDExport? {
        state.withLockedValue { $0[guid]?.export }
    }

    /// Resolves a client-supplied export name: a GUID in any case, with or
    /// without braces. The empty name (the protocol's "default export") picks
    /// the only export when exactly one exists.
    public func export(named name: String) -> NBDExport? {
        if name.isEmpty {
            return state.withLockedValue { exports in
                exports.count == 1 ? exports.first?.value.export : nil
            }
        }
        guard let guid = ExportGUID(name) else { return nil }
        return export(guid: guid)
    }

    /// Registers `channel` as a client of the export; nil if the export is gone.
    func attach(guid: ExportGUID, channel: any Channel) -> NBDExport? {
        state.withLockedValue { exports in
            guard exports[guid] != nil else { return nil }
            exports[guid]?.clients[ObjectIdentifier(channel)] = channel
            return exports[guid]?.export
        }
    }

    /// Forgets `channel` as a client of the export (no-op if not attached).
    func detach(guid: ExportGUID, channel: any Channel) {
        state.withLockedValue { exports in
            _ = exports[guid]?.clients.removeValue(forKey: ObjectIdentifier(channel))
        }
    }
}
