import CimFS
import Foundation
@testable import VolumeSynth

/// An in-memory ``FileTreeSource`` for tests. File data lives in one temp
/// file (opened as a ``RegionFile``); holes are `DataRun.zeros`.
final class MemoryTree: FileTreeSource, @unchecked Sendable {
    struct Node {
        var attributes: NodeAttributes
        var children: [ChildEntry] = []
        var xattrs: [ExtendedAttribute] = []
        var runs: [DataRun] = []
        var target: [UInt8] = []
        /// Expected file content, for comparisons (nil for huge sparse files).
        var expected: [UInt8]? = nil
    }

    private(set) var nodes: [Node] = []
    let rootNode: UInt32 = 1
    var maxNode: UInt32 { UInt32(nodes.count) }
    let dataPath: String
    private let dataHandle: FileHandle
    private var dataSize: UInt64 = 0
    private var region: RegionFile?

    static func attrs(_ kind: NodeKind, _ perms: UInt16 = 0o644, size: UInt64 = 0, time: Timestamp = Timestamp(seconds: 1_600_000_000, nanoseconds: 123_456_789)) -> NodeAttributes {
        NodeAttributes(kind: kind, permissions: perms, uid: 1000, gid: 1000, size: size,
                       accessTime: time, modificationTime: time, changeTime: time, creationTime: time)
    }

    init() throws {
        dataPath = NSTemporaryDirectory() + "ext4test-data-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: dataPath, contents: nil)
        dataHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: dataPath))
        nodes.append(Node(attributes: Self.attrs(.directory, 0o755)))
    }

    deinit {
        try? FileManager.default.removeItem(atPath: dataPath)
    }

    /// Call once all data is added: opens the data file as a RegionFile and
    /// resolves pending runs.
    func finish() throws {
        try dataHandle.close()
        let r = try RegionFile(path: dataPath)
        region = r
        for i in nodes.indices {
            nodes[i].runs = nodes[i].runs.map { run in
                if case .file(_, let o, let l) = run { return .file(r, offset: o, length: l) }
                return run
            }
        }
    }

    private var placeholder: RegionFile?

    /// Appends bytes to the data file and returns a run (region bound in `finish`).
    private func store(_ bytes: [UInt8]) throws -> (UInt64, UInt64) {
        let offset = dataSize
        dataHandle.write(Data(bytes))
        dataSize += UInt64(bytes.count)
        return (offset, UInt64(bytes.count))
    }

    @discardableResult
    func add(_ parent: UInt32, _ name: String, _ node: Node) -> UInt32 {
        nodes.append(node)
        let n = UInt32(nodes.count)
        nodes[Int(parent) - 1].children.append(ChildEntry(name: Array(name.utf8), node: n))
        return n
    }

    func link(_ parent: UInt32, _ name: String, to node: UInt32) {
        nodes[Int(parent) - 1].children.append(ChildEntry(name: Array(name.utf8), node: node))
    }

    @discardableResult
    func dir(_ parent: UInt32, _ name: String, perms: UInt16 = 0o755, time: Timestamp? = nil) -> UInt32 {
        add(parent, name, Node(attributes: Self.attrs(.directory, perms, time: time ?? Timestamp(seconds: 1_600_000_000, nanoseconds: 5))))
    }

    /// A file made of pieces: `.data(bytes)` stored in the data file, `.hole(n)` zeros.
    enum Piece { case data([UInt8]); case hole(UInt64) }

    @discardableResult
    func file(_ parent: UInt32, _ name: String, _ pieces: [Piece], attributes: NodeAttributes? = nil, keepExpected: Bool = true) throws -> UInt32 {
        var runs: [DataRun] = []
        var expected: [UInt8] = []
        var size: UInt64 = 0
        for piece in pieces {
            switch piece {
            case .data(let bytes):
                let (o, l) = try store(bytes)
                // Bound to the real region in finish(); a placeholder region is needed now.
                runs.append(.file(try placeholderRegion(), offset: o, length: l))
                if keepExpected { expected += bytes }
                size += l
            case .hole(let n):
                runs.append(.zeros(length: n))
                if keepExpected { expected += [UInt8](repeating: 0, count: Int(n)) }
                size += n
            }
        }
        var a = attributes ?? Self.attrs(.regularFile)
        a.size = size
        return add(parent, name, Node(attributes: a, runs: runs, expected: keepExpected ? expected : nil))
    }

    private func placeholderRegion() throws -> RegionFile {
        if let p = placeholder { return p }
        let p = try RegionFile(path: "/proc/self/exe")
        placeholder = p
        return p
    }

    @discardableResult
    func symlink(_ parent: UInt32, _ name: String, _ target: String) -> UInt32 {
        let t = Array(target.utf8)
        return add(parent, name, Node(attributes: Self.attrs(.symbolicLink, 0o777, size: UInt64(t.count)), target: t))
    }

    /// The node at an absolute path like "/docs/block", if any.
    func lookup(_ path: String) -> UInt32? {
        var current = rootNode
        for component in path.split(separator: "/") {
            guard let next = node(current).children.first(where: { $0.name == Array(component.utf8) }) else { return nil }
            current = next.node
        }
        return current
    }

    func setXattrs(_ node: UInt32, _ xattrs: [ExtendedAttribute]) { nodes[Int(node) - 1].xattrs = xattrs }
    func setAttributes(_ node: UInt32, _ a: NodeAttributes) { nodes[Int(node) - 1].attributes = a }
    func node(_ n: UInt32) -> Node { nodes[Int(n) - 1] }

    // MARK: FileTreeSource

    private func get(_ node: UInt32) throws -> Node {
        guard node >= 1, Int(node) <= nodes.count else { throw VolumeError.io("no node \(node)") }
        return nodes[Int(node) - 1]
    }
    func attributes(of node: UInt32) throws -> NodeAttributes { try get(node).attributes }
    func children(of node: UInt32) throws -> [ChildEntry] { try get(node).children }
    func extendedAttributes(of node: UInt32) throws -> [ExtendedAttribute] { try get(node).xattrs }
    func dataRuns(of node: UInt32) throws -> [DataRun] { try get(node).runs }
    func symlinkTarget(of node: UInt32) throws -> [UInt8] { try get(node).target }
}
