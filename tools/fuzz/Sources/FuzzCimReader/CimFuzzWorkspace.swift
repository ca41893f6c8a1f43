import CimFS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A private directory on tmpfs where each fuzz input is laid out as real
/// image files, since the reader reads files with `pread`. Files of the
/// previous input are removed first, so no run sees another's leftovers.
final class CimFuzzWorkspace {
    let directory: String
    private var written: [String] = []
    /// Reused buffer for the bytes of one file.
    private var span: [UInt8] = []

    static let imageName = "fuzz.cim"

    init() {
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        directory = "\(base)/cimnbd-fuzz-cim-\(getpid())"
        mkdir(directory, 0o700)
    }

    deinit {
        removeFiles()
        rmdir(directory)
    }

    var imagePath: String { "\(directory)/\(Self.imageName)" }

    /// Writes `input` as `fuzz.cim` plus region files; returns false if a
    /// file could not be written (then the run is skipped, it is no finding).
    func lay(out input: CimFuzzInput) -> Bool {
        removeFiles()
        guard let cimFile = input.files.first else { return false }
        guard write(cimFile, name: Self.imageName) else { return false }
        let names = regionNames(limit: input.files.count - 1)
        for (file, name) in zip(input.files.dropFirst(), names) {
            guard write(file, name: name) else { return false }
        }
        return true
    }

    private func removeFiles() {
        for name in written { unlink("\(directory)/\(name)") }
        written.removeAll(keepingCapacity: true)
    }

    private func write(_ file: CimFuzzInput.File, name: String) -> Bool {
        let fd = open("\(directory)/\(name)", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        written.append(name)
        guard ftruncate(fd, off_t(file.size)) == 0 else { return false }
        // One write of the span the patches cover (a seed has hundreds of
        // patches; a system call each would dominate the run).
        guard let first = file.patches.map(\.offset).min(),
              let end = file.patches.map({ $0.offset + $0.bytes.count }).max(), end > first else { return true }
        // Grown once to the largest span met, then only zeroed (memset, not
        // an element loop: this runs for every input).
        if span.count < end - first { span = [UInt8](repeating: 0, count: end - first) }
        let length = end - first
        span.withUnsafeMutableBytes { target in
            if let base = target.baseAddress { _ = memset(base, 0, length) }
            for patch in file.patches {
                UnsafeMutableRawBufferPointer(rebasing: target[(patch.offset - first)...]).copyMemory(from: patch.bytes)
            }
        }
        return span.withUnsafeBytes { pwrite(fd, $0.baseAddress, length, off_t(first)) } == length
    }

    /// The region file names the reader will open for the `.cim` just
    /// written, in its order (parents' sets, then the image's own), at most
    /// `limit` of them. Reads the header fields from the file itself: the
    /// region set at 32 (GUID, u16 count at 48), the parent count at 70 and
    /// the parents' sets from 72, 24 bytes each.
    private func regionNames(limit: Int) -> [String] {
        guard limit > 0, let header = readBack(offset: 0, count: CimFormat.filesystemHeaderSize) else { return [] }
        func set(_ raw: [UInt8], at offset: Int) -> (CimGUID, Int)? {
            guard let guid = CimGUID(bytes: Array(raw[offset..<(offset + 16)])) else { return nil }
            return (guid, Int(raw[offset + 16]) | Int(raw[offset + 17]) << 8)
        }
        var sets: [(CimGUID, Int)] = []
        let parentCount = Int(header[70]) | Int(header[71]) << 8
        let parentsStart = CimFormat.filesystemHeaderSize
        if parentCount > 0, let raw = readBack(offset: parentsStart, count: parentCount * CimFormat.regionSetSize) {
            for index in 0..<parentCount {
                guard let parent = set(raw, at: index * CimFormat.regionSetSize) else { break }
                sets.append(parent)
            }
        }
        if let own = set(header, at: 32) { sets.append(own) }
        var names: [String] = []
        for (guid, count) in sets {
            for index in 0..<count {
                guard names.count < limit else { return names }
                names.append(CimFormat.regionFileName(set: guid, index: index))
            }
        }
        return names
    }

    private func readBack(offset: Int, count: Int) -> [UInt8]? {
        let fd = open(imagePath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: count)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        return n == count ? bytes : nil
    }
}
