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
}

/// Restores a CIM image into a Linux directory: the inverse of ``CimWriter``.
///
/// Restored: the tree, file data (sparse streams and zero runs become holes),
/// symlinks (from IO_REPARSE_TAG_SYMLINK, see ``WriterSymlinkReparse``), hard
/// links (one inode per FileID), last access and last write times (via
/// `utimensat`, 100 ns precision), and the xattr mapping of ``CimWriter``:
/// alternate streams → `user.<name>`, security descriptor →
/// `trusted.ntfs_acl`, flags → `trusted.ntfs_attrib` (when any is set), EAs →
/// `trusted.ntfs_ea`, reparse data other than a plain symlink →
/// `trusted.ntfs_reparse_data` (plus `trusted.ntfs_reparse_tag` when the
/// entry's tag is not the data's first four bytes). Creation and change times cannot be set on
/// Linux and are not restored. Files get mode 0644, directories 0755.
///
/// The target directory is created if missing and must otherwise be empty;
/// the image root's metadata is applied to it.
public final class CimExtractor {
    public init() {}

    @discardableResult
    public func extract(imagePath: String, to directory: String, options: CimExtractOptions = CimExtractOptions()) throws -> CimExtractSummary {
        let image = try CimImage(path: imagePath)
        try prepareTarget(directory)
        var summary = CimExtractSummary()
        var firstPath: [CimFileID: String] = [image.rootID: directory]
        var order: [(id: CimFileID, path: String, isDirectory: Bool)] = [(image.rootID, directory, true)]
        let total = Int(image.maxFileID)
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { chunk.deallocate() }

        try image.walk { _, child, components in
            for component in components where component.isEmpty || component == "." || component == ".." || component.contains("/") || component.utf8.contains(0) {
                throw CimError.invalidInput("\(imagePath): name \"\(component)\" in \\\(components.joined(separator: "\\")) cannot be a Linux file name")
            }
            let path = WriterPaths.join(directory, components.joined(separator: "/"))
            if let existing = firstPath[child.fileID] {
                guard link(existing, path) == 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "link to \(existing)") }
                summary.hardLinks += 1
                return
            }
            firstPath[child.fileID] = path
            let entry = try image.entry(child.fileID)
            if entry.isDirectory {
                guard mkdir(path, 0o755) == 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "mkdir") }
                summary.directories += 1
                order.append((child.fileID, path, true))
            } else {
                let isSymlink = try restoreFile(image, id: child.fileID, entry: entry, path: path, chunk: chunk, summary: &summary)
                if isSymlink { summary.symlinks += 1 } else { summary.files += 1 }
                order.append((child.fileID, path, false))
            }
            if order.count % 1024 == 0 { options.progress?(order.count, total) }
        }
        for item in order { try restoreMetadata(image, id: item.id, path: item.path) }
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

    /// Creates a regular file or symlink; returns true for a symlink.
    private func restoreFile(_ image: CimImage, id: CimFileID, entry: CimFileEntry, path: String,
                             chunk: UnsafeMutableRawBufferPointer, summary: inout CimExtractSummary) throws -> Bool {
        if entry.reparseTag == CimFormat.ReparseTag.symlink, entry.defaultStream.length == 0,
           let buffer = try image.reparseData(of: id), let target = WriterSymlinkReparse.target(buffer: buffer) {
            guard symlink(target, path) == 0 else { throw CimError.io(path: path, offset: 0, errno: errno, what: "symlink") }
            return true
        }
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
        return false
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

    private func restoreMetadata(_ image: CimImage, id: CimFileID, path: String) throws {
        let entry = try image.entry(id)
        let isSymlink = try WriterLinux.stat(path).isSymlink
        if let descriptor = try image.securityDescriptor(of: id) {
            try WriterLinux.setXattr(path, name: WriterXattrMapping.securityDescriptorName, value: descriptor)
        }
        if let ea = try image.extendedAttributes(of: id) {
            try WriterLinux.setXattr(path, name: WriterXattrMapping.extendedAttributesName, value: ea)
        }
        if entry.flags != 0 {
            let word = WriterXattrMapping.attributes(fromEntryFlags: entry.flags)
            var bytes = WriterByteBuffer(capacity: 4)
            bytes.u32(word)
            try WriterLinux.setXattr(path, name: WriterXattrMapping.attributesName, value: bytes.bytes)
        }
        let reparseData = try image.reparseData(of: id)
        let tagInData = reparseData.flatMap { $0.count >= 4 ? try? WriterByteReader(bytes: $0, path: path).u32(0) : nil }
        if entry.reparseTag != 0 || reparseData != nil, tagInData != entry.reparseTag {
            var bytes = WriterByteBuffer(capacity: 4)
            bytes.u32(entry.reparseTag)
            try WriterLinux.setXattr(path, name: WriterXattrMapping.reparseTagName, value: bytes.bytes)
        }
        if let reparse = reparseData {
            // A symlink made from this buffer needs the xattr only if the buffer
            // holds more than the target (print name, flags) says.
            let plain = isSymlink && WriterSymlinkReparse.target(buffer: reparse).map { WriterSymlinkReparse.buffer(target: $0) == reparse } == true
            if !plain { try WriterLinux.setXattr(path, name: WriterXattrMapping.reparseName, value: reparse) }
        }
        for stream in try image.alternateStreams(of: id) {
            guard stream.stream.length <= 1 << 26 else {
                throw CimError.invalidInput("\(path): alternate stream \(stream.name) is \(stream.stream.length) bytes, too large for an xattr")
            }
            let value = try image.read(stream.stream, at: 0, length: Int(stream.stream.length), fileID: id)
            try WriterLinux.setXattr(path, name: WriterXattrMapping.streamPrefix + stream.name, value: value)
        }
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
