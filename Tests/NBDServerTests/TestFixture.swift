import CimFS
import Foundation
import Logging
import NBDServer
import NIOCore
import VolumeSynth

/// A running server with two exports, for one test:
///
/// - `mainGUID`: 64 MiB mixing metadata, large file-backed ranges (sendfile),
///   a small file range (copied), and zero runs (holes).
/// - `faultyGUID`: a metadata range whose reads fail, and a range of a file
///   that is truncated after opening.
final class TestFixture {
    static let mainGUID = ExportGUID("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")!
    static let faultyGUID = ExportGUID("{FFEEDDCC-BBAA-4999-8877-665544332211}")!
    static let mainDescription = "/images/main.cim (CIM, test)"

    let directory: URL
    let registry = ExportRegistry()
    let server: NBDServer
    let mainVolume: TestVolume
    let faultyVolume: TestVolume
    /// Start of the failing metadata range and of the truncated file range in the faulty export.
    let faultyFailingOffset: UInt64 = 4096
    let faultyTruncatedOffset: UInt64 = 8192 + 4096
    let unixSocketPath: String

    var port: Int { server.boundPorts.first ?? 0 }
    var mainURI: String { "nbd://127.0.0.1:\(port)/\(Self.mainGUID)" }

    /// The zero runs of the main volume, as (offset, length).
    let mainZeroRuns: [(UInt64, UInt64)]

    /// The default configuration sends file data with sendfile even over
    /// loopback (where the server would copy by default), so that the
    /// sendfile path is the one these tests exercise.
    init(configuration: NBDServerConfiguration = NBDServerConfiguration(eventLoopThreads: 2, blockingIOThreads: 4, sendfile: .always)) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("nbdtest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        unixSocketPath = directory.appendingPathComponent("nbd.sock").path

        var generator = SplitMix(seed: 42)
        let fileA = try Self.makeFile(directory.appendingPathComponent("a.bin"), count: 3 << 20, generator: &generator)
        let fileB = try Self.makeFile(directory.appendingPathComponent("b.bin"), count: 64 << 10, generator: &generator)
        let pieces: [TestVolume.Piece] = [
            .metadata(4096, seed: 1),
            .file(fileA, offset: 0, length: 1 << 20),
            .zeros(1 << 20),
            .metadata(8192, seed: 2),
            .file(fileA, offset: 1_000_001, length: 2_000_000),   // unaligned in the file
            .file(fileB, offset: 10, length: 3000),              // small: copied, not sendfile
            .zeros(100),                                         // short zero run inside data
            .metadata(4096 - ((2_000_000 + 3000 + 100) % 4096), seed: 3),
            .zeros(8 << 20),
            .file(fileB, offset: 0, length: 64 << 10),
        ]
        var used = pieces.reduce(0) { $0 + $1.length }
        let total: UInt64 = 64 << 20
        var all = pieces
        all.append(.zeros(total - used - 4096))
        all.append(.metadata(4096, seed: 4))
        used = all.reduce(0) { $0 + $1.length }
        precondition(used == total && used % 4096 == 0, "test layout must be 64 MiB")
        mainVolume = TestVolume(all)
        var runs: [(UInt64, UInt64)] = []
        for (start, piece) in mainVolume.pieces {
            if case .zeros(let length) = piece { runs.append((start, length)) }
        }
        mainZeroRuns = runs

        let fileC = try Self.makeFile(directory.appendingPathComponent("c.bin"), count: 1 << 20, generator: &generator)
        faultyVolume = TestVolume([
            .metadata(4096, seed: 5),
            .failing(8192),
            .file(fileC, offset: 0, length: 1 << 20),
            .zeros(1 << 20),
        ])
        // Truncate c.bin after it was opened: reads of it must now fail.
        try FileHandle(forWritingTo: directory.appendingPathComponent("c.bin")).truncate(atOffset: 4096)

        try registry.add(guid: Self.mainGUID, volume: mainVolume, description: Self.mainDescription)
        try registry.add(guid: Self.faultyGUID, volume: faultyVolume, description: "/images/faulty.cim (CIM, test)")
        var logger = Logger(label: "cimnbd.nbd")
        logger.logLevel = ProcessInfo.processInfo.environment["NBD_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
        server = NBDServer(configuration: configuration, registry: registry, logger: logger)
    }

    func start() async throws {
        try await server.start(listenAddresses: [try SocketAddress(ipAddress: "127.0.0.1", port: 0)],
                               unixSockets: [unixSocketPath])
    }

    func stop() async throws {
        try await server.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Writes the main volume's bytes to a raw image file, for byte comparisons.
    func writeMainReference() throws -> URL {
        let url = directory.appendingPathComponent("reference.img")
        try Data(try mainVolume.allBytes()).write(to: url)
        return url
    }

    private static func makeFile(_ url: URL, count: Int, generator: inout SplitMix) throws -> RegionFile {
        var bytes = [UInt8](repeating: 0, count: count)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: generator.next()) }
        try Data(bytes).write(to: url)
        return try RegionFile(path: url.path)
    }
}

/// A small deterministic pseudo-random generator.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
