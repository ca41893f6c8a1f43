import ArgumentParser
import CimFS
import Foundation
import MountService
import NBDKernel

/// Options shared by the commands that talk to the daemon.
struct ControlArguments: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The daemon's control socket.", valueName: "PATH"))
    var control: String = ControlClient.defaultPath

    /// Sends a request; on failure prints one line and exits with the error's code.
    func send(_ request: ControlRequest) throws -> ControlResponse {
        let response: ControlResponse
        do {
            response = try ControlClient(path: control).send(request)
        } catch let error as MountError {
            printError("\(error)")
            throw ExitCode(error.exitCode)
        } catch {
            printError("\(error)")
            throw ExitCode(69)
        }
        if !response.ok {
            let error = response.error ?? .failed(detail: "the daemon refused the request")
            printError("\(error)")
            throw ExitCode(error.exitCode)
        }
        return response
    }
}

/// `cimnbd mount`.
struct MountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount a CIM image as a read-only volume exported over NBD (CimMountImage).",
        discussion: """
            Mirrors CimMountImage(imageContainingPath, imageName, flags, volumeId): the image \
            NAME in DIR is exported under GUID (random when --volume-id is not given). Prints the \
            GUID and the NBD URI. A single path to the .cim is accepted too.

            Flags (--flags): 0x0 none; 0x2 enable DAX (accepted, no effect); 0x1 child-only, \
            0x10 block-device CIM, 0x20 single-file CIM, 0x80 verified CIM are refused as not \
            supported; any other bit is an invalid argument.

            Exit codes: 0 mounted; 10 invalid argument (flag or GUID); 11 path not found (the \
            directory); 12 file not found (the image); 13 access denied; 14 already exists \
            (GUID in use); 17 invalid image; 69 daemon not running.

            Examples:
              cimnbd mount /images layer.cim
              cimnbd mount /images layer.cim --volume-id 6f1c0e9e-3b1a-4c55-9a57-0d5f6f0e7a11
              cimnbd mount /images/layer.cim --uid 1000 --gid 1000 --fmask 022
            """
    )

    @Argument(help: "The image's directory (or the path to the .cim file, with no NAME).")
    var directory: String

    @Argument(help: "The image name, e.g. layer.cim.")
    var name: String?

    @Option(name: .customLong("volume-id"), help: ArgumentHelp("The volume GUID to export under. Default: a random GUID.", valueName: "GUID"))
    var volumeID: String?

    @Option(name: .long, help: ArgumentHelp("CimMountImage flags, decimal or 0x hex. Example: --flags 0x2", valueName: "N"))
    var flags: String = "0"

    @Flag(name: .long, help: "Also attach the volume as a kernel block device /dev/nbdN (as 'cimnbd attach'); prints the device. Needs root and the nbd module. Under 'serve --tls require' it attaches through the daemon's Unix socket (serve --socket PATH), as the kernel cannot carry TLS; without one it refuses. Example: cimnbd mount /images layer.cim --attach")
    var attach = false

    @Option(name: .long, help: ArgumentHelp("With --attach: number of connections to the server (1-16).", valueName: "N"))
    var connections: Int = 1

    @Option(name: .customLong("dead-conn-timeout"), help: ArgumentHelp("With --attach: seconds the kernel keeps I/O waiting when every connection is lost, so a restarted daemon can reconnect the device before readers see an error.", valueName: "S"))
    var deadConnTimeout: UInt64 = 120

    @OptionGroup var mapping: MappingArguments
    @OptionGroup var daemon: ControlArguments

    func run() throws {
        var dir = directory, image = name ?? ""
        if name == nil {
            let url = URL(fileURLWithPath: directory)
            dir = url.deletingLastPathComponent().path
            image = url.lastPathComponent
        }
        let flagValue = flags.lowercased().hasPrefix("0x") ? UInt32(flags.dropFirst(2), radix: 16) : UInt32(flags)
        guard let flagValue else {
            printError("\(MountError.invalidFlag(flags: 0, detail: "\"\(flags)\" is not a number"))")
            throw ExitCode(10)
        }
        let options = try mapping.options()
        let absolute = dir.hasPrefix("/") ? dir : FileManager.default.currentDirectoryPath + "/" + dir
        let response = try daemon.send(ControlRequest(op: .mount, directory: absolute, name: image, flags: flagValue, guid: volumeID,
                                                      uid: options.uid, gid: options.gid, directoryMask: options.directoryMask,
                                                      fileMask: options.fileMask, root: options.root))
        let guid = response.record?.guid ?? ""
        print(guid)
        print(response.uri ?? "")
        guard attach, let uri = response.uri else { return }
        // A daemon older than `kernelURI` answers without it: its `uri` then.
        guard let kernelURI = response.kernelURI ?? (uri.hasPrefix("nbds:") ? nil : uri) else {
            _ = try? ControlClient(path: daemon.control).send(ControlRequest(op: .dismount, guid: guid, force: true))
            printError("""
                --attach refused, volume dismounted again: the daemon requires TLS on TCP (--tls require) and serves \
                no Unix socket, and the kernel's nbd driver cannot carry TLS. Start 'cimnbd serve' with --socket PATH \
                as well (e.g. --socket /run/cimnbd/nbd.sock; --tls require leaves Unix sockets plain, their file mode \
                decides who may connect): mount --attach then attaches through it.
                """)
            throw ExitCode(1)
        }
        do {
            let server = try NBDServerAddress(parsing: kernelURI)
            let attachment = try NBDDeviceManager.attach(NBDAttachOptions(exportName: guid, server: server, connections: connections,
                                                                                  deadConnTimeoutSeconds: deadConnTimeout))
            _ = try daemon.send(ControlRequest(op: .setDevice, guid: guid, device: attachment.device))
            print(attachment.device)
        } catch let exit as ExitCode {
            throw exit
        } catch {
            // Leave nothing half done: the volume was mounted for the attach only.
            _ = try? ControlClient(path: daemon.control).send(ControlRequest(op: .dismount, guid: guid, force: true))
            printError("attach failed, volume dismounted again: \(error)")
            throw ExitCode(1)
        }
    }
}

