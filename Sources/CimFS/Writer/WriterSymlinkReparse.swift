/// Linux symlink targets ↔ IO_REPARSE_TAG_SYMLINK reparse buffers.
///
/// * Relative target `a/b` → substitute and print name `a\b`, flags 1
///   (SYMLINK_FLAG_RELATIVE).
/// * Absolute target `/a/b` → substitute name `\??\C:\a\b`, print name
///   `C:\a\b`, flags 0: the Linux root becomes drive C.
///
/// Extraction reverses this through ``ReparseLink`` (anchor `.treeRoot`).
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
}
