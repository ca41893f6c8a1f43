import ArgumentParser
import NBDKernel
#if canImport(Glibc)
import Glibc
#endif

/// Parses --server. A URI may name the export; it must then agree with `export` when given.
private func serverAddress(_ text: String, export: String? = nil) throws -> NBDServerAddress {
    let address = try NBDServerAddress(parsing: text)
    if let export, let named = address.exportName, named != export {
        throw ValidationError("--server names export '\(named)' but the GUID argument is '\(export)'")
    }
    return address
}

private func deviceIndex(_ text: String?) throws -> UInt32? {
    guard let text else { return nil }
    var name = Substring(text)
    if name.hasPrefix("/dev/") { name = name.dropFirst(5) }
    guard name.hasPrefix("nbd"), let idx = UInt32(name.dropFirst(3)) else {
        throw ValidationError("--device must be /dev/nbdN (got '\(text)')")
    }
    return idx
}

/// `cimnbd attach GUID`: handshake with the server and connect a kernel /dev/nbdN.
struct AttachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Connect an exported image to a kernel NBD device and print the device.",
        discussion: """
            Does one NBD handshake per connection (NBD_OPT_GO for the export GUID), then hands \
            the sockets to the kernel with the generic netlink command NBD_CMD_CONNECT (the \
            ioctl interface when the netlink family is missing). /sys/block/nbdN/backend is set \
            to the GUID. Needs root and the nbd kernel module (modprobe nbd).
            Example: cimnbd attach 3f2a9c4e-5b1d-4e7a-9c2f-0d8e6b4a1c57 --connections 4
            """
    )

    @Argument(help: "Export name: the image's volume GUID.")
    var guid: String

    @Option(help: "Device to use, /dev/nbdN. Default: the kernel picks a free one.")
    var device: String?

    @Option(help: "Number of connections to the server (1-16).")
    var connections: Int = 1

    @Option(help: "Server: nbd://host[:port][/name] or nbd+unix:///name?socket=PATH.")
    var server: String = "nbd://127.0.0.1:10809"

    @Option(help: "Request timeout in seconds (kernel default when omitted).")
    var timeout: UInt64?

    @Option(name: .customLong("dead-conn-timeout"), help: "Seconds I/O waits for a reconnect (cimnbd reconnect) after every connection died.")
    var deadConnTimeout: UInt64?

    @Flag(help: .hidden)
    var ioctl = false

    func run() throws {
        try reportingErrors {
            let address = try serverAddress(server, export: guid)
            let options = NBDAttachOptions(exportName: guid, server: address, deviceIndex: try deviceIndex(device),
                                           connections: connections, timeoutSeconds: timeout,
                                           deadConnTimeoutSeconds: deadConnTimeout, forceIoctl: ioctl)
            let attachment = try NBDDeviceManager.attach(options)
            print(attachment.device)
        }
    }
}

/// `cimnbd detach /dev/nbdN|GUID`.
struct DetachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detach",
        abstract: "Disconnect a kernel NBD device (refuses while it is mounted).",
        discussion: "Example: cimnbd detach /dev/nbd0   or   cimnbd detach 3f2a9c4e-5b1d-4e7a-9c2f-0d8e6b4a1c57"
    )

    @Argument(help: "/dev/nbdN, or the GUID its backend names.")
    var target: String

    func run() throws {
        try reportingErrors {
            let device = try NBDDeviceManager.detach(target)
            print("detached \(device)")
        }
    }
}

/// `cimnbd status`.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "List kernel NBD devices: connected or not, backend GUID, size, mount points."
    )

    @Flag(help: "Also list devices that are not connected.")
    var all = false

    func run() throws {
        try reportingErrors {
            let reports = try NBDDeviceManager.status()
            var idle = 0
            for r in reports {
                if !r.connected { idle += 1; if !all { continue } }
                let state = r.connected ? "connected" : "idle"
                let size = r.sizeBytes.map { String($0) } ?? "-"
                let mounts = r.mountPoints.isEmpty ? "" : " mounted=" + r.mountPoints.joined(separator: ",")
                print("\(r.device.padding(12)) \(state.padding(10)) backend=\(r.backend ?? "-") size=\(size)\(mounts)")
            }
            if !all { print("(\(idle) of \(reports.count) devices idle; --all lists them)") }
        }
    }
}

/// `cimnbd reconnect /dev/nbdN|GUID`.
struct ReconnectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconnect",
        abstract: "Re-handshake with the server and give the device new connections (NBD_CMD_RECONFIGURE).",
        discussion: """
            After a server restart the kernel marks the connections dead; with --dead-conn-timeout \
            set at attach time, I/O waits that long for new ones. `reconnect` supplies them once. \
            With --watch it stays running, listens for the kernel's link-dead events and \
            reconnects (retrying while the server is down) until the device is detached.
            """
    )

    @Argument(help: "/dev/nbdN, or the GUID its backend names.")
    var target: String

    @Option(help: "Server: nbd://host[:port][/name] or nbd+unix:///name?socket=PATH. The export name defaults to the device's backend.")
    var server: String = "nbd://127.0.0.1:10809"

    @Option(help: "Number of new connections (1-16).")
    var connections: Int = 1

    @Flag(help: "Stay running and reconnect on every link-dead event.")
    var watch = false

    func run() throws {
        try reportingErrors {
            guard (1...16).contains(connections) else { throw ValidationError("--connections must be between 1 and 16") }
            let address = try serverAddress(server)
            if watch {
                try NBDDeviceManager.supervise(target, server: address, connections: connections) { line in
                    print("cimnbd reconnect: \(line)")
                    fflushStdout()
                }
            } else {
                let index = try NBDDeviceManager.reconnect(target, server: address, connections: connections)
                print("reconnected /dev/nbd\(index)")
            }
        }
    }
}

private func fflushStdout() { fflush(nil) }

private extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