/// `cimnbd dismount`.
struct DismountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dismount",
        abstract: "Remove a mounted volume (CimDismountImage).",
        discussion: """
            Refuses while NBD clients are connected (exit 16) unless --force, which disconnects \
            them gracefully: replies already being sent are finished (at most 10 s), requests \
            not yet started get NBD_ESHUTDOWN, then the connections close. Exit 15 when no volume has that GUID. A volume attached as /dev/nbdN (mount \
            --attach) is detached first; that fails while the device is mounted.

            Example: cimnbd dismount 6f1c0e9e-3b1a-4c55-9a57-0d5f6f0e7a11 --force
            """
    )

    @Argument(help: "The volume GUID.")
    var guid: String

    @Flag(name: .long, help: "Disconnect connected clients (after finishing replies already being sent). Example: cimnbd dismount GUID --force")
    var force = false

    @OptionGroup var daemon: ControlArguments

    func run() throws {
        let mounts = try daemon.send(ControlRequest(op: .list)).mounts ?? []
        if let device = mounts.first(where: { CimGUID(string: $0.guid) == CimGUID(string: guid) })?.device {
            do {
                try NBDDeviceManager.detach(device)
            } catch {
                printError("cannot detach \(device) first: \(error)")
                throw ExitCode(16)
            }
            _ = try daemon.send(ControlRequest(op: .setDevice, guid: guid, device: nil))
        }
        _ = try daemon.send(ControlRequest(op: .dismount, guid: guid, force: force))
    }
}

/// `cimnbd list`.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List mounted volumes: GUID, image, size, format, clients, device.",
        discussion: "Examples: cimnbd list    cimnbd list --json"
    )

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    @OptionGroup var daemon: ControlArguments

    func run() throws {
        let mounts = try daemon.send(ControlRequest(op: .list)).mounts ?? []
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(mounts), as: UTF8.self))
            return
        }
        print("GUID                                  SIZE         FORMAT  CLIENTS  DEVICE      IMAGE")
        for m in mounts {
            let size = String(m.size)
            print("\(m.guid)  \(size)\(String(repeating: " ", count: max(1, 13 - size.count)))\(m.format)\(String(repeating: " ", count: max(1, 8 - m.format.count)))\(m.clients)\(String(repeating: " ", count: max(1, 9 - String(m.clients).count)))\((m.device ?? "-"))\(String(repeating: " ", count: max(1, 12 - (m.device ?? "-").count)))\(m.image)")
        }
    }
}
