/// Reparse buffers for the symlinks and mount points of layer tars, as
/// go-winio encodes them: the tar link name is the print name; the NT
/// substitute name adds `\??\` to drive-letter (`C:\x`) and `\\?\` paths and
/// `\??\UNC\` to `\\server\share` paths; any other target is relative
/// (symlinks then carry SYMLINK_FLAG_RELATIVE). `/` becomes `\`.
enum WindowsReparse {
    static let symlinkTag: UInt32 = 0xA000_000C
    static let mountPointTag: UInt32 = 0xA000_0003

    static func buffer(target rawTarget: String, mountPoint: Bool) -> [UInt8] {
        let target = String(rawTarget.map { $0 == "/" ? "\\" : $0 })
        var substitute: String
        var relative = false
        let chars = Array(target)
        if target.hasPrefix("\\\\?\\") {
            substitute = "\\??\\" + String(chars.dropFirst(4))
        } else if target.hasPrefix("\\??\\") {
            substitute = target
        } else if target.hasPrefix("\\\\") {
            substitute = "\\??\\UNC\\" + String(chars.dropFirst(2))
        } else if chars.count >= 2, chars[0].isASCII, chars[0].isLetter, chars[1] == ":" {
            substitute = "\\??\\" + target
        } else {
            substitute = target
            relative = true
        }
        let substituteUnits = Array(substitute.utf16)
        let printUnits = Array(target.utf16)
        var bytes: [UInt8] = []
        func u16(_ value: Int) { bytes.append(UInt8(truncatingIfNeeded: value)); bytes.append(UInt8(truncatingIfNeeded: value >> 8)) }
        func u32(_ value: UInt32) { bytes.append(contentsOf: withUnsafeBytes(of: value.littleEndian, Array.init)) }
        let pathBytes = 2 * (substituteUnits.count + printUnits.count)
        u32(mountPoint ? mountPointTag : symlinkTag)
        u16((mountPoint ? 8 : 12) + pathBytes)
        u16(0)
        u16(0)
        u16(substituteUnits.count * 2)
        u16(substituteUnits.count * 2)
        u16(printUnits.count * 2)
        if !mountPoint { u32(relative ? 1 : 0) }
        for unit in substituteUnits + printUnits { u16(Int(unit)) }
        return bytes
    }
}
