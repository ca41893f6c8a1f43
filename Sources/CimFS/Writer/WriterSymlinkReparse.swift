/// Linux symlink targets ↔ IO_REPARSE_TAG_SYMLINK reparse buffers.
///
/// * Relative target `a/b` → substitute and print name `a\b`, flags 1
///   (SYMLINK_FLAG_RELATIVE).
/// * Absolute target `/a/b` → substitute name `\??\C:\a\b`, print name
///   `C:\a\b`, flags 0: the Linux root becomes drive C.
///
/// Extraction reverses this: relative names turn `\` into `/`; absolute
/// names drop `\??\` and a drive letter `X:` and turn `\` into `/`; any other
/// absolute form (UNC, volume GUID) keeps its text with `/` separators.
enum WriterSymlinkReparse {
    static let relativeFlag: UInt32 = 1

    static func buffer(target: String) -> [UInt8] {
        let windows = WriterPaths.replacing(target, "/", with: "\\")
        let absolute = target.hasPrefix("/")
        let printName = Array((absolute ? "C:" + windows : windows).utf16)
        let substituteName = Array((absolute ? "\\??\\C:" + windows : windows).utf16)
        var buffer = WriterByteBuffer()
        buffer.u32(CimFormat.ReparseTag.symlink)
        buffer.u16(UInt16(truncatingIfNeeded: 12 + 2 * (substituteName.count + printName.count)))
        buffer.u16(0)
        buffer.u16(0)
        buffer.u16(UInt16(truncatingIfNeeded: substituteName.count * 2))
        buffer.u16(UInt16(truncatingIfNeeded: substituteName.count * 2))
        buffer.u16(UInt16(truncatingIfNeeded: printName.count * 2))
        buffer.u32(absolute ? 0 : relativeFlag)
        buffer.utf16(substituteName)
        buffer.utf16(printName)
        return buffer.bytes
    }

    /// The Linux target a symlink reparse buffer stands for, or nil when the
    /// buffer is not a well-formed symlink buffer.
    static func target(buffer: [UInt8]) -> String? {
        let reader = WriterByteReader(bytes: buffer, path: "")
        guard let tag = try? reader.u32(0), tag == CimFormat.ReparseTag.symlink,
              let substituteOffset = try? reader.u16(8), let substituteLength = try? reader.u16(10),
              let flags = try? reader.u32(16),
              substituteLength % 2 == 0,
              let raw = try? reader.slice(20 + Int(substituteOffset), Int(substituteLength)) else { return nil }
        let units = stride(from: 0, to: raw.count, by: 2).map { UInt16(raw[$0]) | UInt16(raw[$0 + 1]) << 8 }
        guard var text = String(validating: units, as: UTF16.self), !text.isEmpty else { return nil }
        if flags & relativeFlag != 0 { return WriterPaths.replacing(text, "\\", with: "/") }
        if text.hasPrefix("\\??\\") { text.removeFirst(4) }
        let chars = Array(text)
        if chars.count >= 2, chars[1] == ":", chars[0].isLetter {
            let rest = WriterPaths.replacing(String(chars.dropFirst(2)), "\\", with: "/")
            return rest.isEmpty ? "/" : rest
        }
        return WriterPaths.replacing(text, "\\", with: "/")
    }
}
