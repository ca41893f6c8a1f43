/// What `verify` found.
public struct CimVerifyReport: Sendable {
    /// Every problem found, each naming the file, offset or path concerned.
    public var problems: [String] = []
    /// Observations that do not make the image invalid (e.g. reparse buffers
    /// whose content is not a REPARSE_DATA_BUFFER: readers pass them on raw).
    public var notes: [String] = []
    /// Number of directory entries visited.
    public var entriesChecked = 0
    /// Number of distinct FileIDs checked.
    public var filesChecked = 0
    /// Number of stream bytes read.
    public var bytesRead: UInt64 = 0
    /// Number of object-id entries whose object was located and digested.
    public var objectsChecked = 0
    public var isClean: Bool { problems.isEmpty }
}

extension CimImage {
    /// Reads every object and every stream and checks every invariant the
    /// format states: link tables well formed, sorted and free of duplicates,
    /// FileIDs in range, no directory cycles, every stream inside its region,
    /// security descriptors, EA chains and reparse buffers consistent, and
    /// every object-id entry's digest equal to its object's bytes.
    /// Problems are collected, not thrown, so one report lists them all.
    public func verify(progress: ((_ filesDone: Int, _ filesTotal: Int) -> Void)? = nil) -> CimVerifyReport {
        var report = CimVerifyReport()
        var checked = Set<CimFileID>()
        var visitedDirectories = Set<CimFileID>([rootID])
        var stack: [(CimFileID, String)] = [(rootID, "\\")]
        let total = Int(maxFileID)
        checkFile(rootID, path: "\\", into: &report)
        checked.insert(rootID)
        while let (dir, dirPath) = stack.popLast() {
            let table: LinkTable
            do { table = try directoryTable(dir) } catch {
                report.problems.append("\(dirPath): \(error)")
                continue
            }
            if let (index, duplicate) = table.orderProblem(upcase: upcase) {
                let name = String(decoding: table.names[index], as: UTF16.self)
                report.problems.append("\(dirPath): link table \(duplicate ? "holds two equal names" : "is not sorted") at entry \(index) (\"\(name)\")")
            }
            let entries: [CimDirectoryEntry]
            do { entries = try children(of: dir) } catch {
                report.problems.append("\(dirPath): \(error)")
                continue
            }
            for child in entries {
                report.entriesChecked += 1
                let childPath = (dirPath == "\\" ? "\\" : dirPath + "\\") + child.name
                if checked.insert(child.fileID).inserted {
                    checkFile(child.fileID, path: childPath, into: &report)
                    if let progress, checked.count % 1024 == 0 { progress(checked.count, total) }
                }
                guard let entry = try? entry(child.fileID), entry.isDirectory else { continue }
                if visitedDirectories.insert(child.fileID).inserted {
                    stack.append((child.fileID, childPath))
                } else {
                    report.problems.append("\(childPath): directory FileID \(child.fileID) is reached twice (a cycle or a hard-linked directory)")
                }
            }
        }
        report.filesChecked = checked.count
        verifyObjectIDs(into: &report)
        progress?(checked.count, total)
        return report
    }

