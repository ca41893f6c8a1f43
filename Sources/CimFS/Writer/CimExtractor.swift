#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Choices for ``CimExtractor/extract(imagePath:to:options:)``.
public struct CimExtractOptions: Sendable {
    /// Called now and then with (files done, files total).
    public var progress: (@Sendable (_ filesDone: Int, _ filesTotal: Int) -> Void)? = nil
    public init() {}
}

/// What an extraction produced.
public struct CimExtractSummary: Sendable {
    public var directories = 0
    public var files = 0
    public var symlinks = 0
    /// Names created as hard links to a file extracted before.
    public var hardLinks = 0
    public var bytes: UInt64 = 0
    /// Names Linux cannot hold, given the `~hash` form (original in `trusted.cimnbd.name`).
    public var namesChanged = 0
    /// Names `cim create --case-conflicts rename` changed, given back.
    public var namesRestored = 0
    /// Alternate streams and other xattrs the target filesystem could not hold.
    public var attributesLeftOut = 0
    /// Each file that lost xattrs, and which.
    public var leftOut: [CimExtractOmission] = []
    /// One line per file that lost something or was renamed: its path, what and why.
    public var warnings: [String] = []

    /// True when the tree holds everything the image does, under the image's names.
    public var isComplete: Bool { namesChanged == 0 && attributesLeftOut == 0 }
}

/// The xattrs one extracted file could not be given.
public struct CimExtractOmission: Sendable, Equatable {
    /// The file's path in the extracted tree.
    public var path: String
    /// The xattr names (`user.<stream>` for an alternate stream).
    public var attributes: [String]
}

/// Restores a CIM image into a Linux directory: the inverse of ``CimWriter``.
///
/// The tree is the one the translator shows (``CimLinuxMapping`` with
/// absolute link targets kept absolute): names Linux cannot hold get the
/// `~hash` form, case-conflict renames get their original names back,
/// symlink and mount-point reparse points (directories too) become symlinks,
/// and the Windows metadata becomes xattrs. Also restored: file data (sparse
/// streams and zero runs become holes), hard links (one inode per FileID),
/// last access and last write times (via `utimensat`, 100 ns precision).
/// Creation and change times cannot be set on Linux. Files get mode 0644,
/// directories 0755.
///
/// What Linux or the target filesystem cannot hold (a stream over 64 KiB,
/// xattrs past the inode's space, streams of symlinks) is left out and the rest restored;
/// ``CimExtractSummary/warnings`` names each, one line per file.
///
/// The target directory is created if missing and must otherwise be empty;
/// the image root's metadata is applied to it.
public final class CimExtractor {
    public init() {}

