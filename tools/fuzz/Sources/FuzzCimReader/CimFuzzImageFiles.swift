@_spi(Harness) import CimFS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The files of one fuzz input, held in memory as the reader's
/// ``RegionFile``s (``RegionFile/init(path:unownedContents:size:)``): a
/// `.cim` and its region files under the names the reader will ask for.
/// Nothing touches the file system, and the bytes live in buffers allocated
/// once per process (``CimFuzzArena``), so an input costs what reading it costs.
struct CimFuzzImageFiles {
    /// Never created: the names only address the files in memory.
    static let directory = "/cimnbd-fuzz"
    static let imagePath = "\(directory)/fuzz.cim"

    private var files: [String: RegionFile] = [:]

    /// Lays out `input` in `arena`, whose buffers it uses until the next
    /// input is laid out; nil when the input holds no file at all.
    init?(_ input: CimFuzzInput, in arena: CimFuzzArena) {
        guard let cimFile = input.files.first else { return nil }
        let cim = RegionFile(path: Self.imagePath, unownedContents: arena.fill(0, with: cimFile.patches), size: UInt64(cimFile.size))
        files[Self.imagePath] = cim
        let names = Self.regionNames(cim, limit: input.files.count - 1)
        for (index, (file, name)) in zip(input.files.dropFirst(), names).enumerated() {
            let path = "\(Self.directory)/\(name)"
            files[path] = RegionFile(path: path, unownedContents: arena.fill(index + 1, with: file.patches), size: UInt64(file.size))
        }
    }

    /// The file at `path`, as `CimImage` opens it; a name the input gave no
    /// file for is missing, as on disk.
    func open(_ path: String) throws -> RegionFile {
        guard let file = files[path] else { throw CimError.missingFile(path: path) }
        return file
    }

    /// The region file names the reader will open for `cim`, in its order
    /// (parents' sets, then the image's own), at most `limit` of them. Reads
    /// the header fields itself: the region set at 32 (GUID, u16 count at
    /// 48), the parent count at 70 and the parents' sets from 72, 24 bytes
    /// each. Stops at `limit` names: a fuzzed header may claim 65,535 parents.
    private static func regionNames(_ cim: RegionFile, limit: Int) -> [String] {
        guard limit > 0, let header = try? cim.read(at: 0, length: CimFormat.filesystemHeaderSize) else { return [] }
        var names: [String] = []
        /// Adds the names of the set at `offset` of `raw`; false once `limit` is reached.
        func addSet(_ raw: UnsafeRawBufferPointer, at offset: Int) -> Bool {
            let count = Int(raw[offset + 16]) | Int(raw[offset + 17]) << 8
            guard count > 0 else { return true }
            guard let guid = CimGUID(bytes: Array(raw[offset..<(offset + 16)])) else { return false }
            for index in 0..<count {
                guard names.count < limit else { return false }
                names.append(CimFormat.regionFileName(set: guid, index: index))
            }
            return names.count < limit
        }
        let parentCount = Int(header[70]) | Int(header[71]) << 8
        var parentSet = [UInt8](repeating: 0, count: CimFormat.regionSetSize)
        for index in 0..<parentCount {
            let offset = UInt64(CimFormat.filesystemHeaderSize + index * CimFormat.regionSetSize)
            let complete = parentSet.withUnsafeMutableBytes { buffer in
                (try? cim.read(into: buffer, at: offset)) != nil
            }
            guard complete, parentSet.withUnsafeBytes({ addSet($0, at: 0) }) else { return names }
        }
        _ = header.withUnsafeBytes { addSet($0, at: 32) }
        return names
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
