@_spi(Harness) import CimFS

// libFuzzer target: the CIM reader on an image given as bytes (format in
// CimFuzzInput). Opens the image, walks the tree and, for every entry met,
// stats it, reads its metadata and the start and end of each stream, looks
// its path up again, and verifies small images as `cim verify` does.
// Errors are the expected outcome for most inputs; a crash, a trap, a hang or
// a sanitizer report is a finding.

// libFuzzer calls the target from one thread only.
nonisolated(unsafe) private let arena = CimFuzzArena()

/// Entries visited per input: enough for every fixture, bounded so that one
/// input with millions of FileIDs costs no more than a few milliseconds.
private let entryBudget = 256
/// Bytes read from each end of a stream.
private let readLength = 4096

/// Images with at most this many entries and alternate streams are also verified.
private let verifyLimit = 8

private struct BudgetExhausted: Error {}

// Alternate streams met by exercise() in the current input.
nonisolated(unsafe) private var streamsSeen = 0

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCimReader(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = CimFuzzInput(UnsafeRawBufferPointer(start: start, count: count))
    guard let files = CimFuzzImageFiles(input, in: arena) else { return 0 }
    let image: CimImage
    do {
        image = try CimImage(path: CimFuzzImageFiles.imagePath, opening: files.open)
    } catch {
        _ = "\(error)"  // error messages quote input bytes: format them too
        return 0
    }
    streamsSeen = 0
    exercise(image, id: image.rootID, path: "\\")
    var visited = 0
    do {
        try image.walk { _, child, components in
            visited += 1
            guard visited <= entryBudget else { throw BudgetExhausted() }
            exercise(image, id: child.fileID, path: "\\" + components.joined(separator: "\\"))
        }
    } catch {
        _ = "\(error)"
    }
    // verify() reads every stream through a fresh 1 MiB buffer, which under
    // AddressSanitizer costs ~0.2 ms a stream: only for small images, so
    // the fuzzer keeps its pace on the rest.
    if visited + streamsSeen <= verifyLimit {
        let report = image.verify()
        _ = report.problems.joined(separator: "\n")
    }
    return 0
}

/// Everything a client of the reader (translator, `cim` commands) asks of one entry.
private func exercise(_ image: CimImage, id: CimFileID, path: String) {
    do {
        _ = try image.stat(id)
        let entry = try image.entry(id)
        _ = try image.securityDescriptor(of: id)
        _ = try image.extendedAttributes(of: id)
        _ = try image.reparseData(of: id)
        if entry.isDirectory {
            _ = try image.children(of: id)
        } else {
            try readEnds(of: entry.defaultStream, image: image, id: id)
        }
        for stream in try image.alternateStreams(of: id) {
            streamsSeen += 1
            try readEnds(of: stream.stream, image: image, id: id)
            _ = try image.alternateStream(named: stream.name, of: id)
        }
        _ = try image.lookup(path: path)
    } catch {
        _ = "\(error)"
    }
}

private func readEnds(of stream: CimStream, image: CimImage, id: CimFileID) throws {
    _ = try image.layout(of: stream, fileID: id)
    _ = try image.read(stream, at: 0, length: readLength, fileID: id)
    if stream.length > UInt64(readLength) {
        _ = try image.read(stream, at: stream.length - UInt64(readLength), length: readLength, fileID: id)
    }
}
