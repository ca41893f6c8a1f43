import CimFS

/// The build pass: walks the source breadth first, numbers inodes, counts
/// links, sizes every inode's content (data blocks, directory blocks, symlink
/// block) and decides which inodes need an attribute block. Reads metadata
/// only.
struct Ext4TreeWalker {
    let source: FileTreeSource
    let hasher: DirectoryHash
    var records = InodeRecords()
    var inodeOfNode: [UInt32] = []
    /// Allocated logical spans of files whose data is not simply blocks 0..<n.
    var spans: [UInt32: [LogicalSpan]] = [:]
    var warnings: [String] = []
    var lostFoundSynthetic = false
    /// Some value lives in an EA inode (needs INCOMPAT_EA_INODE).
    var usesEAInodes = false

    static let linkMax: UInt32 = 65000
    static let lostFound = Array("lost+found".utf8)
    /// ext4's largest file: 2^32 - 1 blocks of 4 KiB.
    static let maxFileSize: UInt64 = (1 << 32 - 1) * 4096

    init(source: FileTreeSource, hasher: DirectoryHash) {
        self.source = source
        self.hasher = hasher
    }

    mutating func walk() throws {
        let maxNode = source.maxNode
        let root = source.rootNode
        guard maxNode < UInt32.max, root >= 1, root <= maxNode else {
            throw VolumeError.unrepresentable("root node \(root) is outside 1...\(maxNode)")
        }
        inodeOfNode = [UInt32](repeating: 0, count: Int(maxNode) + 1)
        // Usually every node gets an inode: reserve once instead of growing.
        records.reserve(Int(maxNode) + 11)
        for i in 1...10 {
            _ = records.append(node: i == 2 ? root : 0, kind: i == 2 ? .directory : .none, links: i == 2 ? 2 : 0, parent: i == 2 ? 2 : 0, content: 0)
        }
        let rootAttributes = try source.attributes(of: root)
        guard rootAttributes.kind == .directory else {
            throw VolumeError.unrepresentable("the root node \(root) is not a directory")
        }
        inodeOfNode[Int(root)] = 2

        var next: UInt32 = 2
        while Int(next) <= records.count {
            if records.kind(next) == .directory {
                try walkDirectory(next)
            }
            next = next == 2 ? 11 : next + 1
        }
        for i in 1...records.count where records.kind(UInt32(i)) == .directory && records.links[i] > Self.linkMax {
            records.links[i] = 1  // dir_nlink: "more than 65000 subdirectories"
        }
    }

    private mutating func walkDirectory(_ dir: UInt32) throws {
        let node = records.node[Int(dir)]
        // Paths are only for messages; rebuilt from the parent chain when needed
        // rather than kept for every pending directory.
        var entries = node == 0 ? [] : try source.children(of: node)
        var names: [[UInt8]] = []
        names.reserveCapacity(entries.count + 1)
        if dir == 2 {
            if let i = entries.firstIndex(where: { $0.name == Self.lostFound }) {
                // Keep the source's entry, numbered first so it becomes inode 11.
                let entry = entries.remove(at: i)
                entries.insert(entry, at: 0)
            } else {
                lostFoundSynthetic = true
                _ = records.append(node: 0, kind: .directory, links: 2, parent: 2, content: 1)
                records.links[2] += 1
                names.append(Self.lostFound)
            }
        }
        for entry in entries {
            let name = entry.name
            guard !name.isEmpty, name.count <= 255, !name.contains(0), !name.contains(0x2F),
                  name != [0x2E], name != [0x2E, 0x2E] else {
                throw VolumeError.unrepresentable("\(directoryPath(dir))/: invalid entry name \(String(decoding: name, as: UTF8.self).debugDescription)")
            }
            let child = entry.node
            guard child >= 1, child < UInt32(inodeOfNode.count) else {
                throw VolumeError.unrepresentable("\(directoryPath(dir))/\(String(decoding: name, as: UTF8.self)): node \(child) is outside 1...\(inodeOfNode.count - 1)")
            }
            names.append(name)
            let existing = inodeOfNode[Int(child)]
            if existing != 0 {
                guard records.kind(existing) != .directory else {
                    throw VolumeError.unrepresentable("\(directoryPath(dir))/\(String(decoding: name, as: UTF8.self)): directory node \(child) has more than one parent")
                }
                guard records.links[Int(existing)] < Self.linkMax else {
                    throw VolumeError.unrepresentable("\(directoryPath(dir))/\(String(decoding: name, as: UTF8.self)): more than \(Self.linkMax) links")
                }
                records.links[Int(existing)] += 1
                continue
            }
            let attributes = try source.attributes(of: child)
            let inode: UInt32
            switch attributes.kind {
            case .directory:
                inode = records.append(node: child, kind: .directory, links: 2, parent: dir, content: 0)
                records.links[Int(dir)] += 1
            case .symbolicLink:
                let target = try source.symlinkTarget(of: child)
                guard !target.isEmpty, target.count <= 4095, !target.contains(0) else {
                    throw VolumeError.unrepresentable("\(childPath(dir, name)): symlink target of \(target.count) bytes (ext4 takes 1...4095, no NUL)")
                }
                inode = records.append(node: child, kind: .symlink, links: 1, parent: 0, content: target.count < 60 ? 0 : 1)
            case .regularFile:
                let runs = try source.dataRuns(of: child)
                let (fileSpans, blocks) = try Self.spans(of: runs, size: attributes.size, path: childPath(dir, name))
                inode = records.append(node: child, kind: .file, links: 1, parent: 0, content: UInt32(blocks))
                if !(fileSpans.count == 1 && fileSpans[0].start == 0) && !fileSpans.isEmpty {
                    spans[inode] = fileSpans
                }
            }
            inodeOfNode[Int(child)] = inode
            let leftOut = try placeAttributes(inode: inode, node: child)
            if !leftOut.isEmpty {
                let path = childPath(dir, name)
                warnings += leftOut.map { path + $0 }
            }
        }
        if dir == 2 {
            // After the children, so lost+found keeps inode 11 even if the
            // root has EA inodes.
            warnings += try placeAttributes(inode: 2, node: node).map { "/" + $0 }
        }
        let layout = try DirectoryLayout(names: names, hasher: hasher)
        records.content[Int(dir)] = UInt32(layout.blockCount)
    }

