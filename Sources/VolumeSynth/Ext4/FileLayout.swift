/// A file's data runs and extents, as needed to serve its blocks.
final class FileLayout: Sendable {
    let runs: [DataRun]
    /// Byte offset of each run in the file.
    let runStarts: [UInt64]
    let size: UInt64
    let extents: [Extent]
    /// Content index (block number within the inode's content) of each extent.
    let extentContentStart: [UInt64]
    let tree: ExtentTree

    init(runs: [DataRun], extents: [Extent]) {
        self.runs = runs
        var starts: [UInt64] = []
        starts.reserveCapacity(runs.count)
        var p: UInt64 = 0
        for r in runs {
            starts.append(p)
            p += r.length
        }
        runStarts = starts
        size = p
        self.extents = extents
        var c: UInt64 = 0
        var cs: [UInt64] = []
        cs.reserveCapacity(extents.count)
        for e in extents {
            cs.append(c)
            c += UInt64(e.length)
        }
        extentContentStart = cs
        tree = ExtentTree(extentCount: extents.count)
    }
}
