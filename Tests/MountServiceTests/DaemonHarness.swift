import Foundation
import XCTest
@testable import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// Runs the real `cimnbd` binary: a daemon in the background, and CLI calls.
final class DaemonHarness {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static var binary: String {
        // The test bundle sits in the build products folder, beside the cimnbd executable.
        let products = Bundle.allBundles.first { $0.bundlePath.hasSuffix(".xctest") }?.bundleURL.deletingLastPathComponent()
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return products.appendingPathComponent("cimnbd").path
    }

    let work: String
    let control: String
    let state: String
    let port: Int
    private(set) var daemon: Process?
    private var logHandle: FileHandle?
    var logPath: String { work + "/daemon.log" }

    init(label: String) throws {
        work = NSTemporaryDirectory() + "cimnbd-daemon-\(label)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        control = work + "/control.sock"
        state = work + "/state.json"
        port = DaemonHarness.freePort()
    }

    deinit {
        stop()
        _ = try? DaemonHarness.run("/bin/rm", ["-rf", work])
    }

    var authority: String { "127.0.0.1:\(port)" }
    func uri(_ guid: String) -> String { "nbd://\(authority)/\(guid)" }

    /// A TCP port nothing listens on right now.
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
        address.sin_port = 0
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Starts `cimnbd serve` and waits until the control socket answers.
    func start(demo: Bool = false, extra: [String] = []) throws {
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DaemonHarness.binary)
        process.arguments = ["serve", "--listen", authority, "--control", control, "--state", state] + (demo ? [] : ["--no-demo"]) + extra
        process.standardOutput = log
        process.standardError = log
        try process.run()
        daemon = process
        logHandle = log
        for _ in 0..<200 {
            if (try? cli(["list", "--control", control]).status) == 0 { return }
            guard process.isRunning else { break }
            usleep(50_000)
        }
        throw CimError.invalidInput("daemon did not come up: \((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")")
    }

    /// Stops the daemon (SIGTERM by default) and waits for it.
    func stop(signal: Int32 = SIGTERM) {
        guard let daemon, daemon.isRunning else { return }
        kill(daemon.processIdentifier, signal)
        daemon.waitUntilExit()
        self.daemon = nil
    }

    func cli(_ arguments: [String]) throws -> Result {
        try DaemonHarness.run(DaemonHarness.binary, arguments)
    }

    /// `cimnbd ARGS --control CONTROL`.
    func control(_ arguments: [String]) throws -> Result {
        try cli(arguments + ["--control", control])
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String], timeout: TimeInterval = 300) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes concurrently so a chatty child cannot block on a full pipe.
        final class Box: @unchecked Sendable { var data = Data() }
        let errBox = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errBox.data = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let errData = errBox.data
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Mounts `uri` with nbdfuse (which stays in the foreground while
    /// mounted) at `mountPoint` and waits for its file to appear. Output goes to
    /// the daemon log. Unmount with ``unmountFuse(_:)``.
    func startNBDFuse(_ nbdfuse: String, uri: String, mountPoint: String) throws -> Process {
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: nbdfuse)
        process.arguments = ["-r", mountPoint, uri]
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        for _ in 0..<200 where process.isRunning {
            var info = stat()
            if stat(mountPoint + "/nbd", &info) == 0, info.st_size > 0 { return process }
            usleep(50_000)
        }
        throw CimError.invalidInput("nbdfuse did not come up for \(uri)")
    }

    func unmountFuse(_ mountPoint: String, _ process: Process) {
        _ = try? DaemonHarness.run("/usr/bin/fusermount3", ["-u", mountPoint])
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    /// Finds a tool on PATH (nbdinfo, nbdcopy, qemu-img...).
    static func tool(_ name: String) -> String? {
        for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] where FileManager.default.isExecutableFile(atPath: dir + "/" + name) {
            return dir + "/" + name
        }
        return nil
    }

    /// Writes a small tree and a CIM image of it; returns the image directory.
    func makeImage(name: String, files: Int = 20, bigFileBytes: Int = 3 << 20) throws -> String {
        let tree = work + "/tree-" + name, images = work + "/images-" + name
        try FileManager.default.createDirectory(atPath: tree + "/sub", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
        for i in 0..<files {
            try Data("file \(i) of \(name)\n".utf8).write(to: URL(fileURLWithPath: tree + "/sub/f\(i).txt"))
        }
        var big = [UInt8](repeating: 0, count: bigFileBytes)
        for i in big.indices { big[i] = UInt8(truncatingIfNeeded: (i &* 31) ^ (i >> 9)) }
        try Data(big).write(to: URL(fileURLWithPath: tree + "/big.bin"))
        try FileManager.default.createSymbolicLink(atPath: tree + "/link", withDestinationPath: "sub/f1.txt")
        _ = try CimWriter().createImage(from: tree, imagePath: images + "/\(name).cim", options: CimWriterOptions())
        return images
    }
}
