import ArgumentParser
import CimFS
import Foundation
import Logging
import MountService
import NBDServer
import NIOCore
import ServiceLifecycle
import VolumeSynth

/// `cimnbd serve`: the daemon.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the NBD server, the control API and the mount table in the foreground.",
        discussion: """
            Every mounted image is exported read-only as an ext4 volume under its volume GUID: \
            nbd://HOST/GUID. Mounts are saved in the state file and come back when the daemon \
            starts again. With no state and no --no-demo, a built-in demo image is mounted \
            under the fixed GUID \(DemoImage.guid). Stop with Ctrl-C or SIGTERM.

            Socket activation (systemd, systemd-socket-activate): listening sockets passed in \
            LISTEN_FDS/LISTEN_FDNAMES are used instead of binding: the one named "control" is the \
            control socket, "metrics" the metrics listener, any other name (the units use "nbd") \
            serves NBD, and --listen/--socket are then ignored. With NOTIFY_SOCKET set \
            (Type=notify), READY=1 is sent once the mount table is restored, STOPPING=1 on shutdown.

            Examples:
              cimnbd serve
              cimnbd serve --listen 127.0.0.1:10809 --listen [::1]:10809 --socket /run/cimnbd/nbd.sock
              cimnbd serve --control /tmp/cimnbd.sock --state /tmp/cimnbd.json --no-demo
              cimnbd serve --listen 0.0.0.0:10809 --allow 192.168.1.0/24 --allow fd00::/8 --max-connections 500
              cimnbd serve --listen 0.0.0.0:10809 --tls require --tls-certificates /etc/pki/cimnbd
              cimnbd serve --listen 0.0.0.0:10809 --tls require --tls-psk /etc/cimnbd/keys.psk
              cimnbd serve --no-demo --metrics 127.0.0.1:9109 --log-format json
              systemd-socket-activate -l 127.0.0.1:10809 --fdname=nbd -l /run/cimnbd/control.sock --fdname=control cimnbd serve --no-demo

            Limits: at most --max-connections connections (more are closed at once and logged); \
            a client has at most 16 requests in flight (up to 16 x 32 MiB of reply data); the \
            rest of its requests wait in its own TCP window. A client must finish the handshake \
            within --handshake-timeout. On SIGTERM (and 'dismount --force') replies already \
            being sent are finished (at most 10 s), requests not yet started are answered with \
            NBD_ESHUTDOWN, then connections close; a client still in the handshake gets \
            NBD_REP_ERR_SHUTDOWN for its next option (closed after 1 s if it sends none). A damaged state file is renamed to \
            STATE.corrupt-<time> and the daemon starts with an empty mount table.

            TLS works as in nbdkit (see README, section TLS): certificates made with certtool, \
            keys with psktool; clients use nbds:// URIs. --tls require applies to TCP listeners \
            only: Unix sockets (--socket) stay plain text, since the kernel's nbd driver cannot \
            carry TLS, for 'cimnbd attach' and 'mount --attach' (which uses the first one under \
            --tls require); the start log says so.
            """
    )

    @Option(name: .long, help: ArgumentHelp("TCP address to listen on, HOST:PORT; repeatable. Default 127.0.0.1:10809 (the IANA NBD port). Example: --listen 0.0.0.0:10809", valueName: "ADDR"))
    var listen: [String] = []

    @Option(name: .long, help: ArgumentHelp("Unix socket to listen on for NBD clients; repeatable. Example: --socket /run/cimnbd/nbd.sock", valueName: "PATH"))
    var socket: [String] = []

    @Option(name: .long, help: ArgumentHelp("Control socket for 'cimnbd mount/dismount/list' (mode 0600).", valueName: "PATH"))
    var control: String = ControlClient.defaultPath

    @Option(name: .customLong("control-mode"), help: ArgumentHelp("Octal permission bits of the control socket. A caller that is not root may mount only images it can read. Example: --control-mode 660", valueName: "MODE"))
    var controlMode: String = "600"

    @Option(name: .long, help: ArgumentHelp("State file holding the mount table. Example: --state /var/lib/cimnbd/mounts.json", valueName: "PATH"))
    var state: String = "/var/lib/cimnbd/mounts.json"

    @Option(name: .customLong("max-connections"), help: ArgumentHelp("Most client connections open at once (all listeners, any phase); connections beyond it are closed as soon as they are accepted, and logged. Lowered at start if the descriptor limit (ulimit -n) cannot hold that many. Example: --max-connections 500", valueName: "N"))
    var maxConnections: Int = NBDServerConfiguration.defaultMaximumConnections

    @Option(name: .customLong("handshake-timeout"), help: ArgumentHelp("Seconds a client may take from connecting to choosing an export before it is disconnected; 0 waits forever. Example: --handshake-timeout 10", valueName: "S"))
    var handshakeTimeout: Int64 = 60

    @Option(name: .long, help: ArgumentHelp("Only clients whose address is in this block may connect over TCP (CIDR, IPv4 or IPv6; a bare address is one host); repeatable. Others are closed before the handshake, and logged. Unix-socket clients are not affected. Default: everyone. Example: --allow 192.168.1.0/24 --allow ::1", valueName: "CIDR"))
    var allow: [String] = []

    @Flag(name: .customLong("describe-paths"), help: "Show each image's host path in the export description clients see (nbdinfo --list). By default only the image's file name is shown, e.g. 'layer.cim (CIM as ext4)'. Example: cimnbd serve --describe-paths")
    var describePaths = false

    @Flag(name: .customLong("reads-on-io-pool"), help: "Serve every read from the blocking-I/O thread pool, as before cimnbd served page-cached reads on the event loop (more CPU per request; for comparison, or storage where RWF_NOWAIT blocks). Example: cimnbd serve --reads-on-io-pool")
    var readsOnIOPool = false

    @Option(name: .long, help: ArgumentHelp("When file data goes to the socket with sendfile instead of being copied (pread, then write): 'remote' (default) for TCP clients on other hosts only, since a client on this host (loopback, this host's own address, a Unix socket) receives copies faster and with less CPU; 'always' on every connection without TLS; 'never'. Example: --sendfile always", valueName: "WHEN"))
    var sendfile: SendfileUse = .remote

    @Flag(name: .customLong("no-demo"), help: "Do not mount the built-in demo image when nothing else is mounted.")
    var noDemo = false

    @Option(name: .long, help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "LEVEL"))
    var logLevel: String = "info"

    @OptionGroup(title: "TLS")
    var tls: TLSArguments

    @Option(name: .customLong("log-format"), help: ArgumentHelp(
        "Log lines on stderr: text (human-readable), or json (one object per line with time, level, label, source, message and the metadata: nbd.connection, nbd.peer, nbd.export). Example: --log-format json",
        valueName: "FORMAT"))
    var logFormat: LogFormat = .text

    @Option(name: .long, help: ArgumentHelp(
        "Serve Prometheus metrics at http://ADDR/metrics (HOST:PORT; per export bytes read, requests, errors, clients, latency; per daemon connections, handshakes, mounts). Off by default. Example: --metrics 127.0.0.1:9109",
        valueName: "ADDR"))
    var metrics: String?

    /// The values of `--log-format`.
    enum LogFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let format = logFormat
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler
            switch format {
            case .text: handler = StreamLogHandler.standardError(label: label)
            case .json: handler = JSONLogHandler(label: label)
            }
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "cimnbd")
        let activation: SystemdSocketActivation?
        do {
            activation = try SystemdSocketActivation.fromEnvironment()
            SystemdSocketActivation.unsetEnvironment()
        } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        if let activation, !activation.nbdSockets.isEmpty, !listen.isEmpty || !socket.isEmpty {
            logger.warning("systemd passed NBD sockets: --listen and --socket are ignored")
        }
        let metricsAddress: SocketAddress?
        do {
            metricsAddress = try metrics.map { try ServeCommand.parseAddress($0, option: "--metrics") }
        } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        let addresses: [SocketAddress]
        do {
            addresses = try (listen.isEmpty && socket.isEmpty ? ["127.0.0.1:10809"] : listen).map { try ServeCommand.parseAddress($0) }
        } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        var allowed: [NBDClientAddressRange] = []
        for text in allow {
            guard let range = NBDClientAddressRange(text) else {
                printError("--allow: \"\(text)\" is not an address block such as 192.168.1.0/24, 10.1.2.3 or fd00::/8")
                throw ExitCode(2)
            }
            allowed.append(range)
        }
        guard maxConnections > 0 else {
            printError("--max-connections: must be at least 1 (got \(maxConnections))")
            throw ExitCode(2)
        }
        guard handshakeTimeout >= 0 else {
            printError("--handshake-timeout: must be 0 (no limit) or more seconds (got \(handshakeTimeout))")
            throw ExitCode(2)
        }
        let serverTLS: NBDServerTLS
        do {
            serverTLS = try tls.load(logger: logger)
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
        var serverConfiguration = NBDServerConfiguration(handshakeTimeoutSeconds: handshakeTimeout, maximumConnections: maxConnections,
                                                         allowedClients: allowed, tls: serverTLS)
        serverConfiguration.readsOnEventLoop = !readsOnIOPool
        serverConfiguration.sendfile = sendfile
        if serverTLS.mode != .require, activation?.nbdSockets.isEmpty ?? true {
            for address in addresses where !ServeCommand.isLoopback(address) {
                logger.warning("listening on \(address) beyond loopback without --tls require: any client that can reach it may list and read every export (use --tls require, or --allow CIDR to limit who may connect)")
            }
        }
        guard let mode = UInt32(controlMode, radix: 8), mode <= 0o777 else {
            printError("--control-mode: \"\(controlMode)\" is not an octal mode such as 600")
            throw ExitCode(2)
        }
        let showDemo = !noDemo
        let daemon = CimNBDDaemon(
            configuration: .init(listen: addresses, unixSockets: socket, controlPath: control, controlMode: mode_t(mode), statePath: state,
                                 server: serverConfiguration, describePaths: describePaths,
                                 metricsAddress: metricsAddress, activation: activation),
            logger: logger, makeVolume: VolumeFactories.daemon,
            onReady: { daemon in
                guard showDemo, daemon.manager.list().isEmpty else { return }
                let image = try DemoImage.create()
                let directory = (image as NSString).deletingLastPathComponent
                let record = try daemon.manager.mount(directory: directory, name: "demo.cim", flags: 0,
                                                      guid: CimGUID(string: DemoImage.guid), mapping: MappingOptions())
                let uri = daemon.manager.uri(for: record.guid)
                writeStdoutText("""
                    cimnbd: serving the built-in demo image \(image)
                      nbdinfo \(uri)
                      nbdcopy \(uri) demo.ext4 && e2fsck -fn demo.ext4
                      nbdfuse /tmp/demo-nbd \(uri) &  mount -o loop,ro /tmp/demo-nbd/nbd /mnt
                    Stop with Ctrl-C.

                    """)
                // Forget the demo on the next start: it lives in a temporary directory.
                try daemon.manager.dismountOnShutdown(guid: record.guid)
            })
        let group = ServiceGroup(configuration: .init(services: [daemon], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
    }

    /// Parses `HOST:PORT`, `[IPv6]:PORT` or `PORT`; errors name `option`.
    static func parseAddress(_ text: String, option: String = "--listen") throws -> SocketAddress {
        var host = "127.0.0.1", portText = text
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = String(text[text.index(after: close)...].dropFirst())
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
        }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw ValidationError("\(option): \"\(text)\" is not HOST:PORT")
        }
        do {
            return try SocketAddress(ipAddress: host, port: port)
        } catch {
            throw ValidationError("\(option): \"\(host)\" is not an IP address")
        }
    }

    /// True for 127.0.0.0/8 and ::1: addresses only this host can reach.
    static func isLoopback(_ address: SocketAddress) -> Bool {
        switch address {
        case .v4(let v4):
            return UInt32(bigEndian: v4.address.sin_addr.s_addr) >> 24 == 127
        case .v6:
            return address.ipAddress == "::1"
        default:
            return true
        }
    }
}

extension SendfileUse: ExpressibleByArgument {}
