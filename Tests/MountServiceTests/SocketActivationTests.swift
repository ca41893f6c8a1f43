import Foundation
import XCTest
@testable import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// `cimnbd serve` under `systemd-socket-activate`: sockets passed in
/// LISTEN_FDS, READY=1/STOPPING=1 on a NOTIFY_SOCKET the test binds, the
/// mount table across a restart of the activated process.
final class SocketActivationTests: XCTestCase {
    let guid = "5eab4849-5bd1-4a5d-9cae-3d4e5f607182"

    func require(_ name: String) throws -> String {
        guard let path = DaemonHarness.tool(name) else { throw XCTSkip("\(name) is not installed (Debian: systemd)") }
        return path
    }

    /// A datagram socket standing in for systemd's notification socket.
    final class NotifySocket {
        let path: String
        let fd: Int32

        init(path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0 else { throw CimError.invalidInput("bind \(path): \(String(cString: strerror(errno)))") }
        }

        deinit { close(fd) }

        /// The next datagram, or nil after `timeout` seconds.
        func receive(timeout: Int) -> String? {
            var polled = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&polled, 1, Int32(timeout * 1000)) == 1 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
        }
    }

    /// `systemd-socket-activate … cimnbd serve`, which binds both sockets at
    /// once and execs the daemon on the first connection.
    struct Activated {
        /// A shell that waits for it: systemd-socket-activate closes every
        /// descriptor but the sockets before exec, which Foundation's Process
        /// would take for the child's exit, so it is not started directly.
        let shell: Process
        /// systemd-socket-activate's PID, the daemon's once it has exec'd.
        let pid: pid_t

        /// SIGTERM, then the daemon's exit status.
        func stop() -> Int32 {
            kill(pid, SIGTERM)
            shell.waitUntilExit()
            return shell.terminationStatus
        }
    }

    func activate(_ tool: String, _ d: DaemonHarness, notify: String) throws -> Activated {
        let pidFile = d.work + "/activate.pid"
        unlink(pidFile)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "\"$@\" & echo $! > \(pidFile); wait $!", "sh",
                             tool, "-l", d.authority, "--fdname=nbd", "-l", d.control, "--fdname=control",
                             "-E", "NOTIFY_SOCKET=\(notify)",
                             DaemonHarness.binary, "serve", "--no-demo", "--state", d.state, "--control", d.control]
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: d.logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: d.control) { usleep(50_000) }
        let pid = pid_t((try? String(contentsOfFile: pidFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        guard pid > 0 else { throw CimError.invalidInput("systemd-socket-activate did not start") }
        return Activated(shell: process, pid: pid)
    }

    func inode(_ path: String) -> UInt64 {
        var info = stat()
        return stat(path, &info) == 0 ? UInt64(info.st_ino) : 0
    }

    func testActivatedDaemonServesOnInheritedSocketsAndKeepsItsMountsAcrossARestart() throws {
        let tool = try require("systemd-socket-activate")
        let nbdinfo = try require("nbdinfo"), nbdcopy = try require("nbdcopy")
        let d = try DaemonHarness(label: "activation")
        let images = try d.makeImage(name: "activated")
        _ = FileManager.default.createFile(atPath: d.logPath, contents: nil)
        let notify = try NotifySocket(path: d.work + "/notify.sock")

        var process = try activate(tool, d, notify: notify.path)
        let controlInode = inode(d.control)
        XCTAssertNotEqual(controlInode, 0, "systemd-socket-activate did not bind \(d.control)")
        // The first connection starts the daemon; it answers on the inherited socket.
        var r = try d.control(["list"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let ready = notify.receive(timeout: 20)
        XCTAssertTrue(ready?.contains("READY=1") == true, "no READY=1: \(ready ?? "nothing")")
        XCTAssertEqual(inode(d.control), controlInode, "the daemon replaced the control socket instead of using it")

        r = try d.control(["mount", images, "activated.cim", "--volume-id", guid])
        XCTAssertEqual(r.status, 0, r.stderr)
        // The URI printed names the inherited listener's address.
        XCTAssertTrue(r.stdout.contains("nbd://\(d.authority)/\(guid)"), r.stdout)
        r = try DaemonHarness.run(nbdinfo, ["--list", "nbd://\(d.authority)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("export=\"\(guid)\""), r.stdout)
        let first = d.work + "/first.ext4"
        r = try DaemonHarness.run(nbdcopy, [d.uri(guid), first])
        XCTAssertEqual(r.status, 0, r.stderr)

        let log = (try? String(contentsOfFile: d.logPath, encoding: .utf8)) ?? ""
        XCTAssertTrue(log.contains("listening on inherited socket"), log)
        XCTAssertFalse(log.contains("listening on 127.0.0.1:10809"), "bound the default port although activated: \(log)")

        // SIGTERM: STOPPING=1, a clean exit; the socket file is systemd's and stays.
        XCTAssertEqual(process.stop(), 0)
        XCTAssertTrue(notify.receive(timeout: 10)?.contains("STOPPING=1") == true)
        XCTAssertTrue(FileManager.default.fileExists(atPath: d.control))

        // Restart, as systemd would after a crash. systemd keeps its sockets
        // across the restart; systemd-socket-activate has none left, so the
        // stale socket file is removed for it to bind again.
        unlink(d.control)
        process = try activate(tool, d, notify: notify.path)
        defer { _ = process.stop() }
        r = try DaemonHarness.run(nbdinfo, ["--list", "nbd://\(d.authority)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("export=\"\(guid)\""), "the mount table was not restored: \(r.stdout)")
        XCTAssertTrue(notify.receive(timeout: 20)?.contains("READY=1") == true)
        r = try d.control(["list", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains(guid), r.stdout)
        let second = d.work + "/second.ext4"
        r = try DaemonHarness.run(nbdcopy, [d.uri(guid), second])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try DaemonHarness.run("/usr/bin/cmp", [first, second]).status, 0)
    }

    func testMalformedActivationEnvironmentIsRefused() throws {
        for (variables, expected) in [
            (["LISTEN_FDS=x"], "LISTEN_FDS=x is malformed"),
            (["LISTEN_FDS=2", "LISTEN_FDNAMES=nbd"], "LISTEN_FDNAMES=nbd (1 names for 2 descriptors) is malformed"),
            // Descriptor 3 is not a socket here (or not open at all).
            (["LISTEN_FDS=1", "LISTEN_FDNAMES=nbd"], "descriptor 3 (nbd)"),
        ] {
            // exec keeps the shell's PID, which LISTEN_PID must name.
            let script = "LISTEN_PID=$$ \(variables.joined(separator: " ")) exec \(DaemonHarness.binary) serve --no-demo --control /nonexistent/c.sock --state /nonexistent/s.json"
            let r = try DaemonHarness.run("/bin/sh", ["-c", script])
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertTrue(r.stderr.contains(expected), "\(variables): \(r.stderr)")
        }
    }
}
