/// Reads an image's whole tree into ``CimTreeNode``s, for writing a fork of
/// it with ``CimTreeWriter``: data and alternate streams keep the image's
/// ``CimStream``s (so a child that lists the image's region sets first reads
/// them where they are, nothing copied); security descriptors, EAs and
/// reparse buffers are read into memory, each distinct one once.
public enum CimTreeLoader {
    public static func tree(of image: CimImage) throws -> CimTreeNode {
        var nodes: [CimFileID: CimTreeNode] = [:]
        var descriptors: [UInt64: [UInt8]] = [:]
        func node(_ id: CimFileID) throws -> CimTreeNode {
            if let known = nodes[id] { return known }
            let entry = try image.entry(id)
            let node = CimTreeNode(kind: entry.isDirectory ? .directory : .file)
            node.attributes = entry.attributes & ~(CimFormat.Attribute.directory | CimFormat.Attribute.reparsePoint)
            node.creationTime = entry.creationTime
            node.lastWriteTime = entry.lastWriteTime
            node.changeTime = entry.changeTime
            node.lastAccessTime = entry.lastAccessTime
            if entry.securityDescriptorOffset != 0 {
                if let shared = descriptors[entry.securityDescriptorOffset] {
                    node.securityDescriptor = shared
                } else if let descriptor = try image.securityDescriptor(of: id) {
                    descriptors[entry.securityDescriptorOffset] = descriptor
                    node.securityDescriptor = descriptor
                }
            }
            node.extendedAttributes = try image.extendedAttributes(of: id)
            node.reparseData = try image.reparseData(of: id)
            if !entry.isDirectory { node.data = entry.defaultStream }
            for stream in try image.alternateStreams(of: id) {
                node.setAlternateStream(stream.stream, named: stream.nameUnits)
            }
            nodes[id] = node
            return node
        }
        let root = try node(image.rootID)
        try image.walk { parentID, child, _ in
            let parent = try node(parentID)
            parent.setChild(try node(child.fileID), named: child.nameUnits)
        }
        return root
    }
}
