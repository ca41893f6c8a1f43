#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Receives the bytes of one streamed object.
struct WriterStreamSink {
    fileprivate let region: WriterRegionFile
    fileprivate let start: UInt64
    fileprivate(set) var position: UInt64 = 0
    fileprivate var digest = CimObjectDigest()

    /// Appends real bytes.
    mutating func write(_ raw: UnsafeRawBufferPointer) throws {
        try region.write(raw, at: start + position)
        digest.update(raw)
        position += UInt64(raw.count)
    }

    /// Appends `count` zero bytes without writing them: the region file gets a
    /// hole there, which reads as zeros.
    mutating func skip(_ count: UInt64) {
        var left = count
        WriterObjectStore.zeroChunk.withUnsafeBytes { zeros in
            while left > 0 {
                let n = Int(min(left, UInt64(zeros.count)))
                digest.update(UnsafeRawBufferPointer(rebasing: zeros[0..<n]))
                left -= UInt64(n)
            }
        }
        position += count
    }
}

/// Places objects in the image's regions, deduplicating by content.
final class WriterObjectStore {
    static let zeroChunk = [UInt8](repeating: 0, count: 1 << 20)

    let metadata: WriterRegionFile
    let dataRegions: [WriterRegionFile]
    let smallRegion: WriterRegionFile?
    /// Global index of this image's region 0 (= regions of all parents).
    let baseIndex: UInt16
    let deduplicate: Bool
    let smallDataThreshold: UInt64
    private var parent: WriterParentImage?
    private var known: [WriterObjectKey: UInt64] = [:]
    private var nextDataRegion = 0
    private(set) var storedDataBytes: UInt64 = 0
    private(set) var deduplicatedBytes: UInt64 = 0

    init(metadata: WriterRegionFile, dataRegions: [WriterRegionFile], smallRegion: WriterRegionFile?,
         baseIndex: UInt16, deduplicate: Bool, smallDataThreshold: UInt64, parent: WriterParentImage?) {
        self.metadata = metadata
        self.dataRegions = dataRegions
        self.smallRegion = smallRegion
        self.baseIndex = baseIndex
        self.deduplicate = deduplicate
        self.smallDataThreshold = smallDataThreshold
        self.parent = parent
    }

    private func regionOffset(_ region: WriterRegionFile, _ offset: UInt64) -> UInt64 {
        CimFormat.regionOffset(region: baseIndex + region.indexInSet, offset: offset)
    }

    private func lookup(_ key: WriterObjectKey) -> UInt64? {
        guard deduplicate else { return nil }
        if let hit = known[key] { return hit }
        if let candidate = parent?.objects[key] {
            if WriterParentImage.verify(regionPath: candidate.regionPath, offset: candidate.offset, key: key) {
                known[key] = candidate.regionOffset
                return candidate.regionOffset
            }
            parent?.objects[key] = nil
        }
        return nil
    }

    private func nextDataRegionFile() -> WriterRegionFile {
        let region = dataRegions[nextDataRegion % dataRegions.count]
        return region
    }

    /// Stores an in-memory object in `region`; returns its RegionOffset (0 for no bytes).
    func store(_ bytes: [UInt8], in region: WriterRegionFile) throws -> UInt64 {
        guard !bytes.isEmpty else { return 0 }
        let digest = CimObjectDigest.of(bytes)
        let key = WriterObjectKey(length: UInt64(bytes.count), digest: digest)
        let isData = region !== metadata
        if let hit = lookup(key) {
            if isData { deduplicatedBytes += key.length }
            return hit
        }
        let offset = try region.append(bytes, digest: digest)
        let result = regionOffset(region, offset)
        known[key] = result
        if isData { storedDataBytes += key.length }
        if region.type == .pageAlignedData { nextDataRegion += 1 }
        return result
    }

    func storeMetadata(_ bytes: [UInt8]) throws -> UInt64 { try store(bytes, in: metadata) }

    /// Stores file data held in memory: small data goes to the small-data region.
    func storeData(_ bytes: [UInt8]) throws -> UInt64 {
        if let small = smallRegion, UInt64(bytes.count) < smallDataThreshold { return try store(bytes, in: small) }
        return try store(bytes, in: nextDataRegionFile())
    }

    /// Whether data of this length is small enough to be read into memory and
    /// placed in the small-data region.
    func isSmall(_ length: UInt64) -> Bool { smallRegion != nil && length < smallDataThreshold }

    /// Streams an object of exactly `length` bytes into the next data region.
    /// If identical content is already stored, the bytes just written are
    /// dropped again and the existing object is returned.
    func storeStreamed(length: UInt64, what: String, body: (inout WriterStreamSink) throws -> Void) throws -> UInt64 {
        guard length > 0 else { return 0 }
        let region = nextDataRegionFile()
        let previousEnd = region.end
        let start = region.nextObjectOffset
        var sink = WriterStreamSink(region: region, start: start)
        try body(&sink)
        guard sink.position == length else {
            try region.rollBack(to: previousEnd)
            throw CimError.fileChanged(path: what, detail: "expected \(length) bytes, read \(sink.position)")
        }
        let digest = sink.digest.finalize()
        let key = WriterObjectKey(length: length, digest: digest)
        if let hit = lookup(key) {
            try region.rollBack(to: previousEnd)
            deduplicatedBytes += length
            return hit
        }
        region.commit(offset: start, length: length, digest: digest)
        let result = regionOffset(region, start)
        known[key] = result
        storedDataBytes += length
        nextDataRegion += 1
        return result
    }
}
