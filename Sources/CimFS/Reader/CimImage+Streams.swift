extension CimImage {
    /// Where the bytes of `stream` live: region runs, or zeros for sparse
    /// streams. PE-image streams give one run per mapping segment. Every run
    /// is validated against its region file's size.
    public func layout(of stream: CimStream, fileID: CimFileID = 0) throws -> [CimStreamRun] {
        guard stream.length > 0 else { return [] }
        if stream.isSparse { return [.zeros(length: stream.length)] }
        guard stream.dataOffset != 0 else {
            throw CimError.corrupt(path: path, offset: 0, problem: "stream of FileID \(fileID) has \(stream.length) bytes but no data offset")
        }
        switch stream.type {
        case .data?, .linkTable?:
            let (index, file, offset) = try CimImage.locate(regions: regions, regionOffset: stream.dataOffset, length: stream.length,
                                                            what: "data of FileID \(fileID)", source: path, sourceOffset: 0)
            return [.region(regionIndex: index, file: file, offset: offset, length: stream.length)]
        case .peImage?:
            return try peLayout(of: stream, fileID: fileID)
        case nil:
            throw CimError.unsupportedFeature(path: path, feature: "stream type \(stream.rawType) (FileID \(fileID))")
        }
    }

    private func peLayout(of stream: CimStream, fileID: CimFileID) throws -> [CimStreamRun] {
        let head = try readObject(stream.dataOffset, length: CimFormat.peImageHeaderSize, what: "PE image of FileID \(fileID)",
                                  source: path, sourceOffset: 0)
        let imageDataOffset = try head.u64(0)
        // Which field bounds the image data differs between writers: Windows stores
        // `data length` (@8) bytes and `image length` (@16) is the loaded image's size,
        // larger or smaller; others store `image length` bytes with the file size as
        // data length. Segments must lie inside the larger, and inside the region file.
        let imageLength = max(try head.u64(8), UInt64(try head.u32(16)))
        let mappingCount = Int(try head.u16(20))
        let mappingBytes = try readObject(stream.dataOffset &+ UInt64(CimFormat.peImageHeaderSize), length: mappingCount * CimFormat.peMappingSize,
                                          what: "PE image mappings of FileID \(fileID)", source: head.path, sourceOffset: head.baseOffset)
        var mappings: [(fileOffset: UInt64, delta: UInt64)] = []
        for i in 0..<mappingCount {
            let fileOffset = UInt64(try mappingBytes.u32(i * 8))
            let delta = UInt64(try mappingBytes.u32(i * 8 + 4))
            if let last = mappings.last, fileOffset <= last.fileOffset {
                throw CimError.corrupt(path: mappingBytes.path, offset: mappingBytes.baseOffset + UInt64(i * 8),
                                       problem: "PE image mappings of FileID \(fileID) are not sorted by file offset")
            }
            mappings.append((fileOffset, delta))
        }
        let (regionIndex, file, imageStart) = try CimImage.locate(regions: regions, regionOffset: imageDataOffset, length: 0,
                                                                  what: "PE image data of FileID \(fileID)", source: head.path,
                                                                  sourceOffset: head.baseOffset)
        // Segment boundaries: 0, each mapping's file offset, the stream length.
        var runs: [CimStreamRun] = []
        var boundaries: [(start: UInt64, delta: UInt64)] = []
        if mappings.first.map({ $0.fileOffset > 0 }) ?? true { boundaries.append((0, 0)) }
        boundaries.append(contentsOf: mappings.map { ($0.fileOffset, $0.delta) })
        for (i, segment) in boundaries.enumerated() where segment.start < stream.length {
            let end = min(i + 1 < boundaries.count ? boundaries[i + 1].start : stream.length, stream.length)
            let length = end - segment.start
            let (within, overflow) = segment.start.addingReportingOverflow(segment.delta)
            guard !overflow, within <= imageLength, length <= imageLength - within else {
                throw CimError.corrupt(path: head.path, offset: head.baseOffset,
                                       problem: "PE image segment at file offset \(segment.start) of FileID \(fileID) (\(length) bytes at image offset \(within)) lies past the image data's \(imageLength) bytes")
            }
            guard within <= file.size - imageStart, length <= file.size - imageStart - within else {
                throw CimError.outOfBounds(path: file.path, offset: imageStart &+ within, length: length, fileSize: file.size,
                                           what: "PE image segment at file offset \(segment.start) of FileID \(fileID)")
            }
            runs.append(.region(regionIndex: regionIndex, file: file, offset: imageStart + within, length: length))
        }
        return runs
    }

    /// Reads up to `buffer.count` bytes of `stream` at `offset`; returns the
    /// number read (less at the end of the stream, 0 past it).
    public func read(_ stream: CimStream, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, fileID: CimFileID = 0) throws -> Int {
        guard offset < stream.length, buffer.count > 0 else { return 0 }
        let wanted = Int(min(UInt64(buffer.count), stream.length - offset))
        var runStart: UInt64 = 0
        var done = 0
        for run in try layout(of: stream, fileID: fileID) {
            let runEnd = runStart + run.length
            defer { runStart = runEnd }
            let position = offset + UInt64(done)
            guard done < wanted, position < runEnd else { continue }
            let within = position - runStart
            let count = Int(min(UInt64(wanted - done), run.length - within))
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + count)])
            switch run {
            case .zeros:
                target.initializeMemory(as: UInt8.self, repeating: 0)
            case .region(_, let file, let regionOffset, _):
                try file.read(into: target, at: regionOffset + within)
            }
            done += count
        }
        return done
    }

    /// Reads `length` bytes of `stream` at `offset` (fewer at its end).
    public func read(_ stream: CimStream, at offset: UInt64, length: Int, fileID: CimFileID = 0) throws -> [UInt8] {
        var result = [UInt8](repeating: 0, count: max(0, length))
        let n = try result.withUnsafeMutableBytes { try read(stream, at: offset, into: $0, fileID: fileID) }
        result.removeSubrange(n...)
        return result
    }

    /// Calls `body` with consecutive chunks of the whole stream.
    public func forEachChunk(of stream: CimStream, fileID: CimFileID = 0, chunkSize: Int = 1 << 20,
                             _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard stream.length > 0 else { return }
        // No bigger than the stream: most files are small, and a fresh 1 MiB
        // buffer each (zeroed, often a new mapping) would cost more than their bytes.
        let size = Int(min(UInt64(max(1, chunkSize)), stream.length))
        var buffer = [UInt8](repeating: 0, count: size)
        var offset: UInt64 = 0
        while offset < stream.length {
            let n = try buffer.withUnsafeMutableBytes { try read(stream, at: offset, into: $0, fileID: fileID) }
            guard n > 0 else { break }
            try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += UInt64(n)
        }
    }
}
