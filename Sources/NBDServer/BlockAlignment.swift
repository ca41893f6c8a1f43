import VolumeSynth

/// Puts the boundaries the server reports (hole chunks, block-status
/// descriptors) on multiples of the advertised minimum block size, as proto.md
/// asks: a zero run only counts as a hole for the whole blocks inside it; the
/// partial blocks at its edges are reported as data.
enum BlockAlignment {
    /// Splits the zero run `[start, start + length)` into a head and a tail of
    /// partial blocks around `body`, the whole blocks inside it (possibly none).
    /// `blockSize` is a power of two; the caller checked the range does not overflow.
    static func interior(start: UInt64, length: UInt64, blockSize: UInt64) -> (head: UInt64, body: UInt64, tail: UInt64) {
        let mask = blockSize - 1
        let end = start + length
        let bodyStart = (start + mask) & ~mask
        let bodyEnd = end & ~mask
        guard bodyStart < bodyEnd else { return (length, 0, 0) }
        return (bodyStart - start, bodyEnd - bodyStart, end - bodyEnd)
    }

    /// The extents of `[start, start + limit)` with zero runs shrunk to whole
    /// blocks and neighbours of the same kind merged. Extents beyond `limit`
    /// are cut off (a volume could over-report).
    static func extents(_ extents: [VolumeExtent], start: UInt64, limit: UInt64, blockSize: UInt64) -> [VolumeExtent] {
        var result: [VolumeExtent] = []
        result.reserveCapacity(extents.count)
        func append(_ length: UInt64, isZero: Bool) {
            guard length > 0 else { return }
            if let last = result.last, last.isZero == isZero {
                result[result.count - 1].length += length
            } else {
                result.append(VolumeExtent(length: length, isZero: isZero))
            }
        }
        // Merge first: a zero run split over several extents may still hold whole blocks.
        var merged: [VolumeExtent] = []
        var remaining = limit
        for extent in extents where extent.length > 0 && remaining > 0 {
            let length = min(extent.length, remaining)
            remaining -= length
            if let last = merged.last, last.isZero == extent.isZero {
                merged[merged.count - 1].length += length
            } else {
                merged.append(VolumeExtent(length: length, isZero: extent.isZero))
            }
        }
        var position = start
        for extent in merged {
            if extent.isZero {
                let (head, body, tail) = interior(start: position, length: extent.length, blockSize: blockSize)
                append(head, isZero: false)
                append(body, isZero: true)
                append(tail, isZero: false)
            } else {
                append(extent.length, isZero: false)
            }
            position += extent.length
        }
        return result
    }
}