    @discardableResult
    public func extract(imagePath: String, to directory: String, options: CimExtractOptions = CimExtractOptions()) throws -> CimExtractSummary {
        let image = try CimImage(path: imagePath)
        let mapping = try CimLinuxMapping(image: image, absoluteTargets: .treeRoot)
        try prepareTarget(directory)
        var summary = CimExtractSummary()
        var firstPath: [CimFileID: String] = [image.rootID: directory]
        var order: [(id: CimFileID, path: String)] = [(image.rootID, directory)]
        let total = Int(image.maxFileID)
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { chunk.deallocate() }

        var queue: [(id: CimFileID, path: String)] = [(image.rootID, directory)]
        var queueIndex = 0
        while queueIndex < queue.count {
            let parent = queue[queueIndex]
            queueIndex += 1
            for child in try mapping.children(of: parent.id) {
                let path = parent.path + "/" + String(decoding: child.name, as: UTF8.self)
                if child.isReplacement {
                    summary.namesChanged += 1
                    summary.warnings.append("\(path): the image's name \"\(String(decoding: child.imageName, as: UTF16.self))\" "
                                           + "(\(child.imageName.count) UTF-16 units) cannot be a Linux name; extracted under this name, the original in \(WindowsName.originalNameAttribute)")
                } else if WindowsName.direct(child.imageName) != child.name {
                    summary.namesRestored += 1
                }
                if let existing = firstPath[child.node] {
                    guard try mapping.kind(of: child.node) != .directory else {
                        throw CimError.corrupt(path: imagePath, offset: 0, problem: "directory FileID \(child.node) is reached twice (a cycle or a hard-linked directory) at \(path)")
                    }
                    guard link(existing, path) == 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "link to \(existing)") }
                    summary.hardLinks += 1
                    continue
                }
                firstPath[child.node] = path
                switch try mapping.kind(of: child.node) {
                case .directory:
                    guard mkdir(path, 0o755) == 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "mkdir") }
                    summary.directories += 1
                    queue.append((child.node, path))
                case .symbolicLink:
                    let target = String(decoding: mapping.symlinkTarget(of: child.node) ?? [], as: UTF8.self)
                    guard symlink(target, path) == 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "symlink") }
                    summary.symlinks += 1
                case .regularFile:
                    try restoreFile(image, id: child.node, entry: try image.entry(child.node), path: path, chunk: chunk, summary: &summary)
                    summary.files += 1
                }
                order.append((child.node, path))
                if order.count % 1024 == 0 { options.progress?(order.count, total) }
            }
        }
        for item in order { try restoreAttributes(mapping, id: item.id, path: item.path, summary: &summary) }
        // Times last, deepest directories first: creating entries changes a directory's mtime.
        for item in order.reversed() { try restoreTimes(try image.entry(item.id), path: item.path) }
        options.progress?(order.count, total)
        return summary
    }

    private func prepareTarget(_ directory: String) throws {
        if mkdir(directory, 0o755) == 0 { return }
        let code = errno
        guard code == EEXIST else {
            if code == ENOENT { throw CimError.missingDirectory(path: WriterPaths.directory(of: directory)) }
            if code == EACCES || code == EPERM || code == EROFS { throw CimError.accessDenied(path: directory) }
            throw CimError.io(path: directory, offset: 0, errno: code, what: "mkdir")
        }
        let stat = try WriterLinux.stat(directory)
        guard stat.isDirectory else { throw CimError.notADirectory(path: directory) }
        guard try WriterSourceTree.listDirectory(directory).isEmpty else {
            throw CimError.invalidInput("\(directory): target directory is not empty")
        }
    }

    /// Creates a regular file with the data of its default stream.
    private func restoreFile(_ image: CimImage, id: CimFileID, entry: CimFileEntry, path: String,
                             chunk: UnsafeMutableRawBufferPointer, summary: inout CimExtractSummary) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "create") }
        defer { close(fd) }
        let stream = entry.defaultStream
        var offset: UInt64 = 0
        if !stream.isSparse {
            while offset < stream.length {
                let n = try image.read(stream, at: offset, into: chunk, fileID: id)
                guard n > 0 else {
                    throw CimError.truncated(path: image.path, offset: offset, expected: stream.length - offset)
                }
                // All-zero 4 KiB blocks stay holes: the file reads the same and
                // sparse data stays sparse. Runs of data blocks are written at once.
                var runStart: Int? = nil
                var block = 0
                while block < n {
                    let blockEnd = min(block + 4096, n)
                    let isZero = CimExtractor.isZero(UnsafeRawBufferPointer(rebasing: chunk[block..<blockEnd]))
                    if isZero, let start = runStart {
                        try writeAll(fd, UnsafeRawBufferPointer(rebasing: chunk[start..<block]), at: offset + UInt64(start), path: path)
                        runStart = nil
                    } else if !isZero, runStart == nil {
                        runStart = block
                    }
                    block = blockEnd
                }
                if let start = runStart {
                    try writeAll(fd, UnsafeRawBufferPointer(rebasing: chunk[start..<n]), at: offset + UInt64(start), path: path)
                }
                offset += UInt64(n)
            }
        }
        guard ftruncate(fd, off_t(stream.length)) == 0 else {
            throw CimError.io(path: path, offset: stream.length, errno: errno, what: "truncate")
        }
        summary.bytes += stream.length
    }

    /// memcmp against zeros: much faster than a byte loop, also in debug builds.
    private static func isZero(_ data: UnsafeRawBufferPointer) -> Bool {
        guard let base = data.baseAddress else { return true }
        return WriterObjectStore.zeroChunk.withUnsafeBytes { zeros in
            guard let zeroBase = zeros.baseAddress, data.count <= zeros.count else { return false }
            return memcmp(base, zeroBase, data.count) == 0
        }
    }

    private func writeAll(_ fd: Int32, _ data: UnsafeRawBufferPointer, at offset: UInt64, path: String) throws {
        var done = 0
        while done < data.count {
            guard let base = data.baseAddress else { return }
            let n = pwrite(fd, base + done, data.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw CimError.io(path: path, offset: offset + UInt64(done), errno: errno, what: "write")
            }
            done += n
        }
    }

    /// Sets the xattrs of one node; what the mapping or the filesystem cannot
    /// hold is left out and named in one warning line.
    private func restoreAttributes(_ mapping: CimLinuxMapping, id: CimFileID, path: String, summary: inout CimExtractSummary) throws {
        let attributes = try mapping.extendedAttributes(of: id)
        var leftOut = attributes.leftOut
        for (name, value) in attributes.list {
            do {
                try WriterLinux.setXattr(path, name: name, value: value)
            } catch CimError.io(_, _, let code, _) where Self.cannotHold(code) {
                leftOut.append((name, "\(value.count) bytes, refused by the filesystem: \(String(cString: strerror(code)))"))
            }
        }
        guard !leftOut.isEmpty else { return }
        summary.attributesLeftOut += leftOut.count
        summary.leftOut.append(CimExtractOmission(path: path, attributes: leftOut.map(\.name)))
        summary.warnings.append("\(path): extended attributes left out: " + leftOut.map { "\($0.name) (\($0.reason))" }.joined(separator: "; "))
    }

    /// Errors that mean "this filesystem cannot hold that xattr here", not a failure of the extraction.
    private static func cannotHold(_ code: Int32) -> Bool {
        code == E2BIG || code == ENOSPC || code == ERANGE || code == EOPNOTSUPP || code == EDQUOT
    }

    private func restoreTimes(_ entry: CimFileEntry, path: String) throws {
        let access = WriterFileTime.timespec(entry.lastAccessTime)
        let modification = WriterFileTime.timespec(entry.lastWriteTime)
        var times = [timespec(tv_sec: Int(access.seconds), tv_nsec: Int(access.nanoseconds)),
                     timespec(tv_sec: Int(modification.seconds), tv_nsec: Int(modification.nanoseconds))]
        guard utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw CimError.io(path: path, offset: 0, errno: errno, what: "utimensat")
        }
    }
}
