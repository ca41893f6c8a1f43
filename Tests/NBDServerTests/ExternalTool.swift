import Foundation
import XCTest

/// Runs a real tool (nbdinfo, nbdcopy, qemu-img, certtool…) found on PATH.
enum ExternalTool {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func path(_ tool: String) -> String? {
        ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin"].map { "\($0)/\(tool)" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `tool` with output captured in files under `directory`; skips the
    /// test when the tool is not installed, fails it on timeout.
    static func run(_ tool: String, _ arguments: [String], in directory: URL, timeout: TimeInterval = 120) throws -> Result {
        guard let path = path(tool) else { throw XCTSkip("\(tool) is not installed (see the packages in .ci/run)") }
        let outURL = directory.appendingPathComponent("\(tool)-\(UUID().uuidString).out")
        let errURL = directory.appendingPathComponent("\(tool)-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            XCTFail("\(tool) \(arguments) timed out")
        }
        process.waitUntilExit()
        return Result(status: process.terminationStatus,
                      stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }
}
