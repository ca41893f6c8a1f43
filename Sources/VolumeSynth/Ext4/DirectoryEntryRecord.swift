/// One entry to store in a directory block.
struct DirectoryEntryRecord {
    var name: [UInt8]
    var inode: UInt32
    /// ext4 dirent file type (1 file, 2 directory, 7 symlink).
    var fileType: UInt8

    var recordLength: Int { (8 + name.count + 3) & ~3 }
}
