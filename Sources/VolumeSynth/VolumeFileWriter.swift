import CimFS
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes `volume` to a new file at `path`, sparsely: ranges that read as
/// zeros are skipped and the file is sized with `ftruncate`, so they stay
/// holes. An existing file is replaced.
///
/// - Parameter progress: called after each chunk with (bytes done, total).
/// - Throws: ``VolumeError/io(_:)`` when the file cannot be written, and
///   whatever reading the volume throws.
public func writeVolume(_ volume: Volume, toFile path: String, progress: ((UInt64, UInt64) -> Void)? = nil) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw VolumeError.io("cannot create \(path): errno \(errno)") }
    defer { close(fd) }
    let total = volume.size
    let chunk: UInt64 = 4 << 20
    var buffer = [UInt8](repeating: 0, count: Int(chunk))
    var offset: UInt64 = 0
    while offset < total {
        let length = min(chunk, total - offset)
        var position = offset
        for segment in try volume.segments(offset: offset, length: length) {
            let l = segment.length
            if case .zeros = segment {
                position += l
                continue
            }
            try buffer.withUnsafeMutableBytes { raw in
                let slice = UnsafeMutableRawBufferPointer(rebasing: raw[0..<Int(l)])
                try volume.read(into: slice, at: position)
                var written = 0
                while written < Int(l) {
                    let n = pwrite(fd, slice.baseAddress! + written, Int(l) - written, off_t(position) + off_t(written))
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw VolumeError.io("cannot write \(path): errno \(errno)")
                    }
                    written += n
                }
            }
            position += l
        }
        offset += length
        progress?(offset, total)
    }
    guard ftruncate(fd, off_t(total)) == 0 else { throw VolumeError.io("cannot size \(path): errno \(errno)") }
}
