import ArgumentParser
import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// `cimnbd cim ls`.
struct CimListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List a directory of a CIM image.",
        discussion: "Example: cimnbd cim ls -l layer.cim '\\Windows\\System32'"
    )

    @Flag(name: .short, help: "Long format: FileID, attributes, size, last write time, link count.")
    var long = false

    @Argument(help: "Path to the image's .cim file.")
    var image: String

    @Argument(help: "Directory (or file) inside the image; \\ or / separated. Default: the root.")
    var path: String = "\\"

    func run() throws {
        try reportingErrors {
            let cim = try CimImage(path: image)
            let id = try cim.lookup(path: path)
            let entries: [CimDirectoryEntry]
            if try cim.entry(id).isDirectory {
                entries = try cim.children(of: id)
            } else {
                let name = path.split(whereSeparator: { $0 == "\\" || $0 == "/" }).last.map(String.init) ?? path
                entries = [CimDirectoryEntry(name: name, nameUnits: Array(name.utf16), fileID: id)]
            }
            for entry in entries {
                let display = try cim.entry(entry.fileID).isDirectory ? entry.name + "\\" : entry.name
                if long {
                    let stat = try cim.stat(entry.fileID)
                    let attrs = String(stat.attributes, radix: 16)
                    let size = String(stat.size)
                    print("\(String(repeating: " ", count: max(0, 8 - String(entry.fileID).count)))\(entry.fileID)  0x\(String(repeating: "0", count: max(0, 4 - attrs.count)))\(attrs)  \(String(repeating: " ", count: max(0, 12 - size.count)))\(size)  \(formatFileTime(stat.lastWriteTime))  \(stat.linkCount)  \(display)")
                } else {
                    print(display)
                }
            }
        }
    }
}

/// `cimnbd cim stat`.
struct CimStatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stat",
        abstract: "Show everything the image stores about one file.",
        discussion: "Example: cimnbd cim stat layer.cim '\\Windows\\notepad.exe'"
    )

    @Argument(help: "Path to the image's .cim file.")
    var image: String

    @Argument(help: "Path inside the image.")
    var path: String

    func run() throws {
        try reportingErrors {
            let cim = try CimImage(path: image)
            let id = try cim.lookup(path: path)
            let entry = try cim.entry(id)
            let stat = try cim.stat(id)
            print("Path:        \(path)")
            print("FileID:      \(id)")
            print("Type:        \(entry.isDirectory ? "directory" : "file")\(stat.isSparse ? " (sparse)" : "")")
            print("Size:        \(stat.size)")
            print("Attributes:  0x\(String(stat.attributes, radix: 16))")
            print("Links:       \(stat.linkCount)")
            print("Creation:    \(formatFileTime(stat.creationTime)) (\(stat.creationTime))")
            print("Last write:  \(formatFileTime(stat.lastWriteTime)) (\(stat.lastWriteTime))")
            print("Change:      \(formatFileTime(stat.changeTime)) (\(stat.changeTime))")
            print("Last access: \(formatFileTime(stat.lastAccessTime)) (\(stat.lastAccessTime))")
            print("Reparse tag: 0x\(String(stat.reparseTag, radix: 16))")
            if let sd = try cim.securityDescriptor(of: id) { print("Security:    \(hexString(sd))") }
            if let ea = try cim.extendedAttributes(of: id) { print("EA:          \(hexString(ea))") }
            if let reparse = try cim.reparseData(of: id) { print("Reparse:     \(hexString(reparse))") }
            if !entry.isDirectory {
                for run in try cim.layout(of: entry.defaultStream, fileID: id) {
                    switch run {
                    case .zeros(let length): print("Data run:    \(length) bytes of zeros")
                    case .region(let index, _, let offset, let length): print("Data run:    \(length) bytes at region \(index) offset \(offset)")
                    }
                }
            }
            for stream in try cim.alternateStreams(of: id) { print("Stream:      \(stream.name) (\(stream.size) bytes)") }
        }
    }
}

/// `cimnbd cim cat`.
struct CimCatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cat",
        abstract: "Write a file's default stream, or a named alternate stream, to stdout.",
        discussion: "Examples: cimnbd cim cat layer.cim '\\readme.txt'   cimnbd cim cat layer.cim '\\file.txt:Zone.Identifier'"
    )

    @Argument(help: "Path to the image's .cim file.")
    var image: String

    @Argument(help: "PATH or PATH:STREAM inside the image.")
    var path: String

    func run() throws {
        try reportingErrors {
            let cim = try CimImage(path: image)
            let (filePath, streamName) = splitStreamPath(path)
            let id = try cim.lookup(path: filePath)
            let stream: CimStream
            if let streamName, !streamName.isEmpty {
                guard let found = try cim.alternateStream(named: streamName, of: id) else {
                    throw CimError.notFound(path: path)
                }
                stream = found.stream
            } else {
                let entry = try cim.entry(id)
                guard !entry.isDirectory else { throw CimError.invalidInput("\(filePath): is a directory") }
                stream = entry.defaultStream
            }
            try cim.forEachChunk(of: stream, fileID: id) { writeStdout($0) }
        }
    }
}

/// `cimnbd cim verify`.
struct CimVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Read every object and stream of an image and check every invariant; exit 0 only when clean.",
        discussion: """
            Walks the tree and reads every stream, security descriptor, EA chain and
            reparse buffer, checking each against the format. Then proves the bytes:
            every entry of every objectid_<guid>_<n> file must lie inside its region
            file, the entries must be sorted by (length, digest), and each digest must
            be the first 24 bytes of SHA-512 of the object (objects of at most 24 bytes
            are stored inline). A mismatch names the object-id file, the entry index,
            the object's offset and length. An image whose digests all follow another
            algorithm gets one note and no digest check.

            Problems go to stderr, one per line; the exit code is 0 only when there are none.

            Example: cimnbd cim verify layer.cim
            """
    )

    @Argument(help: "Path to the image's .cim file.")
    var image: String

    func run() throws {
        let report = try reportingErrors { () -> CimVerifyReport in
            let cim = try CimImage(path: image)
            return cim.verify(progress: stderrIsTerminal ? { done, total in
                printProgress("verify: \(done)/\(total) files")
            } : nil)
        }
        if stderrIsTerminal { printProgress(nil) }
        for note in report.notes { printError("note: " + note) }
        for problem in report.problems { printError(problem) }
        print("\(image): \(report.filesChecked) files, \(report.entriesChecked) entries, \(report.bytesRead) bytes read, \(report.objectsChecked) objects checked against their digests, \(report.problems.count) problems")
        if !report.isClean { throw ExitCode(1) }
    }
}

/// Rewrites one progress line on a terminal's stderr; nil clears it.
func printProgress(_ text: String?) {
    writeStderr("\r\u{1B}[K" + (text ?? ""))
}