    /// The path of a walked directory ("" for the root), found by looking its
    /// node up in each parent's children. Slow; for messages only.
    func directoryPath(_ dir: UInt32) -> String {
        var names: [String] = []
        var current = dir
        while current != 2, names.count < 10_000 {
            let parent = records.parent[Int(current)]
            let node = records.node[Int(current)]
            let parentNode = records.node[Int(parent)]
            var name = "?"
            if node == 0 {
                name = "lost+found"
            } else if let children = try? source.children(of: parentNode),
                      let entry = children.first(where: { $0.node == node }) {
                name = String(decoding: entry.name, as: UTF8.self)
            }
            names.append(name)
            current = parent
        }
        return names.reversed().map { "/" + $0 }.joined()
    }

    func childPath(_ dir: UInt32, _ name: [UInt8]) -> String {
        directoryPath(dir) + "/" + String(decoding: name, as: UTF8.self)
    }

    /// Places a node's attributes, flags the inode when it needs an attribute
    /// block, and returns the warnings for attributes left out, without the
    /// path in front: the caller adds it, since it is slow to find and most
    /// nodes have nothing to report.
    private mutating func placeAttributes(inode: UInt32, node: UInt32) throws -> [String] {
        let attributes = try source.extendedAttributes(of: node)
        guard !attributes.isEmpty else { return [] }
        let layout = ExtendedAttributeLayout(attributes, path: "")
        if layout.needsBlock { records.flags[Int(inode)] |= InodeRecords.xattrBlockFlag }
        if !layout.eaValues.isEmpty {
            usesEAInodes = true
            records.eaInodeStart[inode] = UInt32(records.count + 1)
            for (k, value) in layout.eaValues.enumerated() {
                _ = records.append(node: inode, kind: .eaInode, links: 1, parent: UInt32(k), content: UInt32((value.count + 4095) / 4096))
            }
        }
        return layout.warnings
    }

    /// The allocated logical block spans of a file's runs, and their total.
    static func spans(of runs: [DataRun], size: UInt64, path: @autoclosure () -> String) throws -> ([LogicalSpan], UInt64) {
        var result: [LogicalSpan] = []
        var position: UInt64 = 0
        var total: UInt64 = 0
        for run in runs {
            let length = run.length
            guard length <= maxFileSize, position <= maxFileSize - length else {
                throw VolumeError.unrepresentable("\(path()): larger than ext4's 16 TiB file limit")
            }
            if case .file(let region, let offset, _) = run, length > 0 {
                guard offset <= region.size, length <= region.size - offset else {
                    throw VolumeError.io("\(path()): data run \(offset)+\(length) is outside \(region.path) (\(region.size) bytes)")
                }
                let first = position / 4096
                let end = (position + length + 4095) / 4096
                if let last = result.last, first <= last.start + last.count {
                    let newEnd = max(last.start + last.count, end)
                    total += newEnd - (last.start + last.count)
                    result[result.count - 1].count = newEnd - last.start
                } else {
                    result.append(LogicalSpan(start: first, count: end - first))
                    total += end - first
                }
            }
            position += length
        }
        guard position == size else {
            throw VolumeError.unrepresentable("\(path()): data runs add up to \(position) bytes, the size is \(size)")
        }
        return (result, total)
    }
}
