@_spi(Harness) import CimFS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The files of one fuzz input, handed to the reader from memory as
/// ``RegionFile``s (``RegionFile/init(path:unownedContents:size:)``) through
/// `CimImage(path:opening:)`. The first file the reader opens (the `.cim`) is
/// the input's first file; each region file it asks for next, in its own
/// order (parents' sets, then the image's own), is the input's next file. So
/// the harness knows nothing of the header, and a file asked for beyond the
/// input's last is missing, as on disk. Nothing touches the file system, and
/// the bytes live in buffers allocated once per process (``CimFuzzArena``),
/// so an input costs what reading it costs.
final class CimFuzzImageFiles {
    /// Never created: the path only names the image in errors.
    static let imagePath = "/cimnbd-fuzz/fuzz.cim"

    private let input: CimFuzzInput
    private let arena: CimFuzzArena
    /// Files handed out so far, which is also the index of the next.
    private var opened = 0

    /// `input`'s files, laid out in `arena` as the reader opens them (the
    /// arena's buffers are reused by the next input); nil when the input
    /// holds no file at all.
    init?(_ input: CimFuzzInput, in arena: CimFuzzArena) {
        guard !input.files.isEmpty else { return nil }
        self.input = input
        self.arena = arena
    }

    /// The next file of the input, as the file at `path`.
    func open(_ path: String) throws -> RegionFile {
        guard opened < input.files.count else { throw CimError.missingFile(path: path) }
        let file = input.files[opened]
        let contents = arena.fill(opened, with: file.patches)
        opened += 1
        return RegionFile(path: path, unownedContents: contents, size: UInt64(file.size))
    }
}

/// One buffer per file an input may describe, each as large as a file may
/// be, allocated once: a fresh zeroed buffer per file and input would be a
/// new mapping each time under AddressSanitizer, and its page faults would
/// cost more than the reader.
final class CimFuzzArena {
    private let buffers: [UnsafeMutableRawBufferPointer]
    /// Bytes of each buffer the last input wrote (the rest is still zero).
    private var used: [Int]

    init() {
        let capacity = CimFuzzInput.maximumFileSize + Int(UInt16.max)
        buffers = (0..<CimFuzzInput.maximumFiles).map { _ in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            return buffer
        }
        used = Array(repeating: 0, count: buffers.count)
    }

    /// Buffer `index` as zeros with `patches` applied, up to the last
    /// patched byte (the caller declares the zeros after it as file size).
    func fill(_ index: Int, with patches: [CimFuzzInput.Patch]) -> UnsafeRawBufferPointer {
        let buffer = buffers[index]
        if used[index] > 0, let base = buffer.baseAddress { _ = memset(base, 0, used[index]) }
        var end = 0
        for patch in patches where !patch.bytes.isEmpty {
            UnsafeMutableRawBufferPointer(rebasing: buffer[patch.offset...]).copyMemory(from: patch.bytes)
            end = max(end, patch.offset + patch.bytes.count)
        }
        used[index] = end
        return UnsafeRawBufferPointer(rebasing: buffer[..<end])
    }
}
