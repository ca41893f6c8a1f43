import CimFS
import Foundation
import Logging
import VolumeSynth
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's control API: a Unix socket (mode 0600 by default) on which
/// the CLI sends one ``ControlRequest`` per connection and reads one
/// ``ControlResponse``. Requests are handled one at a time on a thread of
/// its own; the caller's credentials (SO_PEERCRED) decide access.
public final class ControlServer: @unchecked Sendable {
    public let path: String
    private let manager: MountManager
    private let logger: Logger
    private var listenFD: Int32 = -1
    /// False for a socket inherited from systemd, whose file systemd owns.
    private var ownsSocketFile = true
    /// Written to by ``stop()`` to end the accept loop. (shutdown(2) would
    /// also wake it, but on an inherited socket it would break systemd's copy.)
    private var wakeWrite: Int32 = -1
    private var thread: Thread?
    /// Largest request accepted, so a client cannot make the daemon allocate without bound.
    static let maximumRequestSize = 1 << 20

    public init(path: String, manager: MountManager, logger: Logger = Logger(label: "cimnbd.control")) {
        self.path = path
        self.manager = manager
        self.logger = logger
    }

    /// Binds the socket (replacing a stale one) and starts serving.
    public func start(mode: mode_t = 0o600) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MountError.failed(detail: "control socket: \(String(cString: strerror(errno)))") }
        var address = try ControlServer.address(path)
        unlink(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, chmod(path, mode) == 0, listen(fd, 16) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw MountError.failed(detail: "control socket \(path): \(message)")
        }
        serve(listening: fd)
        logger.info("control API on \(path)")
    }

    /// Serves on a listening socket bound by someone else (systemd socket
    /// activation: its mode and owner are the socket unit's). Its file is left
    /// in place by ``stop()``.
    public func start(inheritedDescriptor fd: Int32) throws {
        ownsSocketFile = false
        serve(listening: fd)
        logger.info("control API on inherited socket \(SystemdSocketActivation.localAddress(of: fd)?.pathname ?? "fd \(fd)")")
    }

    private func serve(listening fd: Int32) {
        listenFD = fd
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            logger.error("control socket: socketpair: \(String(cString: strerror(errno)))")
            return
        }
        wakeWrite = ends[1]
        let wakeRead = ends[0]
        let thread = Thread { [self] in self.serve(fd, wake: wakeRead) }
        thread.name = "cimnbd-control"
        self.thread = thread
        thread.start()
    }

    /// Stops accepting and removes the socket file.
    public func stop() {
        guard listenFD >= 0 else { return }
        // The accept thread closes the listening socket and its end of the pair on its way out.
        var byte: UInt8 = 1
        _ = send(wakeWrite, &byte, 1, Int32(MSG_NOSIGNAL))
        close(wakeWrite)
        wakeWrite = -1
        listenFD = -1
        if ownsSocketFile { unlink(path) }
    }

    static func address(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw MountError.failed(detail: "socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
        return address
    }

    private func serve(_ fd: Int32, wake: Int32) {
        defer {
            close(fd)
            close(wake)
        }
        var polled = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
        while true {
            let ready = poll(&polled, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                logger.error("control socket: poll: \(String(cString: strerror(errno)))")
                return
            }
            if polled[1].revents != 0 { return }
            guard polled[0].revents & Int16(POLLIN) != 0 else {
                logger.error("control socket: listening socket failed (poll events 0x\(String(polled[0].revents, radix: 16)))")
                return
            }
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED || errno == EAGAIN { continue }
                return
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (glibc hides the type without _GNU_SOURCE).
        var credentials: (pid: Int32, uid: UInt32, gid: UInt32) = (0, UInt32.max, UInt32.max)
        var length = socklen_t(12)
        let haveCredentials = getsockopt(client, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !data.contains(UInt8(ascii: "\n")) && data.count < ControlServer.maximumRequestSize {
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        let response: ControlResponse
        do {
            let request = try JSONDecoder().decode(ControlRequest.self, from: Data(data.prefix { $0 != UInt8(ascii: "\n") }))
            response = perform(request, uid: haveCredentials ? credentials.uid : UInt32.max, gid: haveCredentials ? credentials.gid : UInt32.max)
        } catch {
            response = ControlResponse(ok: false, error: .failed(detail: "malformed control request: \(error)"))
        }
        var out = [UInt8]((try? JSONEncoder().encode(response)) ?? Data("{\"ok\":false}".utf8))
        out.append(UInt8(ascii: "\n"))
        var done = 0
        while done < out.count {
            let n = out[done...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            done += n
        }
    }

    func perform(_ request: ControlRequest, uid: UInt32, gid: UInt32) -> ControlResponse {
        do {
            switch request.op {
            case .ping:
                return ControlResponse(ok: true)
            case .list:
                return ControlResponse(ok: true, mounts: manager.list())
            case .mount:
                guard let directory = request.directory, let name = request.name else {
                    throw MountError.failed(detail: "mount needs a directory and an image name")
                }
                var guid: CimGUID?
                if let text = request.guid {
                    guard let parsed = CimGUID(string: text) else { throw MountError.invalidGUID(text: text) }
                    guid = parsed
                }
                let defaults = MappingOptions()
                let mapping = MappingOptions(uid: request.uid ?? defaults.uid, gid: request.gid ?? defaults.gid,
                                             directoryMask: request.directoryMask ?? defaults.directoryMask,
                                             fileMask: request.fileMask ?? defaults.fileMask, root: request.root)
                let record = try manager.mount(directory: directory, name: name, flags: request.flags ?? 0, guid: guid,
                                               mapping: mapping, callerUID: uid, callerGID: gid)
                return ControlResponse(ok: true, record: record, uri: manager.uri(for: record.guid),
                                       kernelURI: manager.kernelURI(for: record.guid))
            case .dismount:
                guard uid == 0 || uid == getuid() else { throw MountError.accessDenied(path: "dismount needs root") }
                try manager.dismount(guid: request.guid ?? "", force: request.force ?? false)
                return ControlResponse(ok: true)
            case .setDevice:
                try manager.setDevice(guid: request.guid ?? "", device: request.device)
                return ControlResponse(ok: true)
            }
        } catch let error as MountError {
            return ControlResponse(ok: false, error: error)
        } catch {
            return ControlResponse(ok: false, error: .failed(detail: "\(error)"))
        }
    }
}
