/// A fuzz input decoded into the files of one CIM image.
///
/// Real region files are mostly zeros or bulk file data, which a mutator
/// should not spend its time on, so a file is given as a declared size plus
/// the patches that differ from zero:
///
///     input := file*                       (first the .cim file, then region files)
///     file  := size:u32 patchCount:u16 patch*
///     patch := offset:u32 length:u16 bytes[length]
///
/// all little-endian. Region files are assigned, in input order, to the names
/// the reader looks for: the parents' region sets first, then the image's own
/// (as `CimImage` opens them). Decoding is lenient: it stops at the first
/// file that does not fit, so every input means something.
struct CimFuzzInput {
    struct Patch {
        var offset: Int
        var bytes: UnsafeRawBufferPointer
    }

    struct File {
        /// Size of the file; patches past it make the file longer.
        var size: Int
        var patches: [Patch]
    }

    /// Largest declared file size: large enough for every fixture's metadata
    /// region, small enough that reading a whole file stays fast.
    static let maximumFileSize = 1 << 20
    /// Most files one input describes (a `.cim` and its regions).
    static let maximumFiles = 16

    var files: [File] = []

    /// Decodes `bytes`, which must outlive the value (patches point into it).
    init(_ bytes: UnsafeRawBufferPointer) {
        var cursor = 0
        func take(_ count: Int) -> UnsafeRawBufferPointer? {
            guard count <= bytes.count - cursor else { return nil }
            defer { cursor += count }
            return UnsafeRawBufferPointer(rebasing: bytes[cursor..<(cursor + count)])
        }
        func integer(_ width: Int) -> Int? {
            guard let raw = take(width) else { return nil }
            return raw.reversed().reduce(0) { $0 << 8 | Int($1) }
        }
        while files.count < Self.maximumFiles, let size = integer(4), let patchCount = integer(2) {
            var file = File(size: min(size, Self.maximumFileSize), patches: [])
            for _ in 0..<patchCount {
                guard let offset = integer(4), let length = integer(2), let data = take(length) else { break }
                guard offset <= Self.maximumFileSize else { continue }
                file.patches.append(Patch(offset: offset, bytes: data))
            }
            files.append(file)
        }
    }
}
