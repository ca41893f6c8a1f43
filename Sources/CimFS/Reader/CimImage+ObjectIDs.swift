extension CimImage {
    /// The object-id file beside region file `region`: `objectid_<guid>_<n>`
    /// for `region_<guid>_<n>`.
    func objectIDPath(of region: RegionFile) -> String {
        let slash = region.path.lastIndex(of: "/")
        let directoryPart = slash.map { String(region.path[...$0]) } ?? ""
        let fileName = slash.map { String(region.path[region.path.index(after: $0)...]) } ?? region.path
        return directoryPart + "objectid_" + fileName.dropFirst("region_".count)
    }

    /// Checks every region's object-id file (format section 4): each entry
    /// lies inside its region file past the header, entries are sorted by
    /// (length, digest), the header's region type matches the region's, and
    /// each digest is the ``CimObjectDigest`` of the object's bytes.
    ///
    /// If no entry of the whole image matches that algorithm, the image comes
    /// from a writer with another digest: one note says so and the digests are
    /// not compared. A missing object-id file is a note (mounting does not need it).
    func verifyObjectIDs(into report: inout CimVerifyReport) {
        var mismatches: [String] = []
        var matched = 0
        for region in regions {
            let objectIDPath = objectIDPath(of: region)
            let file: CimObjectIDFile
            do { file = try CimObjectIDFile(path: objectIDPath) } catch CimError.missingFile {
                report.notes.append("\(objectIDPath): missing, so the bytes of \(region.path) are not checked against digests")
                continue
            } catch {
                report.problems.append("\(error)")
                continue
            }
            do {
                let regionType = try region.read(at: 34, length: 1)[0]
                if file.regionType != regionType {
                    report.problems.append("\(objectIDPath): offset 34: region type is \(file.regionType), but \(region.path) has type \(regionType)")
                }
            } catch { report.problems.append("\(error)") }
            for (index, entry) in file.entries.enumerated() {
                // A closure: building the text for every entry costs more than the check.
                func what() -> String { "\(objectIDPath): entry \(index) (at offset \(file.fileOffset(ofEntry: index))): object of \(entry.length) bytes at offset \(entry.offset) of \(region.path)" }
                if index > 0, CimObjectIDFile.precedes(entry, file.entries[index - 1]) {
                    report.problems.append("\(what()): entries are not sorted by (length, digest)")
                }
                guard entry.offset >= UInt64(CimFormat.regionHeaderSize) else {
                    report.problems.append("\(what()): lies in the \(CimFormat.regionHeaderSize)-byte region header")
                    continue
                }
                guard entry.offset <= region.size, entry.length <= region.size - entry.offset else {
                    report.problems.append("\(what()): lies outside the region file (\(region.size) bytes)")
                    continue
                }
                report.objectsChecked += 1
                do {
                    if try CimObjectDigest.of(region, offset: entry.offset, length: entry.length) == entry.digest {
                        matched += 1
                    } else {
                        mismatches.append("\(what()): digest does not match the object's bytes")
                    }
                } catch { report.problems.append("\(what()): \(error)") }
            }
        }
        if matched == 0 && !mismatches.isEmpty {
            report.notes.append("\(path): no object-id entry matches the digest this reader knows (SHA-512, first 24 bytes; "
                                + "objects of at most 24 bytes inline): the image comes from a writer with another digest, "
                                + "so \(mismatches.count) digests were not checked")
            report.objectsChecked -= mismatches.count
        } else {
            report.problems += mismatches
        }
    }
}