    private func checkFile(_ id: CimFileID, path filePath: String, into report: inout CimVerifyReport) {
        func problem(_ text: String) { report.problems.append("\(filePath) (FileID \(id)): \(text)") }
        func note(_ text: String) { report.notes.append("\(filePath) (FileID \(id)): \(text)") }
        let e: CimFileEntry
        do { e = try entry(id) } catch {
            problem("\(error)")
            return
        }
        if !e.isDirectory {
            guard let type = e.defaultStream.type, type != .linkTable else {
                problem("default stream has unknown type \(e.defaultStream.rawType)")
                return
            }
            report.bytesRead += readAll(e.defaultStream, id: id, what: "default stream", problem: problem)
        }
        do {
            if let sd = try securityDescriptor(of: id), !sd.isEmpty {
                // A self-relative SECURITY_DESCRIPTOR has revision 1 and the self-relative control bit (0x8000).
                if sd.count < 20 || sd[0] != 1 || (UInt16(sd[2]) | UInt16(sd[3]) << 8) & 0x8000 == 0 {
                    problem("security descriptor is not a self-relative SECURITY_DESCRIPTOR")
                }
            }
        } catch { problem("\(error)") }
        do {
            if let ea = try extendedAttributes(of: id), let message = CimImage.eaChainProblem(ea) { problem("extended attributes: \(message)") }
        } catch { problem("\(error)") }
        do {
            if let reparse = try reparseData(of: id) {
                if reparse.count < 8 {
                    note("reparse buffer of \(reparse.count) bytes is shorter than its 8-byte header")
                } else {
                    let tag = UInt32(reparse[0]) | UInt32(reparse[1]) << 8 | UInt32(reparse[2]) << 16 | UInt32(reparse[3]) << 24
                    let dataLength = Int(UInt16(reparse[4]) | UInt16(reparse[5]) << 8)
                    if tag != e.reparseTag { note("reparse buffer tag 0x\(String(tag, radix: 16)) differs from the entry's 0x\(String(e.reparseTag, radix: 16))") }
                    if dataLength + 8 > reparse.count { note("reparse data length \(dataLength) runs past the \(reparse.count)-byte buffer") }
                }
            }
        } catch { problem("\(error)") }
        do {
            let streams = try alternateStreams(of: id)
            if e.streamTableOffset != 0 {
                let table = try linkTable(streamTableStream(of: e), entrySize: CimFormat.streamSize, what: "stream table", fileID: id)
                if let (index, duplicate) = table.orderProblem(upcase: upcase) {
                    problem("stream table \(duplicate ? "holds two equal names" : "is not sorted") at entry \(index)")
                }
            }
            for stream in streams {
                report.bytesRead += readAll(stream.stream, id: id, what: "stream \"\(stream.name)\"", problem: problem)
            }
        } catch { problem("\(error)") }
    }

    func streamTableStream(of e: CimFileEntry) throws -> CimStream {
        let prefix = try readObject(e.streamTableOffset, length: 4, what: "stream table", source: path, sourceOffset: 0)
        return CimStream(dataOffset: e.streamTableOffset &+ 4, length: UInt64(try prefix.u32(0)), rawType: 1, isSparse: false)
    }

    private func readAll(_ stream: CimStream, id: CimFileID, what: String, problem: (String) -> Void) -> UInt64 {
        var total: UInt64 = 0
        do {
            if stream.isSparse { return 0 }
            try forEachChunk(of: stream, fileID: id) { total += UInt64($0.count) }
            if total != stream.length { problem("\(what) ended after \(total) of \(stream.length) bytes") }
        } catch { problem("\(what): \(error)") }
        return total
    }

    /// Checks a FILE_FULL_EA_INFORMATION chain; returns a description of the first problem.
    static func eaChainProblem(_ ea: [UInt8]) -> String? {
        var offset = 0
        while true {
            guard offset + 8 <= ea.count else { return "entry at offset \(offset) is cut off (buffer has \(ea.count) bytes)" }
            let next = Int(UInt32(ea[offset]) | UInt32(ea[offset + 1]) << 8 | UInt32(ea[offset + 2]) << 16 | UInt32(ea[offset + 3]) << 24)
            let nameLength = Int(ea[offset + 5])
            let valueLength = Int(UInt16(ea[offset + 6]) | UInt16(ea[offset + 7]) << 8)
            let end = offset + 8 + nameLength + 1 + valueLength
            guard end <= ea.count else { return "entry at offset \(offset) runs past the end of the buffer" }
            guard ea[offset + 8 + nameLength] == 0 else { return "name of entry at offset \(offset) is not NUL-terminated" }
            if next == 0 { return nil }
            guard next >= end - offset, next % 4 == 0 else { return "entry at offset \(offset) has next-entry offset \(next)" }
            offset += next
        }
    }
}
