/// FileIDs for a tree: breadth first from the root (1), as the directory
/// writer hands them out; the first name found of a hard-linked file names
/// its parent.
struct CimTreeLayout {
    var nodes: [CimTreeNode] = []
    var paths: [String] = []
    var parentIDs: [UInt32] = []
    var children: [[(name: [UInt16], id: UInt32)]] = []
    var linkCount = 0

    init(root: CimTreeNode, imagePath: String) throws {
        var ids: [ObjectIdentifier: UInt32] = [ObjectIdentifier(root): 1]
        var pathUnits: [Int] = [0]
        nodes = [root]
        paths = ["\\"]
        parentIDs = [1]
        children = [[]]
        var queue = 0
        while queue < nodes.count {
            let directory = nodes[queue]
            let directoryIndex = queue
            queue += 1
            guard directory.kind == .directory else { continue }
            let sorted = directory.children.sorted { $0.key.lexicographicallyPrecedes($1.key) }
            for (_, child) in sorted {
                let childPath = (paths[directoryIndex] == "\\" ? "\\" : paths[directoryIndex] + "\\") + String(decoding: child.name, as: UTF16.self)
                try WriterSourceTree.checkName(child.name, path: childPath)
                let units = pathUnits[directoryIndex] + 1 + child.name.count
                try WriterSourceTree.checkPathLength(units, path: childPath)
                linkCount += 1
                if let existing = ids[ObjectIdentifier(child.node)] {
                    guard child.node.kind != .directory else {
                        throw CimError.invalidInput("\(childPath): a directory cannot have a second name (hard-linked directories are not allowed)")
                    }
                    children[directoryIndex].append((child.name, existing))
                    continue
                }
                guard nodes.count < Int(UInt32.max) else { throw CimError.invalidInput("\(childPath): too many files") }
                let id = UInt32(nodes.count + 1)
                ids[ObjectIdentifier(child.node)] = id
                nodes.append(child.node)
                paths.append(childPath)
                parentIDs.append(UInt32(directoryIndex + 1))
                children.append([])
                pathUnits.append(units)
                children[directoryIndex].append((child.name, id))
            }
        }
    }
}
