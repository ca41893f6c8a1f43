/// Turns symlink and mount-point (junction) reparse buffers into Linux symlink targets.
///
/// The substitute name is used, `\` becomes `/`. Relative targets stay
/// relative. Absolute targets (`\??\C:\x`, `\\?\C:\x`, `C:\x`, `\x`,
/// `\??\Volume{GUID}\x`) lose their drive or volume part and are then
/// anchored as ``Anchor`` says. UNC targets (`\??\UNC\server\share\x`,
/// `\\server\share\x`) cannot point into the tree and become `//server/share/x`.
package enum ReparseLink {
    /// Where an absolute Windows target `C:\x` points on Linux.
    package enum Anchor: Sendable, Equatable {
        /// Relative to the link's own directory, `depth` levels below the
        /// root (`../` per level, then `x`), so the link resolves inside a
        /// volume wherever it is mounted: wimlib's `--rpfix` idea. The translator's choice.
        case linkDirectory(depth: Int)
        /// `/x`: the tree is a root filesystem (chroot, container layer), and
        /// the writer turns `/x` back into `\??\C:\x`. `cim extract`'s choice.
        case treeRoot
    }

    /// The Linux target for `buffer` (a whole REPARSE_DATA_BUFFER) whose
    /// entry has reparse tag `tag`; nil when the buffer is not a well-formed
    /// symlink or mount point.
    package static func target(buffer: [UInt8], tag: UInt32, anchor: Anchor) -> [UInt8]? {
        guard tag == CimFormat.ReparseTag.symlink || tag == CimFormat.ReparseTag.mountPoint else { return nil }
        func u16(_ at: Int) -> Int? { at + 2 <= buffer.count ? Int(buffer[at]) | Int(buffer[at + 1]) << 8 : nil }
        func u32(_ at: Int) -> UInt32? {
            at + 4 <= buffer.count ? UInt32(buffer[at]) | UInt32(buffer[at + 1]) << 8 | UInt32(buffer[at + 2]) << 16 | UInt32(buffer[at + 3]) << 24 : nil
        }
        guard let storedTag = u32(0), storedTag == tag else { return nil }
        guard let subOffset = u16(8), let subLength = u16(10) else { return nil }
        let isSymlink = tag == CimFormat.ReparseTag.symlink
        let pathBuffer = isSymlink ? 20 : 16
        guard let flags = isSymlink ? u32(16) : 0 else { return nil }
        let start = pathBuffer + subOffset
        guard subLength > 0, subLength % 2 == 0, start + subLength <= buffer.count else { return nil }
        var units: [UInt16] = []
        for i in stride(from: start, to: start + subLength, by: 2) {
            units.append(UInt16(buffer[i]) | UInt16(buffer[i + 1]) << 8)
        }
        var text = String(decoding: units, as: UTF16.self).replacingBackslashes()
        let relative = isSymlink && flags & 1 != 0
        if relative { return Array(text.utf8) }

        // Absolute: strip the NT prefixes, then the volume part.
        for prefix in ["//?/", "/??/"] where text.hasPrefix(prefix) { text.removeFirst(prefix.count) }
        if text.uppercased().hasPrefix("UNC/") { return Array(("//" + text.dropFirst(4)).utf8) }
        if text.hasPrefix("//") { return Array(text.utf8) }
        if text.lowercased().hasPrefix("volume{"), let close = text.firstIndex(of: "}") {
            text = String(text[text.index(after: close)...])
        } else if text.count >= 2, text.unicodeScalars.first.map({ $0.properties.isAlphabetic && $0.isASCII }) == true,
                  text[text.index(after: text.startIndex)] == ":" {
            text.removeFirst(2)
        }
        let inside = text.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
        switch anchor {
        case .treeRoot:
            return Array(("/" + inside).utf8)
        case .linkDirectory(let depth):
            let up = String(repeating: "../", count: depth)
            let result = inside.isEmpty ? (depth == 0 ? "." : String(up.dropLast())) : up + inside
            return Array(result.utf8)
        }
    }
}

extension String {
    fileprivate func replacingBackslashes() -> String {
        String(String.UnicodeScalarView(unicodeScalars.map { $0 == "\\" ? "/" : $0 }))
    }
}
