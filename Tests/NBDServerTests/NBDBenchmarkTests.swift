import CimFS
import Foundation
import Logging
import NBDServer
import NIOCore
import VolumeSynth
import XCTest

/// Throughput of `nbdcopy` from this server (sendfile and copy modes) against
/// `nbdkit file` serving the same bytes. Skipped unless `NBD_BENCH=1`; run it
/// with `tools/bench/nbd/run.sh`. Sizes: `NBD_BENCH_MIB` (default 512),
/// rounds: `NBD_BENCH_ROUNDS` (default 3).
final class NBDBenchmarkTests: XCTestCase {
    /// A volume that is one file, as a CIM region file would be.
    final class FileVolume: Volume {
        let file: RegionFile
        let size: UInt64
        let format = "bench"
        init(file: RegionFile) {
            self.file = file
            self.size = file.size / 4096 * 4096
        }
        func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
            guard offset <= size, UInt64(buffer.count) <= size - offset else {
                throw VolumeError.outOfRange(offset: offset, length: UInt64(buffer.count), size: size)
            }
            do { try file.read(into: buffer, at: offset) } catch { throw VolumeError.io("\(error)") }
        }
        func segments(offset: UInt64, length: UInt64) throws -> [VolumeSegment] {
            guard offset <= size, length <= size - offset else {
                throw VolumeError.outOfRange(offset: offset, length: length, size: size)
            }
            return [.file(file, offset: offset, length: length)]
        }
    }

    func testThroughputAgainstNbdkit() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard environment["NBD_BENCH"] == "1" else { throw XCTSkip("set NBD_BENCH=1 (tools/bench/nbd/run.sh) to benchmark") }
        let mebibytes = Int(environment["NBD_BENCH_MIB"] ?? "") ?? 512
        let rounds = Int(environment["NBD_BENCH_ROUNDS"] ?? "") ?? 3
        for tool in ["nbdcopy", "nbdkit"] where !FileManager.default.isExecutableFile(atPath: "/usr/bin/\(tool)") {
            throw XCTSkip("\(tool) is not installed")
        }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nbdbench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let imagePath = directory.appendingPathComponent("image.bin").path
        try Self.writeRandomFile(path: imagePath, mebibytes: mebibytes)
        let volume = FileVolume(file: try RegionFile(path: imagePath))
        let guid = try XCTUnwrap(ExportGUID("5eb3c2a1-0000-4000-8000-000000000001"))

        var results: [(String, Double)] = []
        for (label, sendfile) in [("cimnbd sendfile", true), ("cimnbd copy", false)] {
            let registry = ExportRegistry()
            try registry.add(guid: guid, volume: volume, description: "bench")
            var logger = Logger(label: "cimnbd.nbd")
            logger.logLevel = .error
            let server = NBDServer(configuration: NBDServerConfiguration(sendfile: sendfile ? .always : .never), registry: registry, logger: logger)
            try await server.start(listenAddresses: [try SocketAddress(ipAddress: "127.0.0.1", port: 0)])
            let uri = "nbd://127.0.0.1:\(server.boundPorts.first ?? 0)/\(guid)"
            let rate = try Self.measure(uri: uri, bytes: volume.size, rounds: rounds)
            results.append((label, rate))
            try await server.shutdown()
        }

        // nbdkit's file plugin on the same file, on a free port.
        let nbdkitPort = 20000 + Int(getpid() % 20000)
        let nbdkit = try Self.spawn("/usr/bin/nbdkit", ["--foreground", "--read-only", "--port", "\(nbdkitPort)",
                                                        "--ipaddr", "127.0.0.1", "file", imagePath])
        defer {
            kill(nbdkit, SIGTERM)
            _ = Self.wait(nbdkit)
        }
        try await Task.sleep(nanoseconds: 500_000_000)
        results.append(("nbdkit file", try Self.measure(uri: "nbd://127.0.0.1:\(nbdkitPort)", bytes: volume.size, rounds: rounds)))

        print("nbdcopy to null:, \(mebibytes) MiB, best of \(rounds) rounds")
        for (label, rate) in results {
            let padded = label.padding(toLength: 18, withPad: " ", startingAt: 0)
            print("BENCH \(padded) \(String(format: "%8.0f", rate)) MiB/s")
        }
        XCTAssertTrue(results.allSatisfy { $0.1 > 0 })
    }

    /// Best throughput in MiB/s of `nbdcopy URI null:` over `rounds` runs.
    private static func measure(uri: String, bytes: UInt64, rounds: Int) throws -> Double {
        var best = 0.0
        for _ in 0..<rounds {
            let start = Date()
            let status = wait(try spawn("/usr/bin/nbdcopy", [uri, "null:"]))
            let seconds = Date().timeIntervalSince(start)
            guard status == 0 else { throw NSError(domain: "nbdcopy failed on \(uri)", code: Int(status)) }
            best = max(best, Double(bytes) / 1_048_576 / seconds)
        }
        return best
    }

    /// Starts a program (Foundation's Process busy-waits in async contexts on Linux).
    private static func spawn(_ path: String, _ arguments: [String]) throws -> pid_t {
        var pid: pid_t = 0
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // Threads of the concurrency pool block signals; a child inherits that
        // mask, and nbdkit would then ignore SIGTERM. Start it with none blocked.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let result = posix_spawn(&pid, path, nil, &attributes, argv, environ)
        guard result == 0 else { throw NSError(domain: "posix_spawn \(path)", code: Int(result)) }
        return pid
    }

    /// Waits for a child; returns its exit status (or -1).
    private static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
    }

    private static func writeRandomFile(path: String, mebibytes: Int) throws {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var generator = SplitMix(seed: 7)
        var chunk = [UInt64](repeating: 0, count: 1 << 17)  // 1 MiB
        for _ in 0..<mebibytes {
            for i in chunk.indices { chunk[i] = generator.next() }
            try handle.write(contentsOf: chunk.withUnsafeBytes { Data($0) })
        }
    }
}
