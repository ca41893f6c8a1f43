#if canImport(Glibc)
import Glibc
#endif
import CimFS

/// Lays an MSIX package out in a CIM as `msixmgr -Unpack … -create
/// -fileType cim -rootDirectory NAME` does: `\NAME\<PackageFullName>\`
/// holds every file of the package (zip names percent-decoded), the
/// footprint files (`AppxManifest.xml`, `AppxBlockMap.xml`,
/// `AppxSignature.p7x`, `AppxMetadata\CodeIntegrity.cat`) included and
/// `[Content_Types].xml` left out. Files carry the ARCHIVE attribute,
/// directories only DIRECTORY; every entry but the root (which has no
/// descriptor and zero times, as in Windows' images) gets the descriptor
/// msixmgr writes (``MSIXSecurity``) and the import time: msixmgr unpacks
/// the package to disk and the times are those of the unpacking, not the
/// zip's. The package full name comes from `<Identity>` (``AppxIdentity``).
public enum MSIXImporter {
    static let manifestName = "AppxManifest.xml"
    static let contentTypesName = "[Content_Types].xml"

    @discardableResult
    public static func importPackage(at packagePath: String, to imagePath: String, rootDirectory: String = "msix",
                                     writer writerOptions: CimWriterOptions = CimWriterOptions(),
                                     progress: ((ImportProgress) -> Void)? = nil) throws -> MSIXImportSummary {
        let rootUnits = Array(rootDirectory.utf16)
        guard !rootUnits.isEmpty, rootUnits.count <= 255, !rootDirectory.contains("/"), !rootDirectory.contains("\\"),
              !rootDirectory.contains(":"), rootDirectory != ".", rootDirectory != ".." else {
            throw ImportError.badPackage(path: packagePath, entry: nil, problem: "root directory \"\(rootDirectory)\" must be one plain name")
        }
        let archive = try ZipArchive(path: packagePath)
        var decoded: [(name: String, parts: [String], entry: ZipArchive.Entry)] = []
        for entry in archive.entries {
            guard let name = percentDecoded(entry.name) else {
                throw ImportError.badPackage(path: packagePath, entry: entry.name, problem: "has a malformed percent-encoded name")
            }
            if name.hasPrefix("/") || name.hasPrefix("\\") {
                throw ImportError.badPackage(path: packagePath, entry: entry.name, problem: "has an absolute path")
            }
            let parts = name.split(whereSeparator: { $0 == "/" || $0 == "\\" }).map(String.init)
            if parts.contains("..") || parts.contains(".") { throw ImportError.badPackage(path: packagePath, entry: entry.name, problem: "path contains \"..\" or \".\"") }
            for part in parts where part.contains(":") || part.utf16.contains(0) {
                throw ImportError.badPackage(path: packagePath, entry: entry.name, problem: "name \"\(part)\" contains ':' or NUL")
            }
            decoded.append((name, parts, entry))
        }
        if decoded.contains(where: { $0.name.caseInsensitiveEquals("AppxMetadata/AppxBundleManifest.xml") }) {
            throw ImportError.badPackage(path: packagePath, entry: nil, problem: "is an MSIX bundle; import one of the packages inside it")
        }
        guard let manifestEntry = decoded.first(where: { $0.name == manifestName })?.entry else {
            throw ImportError.badPackage(path: packagePath, entry: nil, problem: "has no \(manifestName): not an MSIX package")
        }
        guard manifestEntry.size <= 16 << 20 else {
            throw ImportError.badPackage(path: packagePath, entry: manifestName, problem: "is \(manifestEntry.size) bytes, over 16 MiB")
        }
        var manifest: [UInt8] = []
        try archive.extract(manifestEntry) { manifest.append(contentsOf: $0) }
        let identity = try AppxIdentity.parse(manifest: manifest, path: packagePath)
        let fullName = identity.packageFullName

        let writer = try CimTreeWriter(imagePath: imagePath, options: writerOptions)
        do {
            let now = currentFileTime()
            let security = MSIXSecurity(familyName: identity.packageFamilyName)
            let topDescriptor = security.descriptor(.top)
            let directoryDescriptor = security.descriptor(.directory)
            let fileDescriptor = security.descriptor(.file)
            func directory(_ descriptor: [UInt8]) -> CimTreeNode {
                let node = CimTreeNode(kind: .directory)
                node.securityDescriptor = descriptor
                node.creationTime = now
                node.lastWriteTime = now
                node.changeTime = now
                node.lastAccessTime = now
                return node
            }
            let root = CimTreeNode(kind: .directory)
            let top = directory(topDescriptor)
            root.setChild(top, named: rootUnits)
            let package = directory(topDescriptor)
            top.setChild(package, named: Array(fullName.utf16))
            var files = 0
            var dataBytes: UInt64 = 0
            for (index, item) in decoded.enumerated() {
                if item.name == contentTypesName || item.parts.isEmpty { continue }
                var node = package
                let isDirectory = item.entry.isDirectory
                for (position, part) in item.parts.enumerated() {
                    let units = Array(part.utf16)
                    let last = position == item.parts.count - 1
                    if let existing = node.child(named: units) {
                        guard existing.name == units else {
                            throw ImportError.badPackage(path: packagePath, entry: item.entry.name,
                                                         problem: "\"\(part)\" differs only in case from \"\(String(decoding: existing.name, as: UTF16.self))\"; CIM names are case-insensitive")
                        }
                        if last && !isDirectory {
                            throw ImportError.badPackage(path: packagePath, entry: item.entry.name, problem: "appears twice in the package")
                        }
                        guard existing.node.kind == .directory else {
                            throw ImportError.badPackage(path: packagePath, entry: item.entry.name, problem: "\"\(part)\" is a file and a directory")
                        }
                        node = existing.node
                        continue
                    }
                    if last && !isDirectory {
                        let file = CimTreeNode(kind: .file)
                        file.attributes = CimFormat.Attribute.archive
                        file.securityDescriptor = fileDescriptor
                        file.creationTime = now
                        file.lastWriteTime = now
                        file.changeTime = now
                        file.lastAccessTime = now
                        file.data = try writer.storeData(length: item.entry.size, what: "\(packagePath): \(item.entry.name)") { sink in
                            try archive.extract(item.entry) { try sink.write($0) }
                        }
                        node.setChild(file, named: units)
                        files += 1
                        dataBytes += item.entry.size
                    } else {
                        let made = directory(directoryDescriptor)
                        node.setChild(made, named: units)
                        node = made
                    }
                }
                progress?(ImportProgress(inputBytes: dataBytes, entries: index + 1))
            }
            try writer.finish(root: root)
            return MSIXImportSummary(imagePath: imagePath, identity: identity, packageDirectory: "\\\(rootDirectory)\\\(fullName)",
                                     files: files, dataBytes: dataBytes)
        } catch {
            writer.abandon()
            throw error
        }
    }

    /// `%XX` sequences decoded as UTF-8 (OPC part names); nil when malformed.
    static func percentDecoded(_ name: String) -> String? {
        guard name.contains("%") else { return name }
        var bytes: [UInt8] = []
        var utf8 = Array(name.utf8)[...]
        while let byte = utf8.first {
            utf8 = utf8.dropFirst()
            if byte == UInt8(ascii: "%") {
                guard utf8.count >= 2, let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) else { return nil }
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func currentFileTime() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return LayerMetadata.fileTime(seconds: Int64(now.tv_sec), fraction: Int64(now.tv_nsec) / 100)
    }
}
