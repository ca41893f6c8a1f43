// Benchmark of the CIM reader and the CIM → ext4 translator on a real image
// (not a test). Usage: cim-bench IMAGE.cim, or cim-bench --ready IMAGE.cim
// (one mount-readiness measurement: open + volume + first read).
//
// Prints, each in a fresh measurement:
//   open      CimImage(path:)
//   walk+stat every directory entry visited, stat (incl. link count) of each
//   volume    CimVolumeBuilder.ext4: the volume ready to serve
//   metadata  reading every non-file-data block of the volume once
// and the process's peak resident set after each step.
import CimFS
import Foundation
import VolumeSynth
#if canImport(Glibc)
import Glibc
#endif

func peakRSSMiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

func measure<T>(_ label: String, _ body: () throws -> T) rethrows -> T {
    let start = DispatchTime.now().uptimeNanoseconds
    let result = try body()
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    print(label.padding(toLength: 10, withPad: " ", startingAt: 0) + String(format: " %8.3f s   peak RSS %7.1f MiB", seconds, peakRSSMiB()))
    return result
}

/// `--ready`: one measurement of what a mount waits for, in a fresh process
/// (so the peak RSS is this job's alone): open the image, build the volume,
/// serve the first read (the superblock). Prints one machine-readable line.
func measureReady(_ path: String) throws {
    let start = DispatchTime.now().uptimeNanoseconds
    let image = try CimImage(path: path)
    let (volume, _) = try CimVolumeBuilder.ext4(image: image, guid: image.regionSet, mapping: MappingOptions())
    var superblock = [UInt8](repeating: 0, count: 4096)
    try superblock.withUnsafeMutableBytes { try volume.read(into: $0, at: 0) }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    guard superblock[0x438] == 0x53, superblock[0x439] == 0xEF else {
        print("cim-bench: no ext4 magic in the first read")
        exit(1)
    }
    print(String(format: "ready %.4f s peak-rss %.1f MiB files %u volume %llu MiB", seconds, peakRSSMiB(), image.maxFileID, volume.size >> 20))
}

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.count == 2, arguments[0] == "--ready" {
    do { try measureReady(arguments[1]) } catch {
        print("cim-bench: \(error)")
        exit(1)
    }
    exit(0)
}
guard arguments.count == 1 else {
    print("usage: cim-bench IMAGE.cim | cim-bench --ready IMAGE.cim")
    exit(2)
}
let path = arguments[0]
do {
    let image = try measure("open") { try CimImage(path: path) }
    var entries = 0
    try measure("walk+stat") {
        try image.walk { _, child, _ in
            _ = try image.stat(child.fileID)
            entries += 1
        }
    }
    print("           \(entries) entries, \(image.maxFileID) FileIDs")
    let rssBefore = peakRSSMiB()
    let (volume, warnings) = try measure("volume") { try CimVolumeBuilder.ext4(image: image, guid: image.regionSet, mapping: MappingOptions()) }
    print("           \(volume.size >> 20) MiB ext4 volume, \(warnings.count) warnings, \(String(format: "%.0f", (peakRSSMiB() - rssBefore) * 1_048_576 / Double(max(1, entries)))) bytes/file of RSS growth")
    var metadataBytes: UInt64 = 0
    try measure("metadata") {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: UInt64 = 0
        let step: UInt64 = 64 << 20
        while offset < volume.size {
            let length = min(step, volume.size - offset)
            var position = offset
            for segment in try volume.segments(offset: offset, length: length) {
                if case .metadata(let count) = segment {
                    var done: UInt64 = 0
                    while done < count {
                        let n = Int(min(UInt64(buffer.count), count - done))
                        try buffer.withUnsafeMutableBytes { try volume.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<n]), at: position + done) }
                        done += UInt64(n)
                    }
                    metadataBytes += count
                }
                position += segment.length
            }
            offset += length
        }
    }
    print("           \(metadataBytes >> 20) MiB of generated metadata")
} catch {
    print("cim-bench: \(error)")
    exit(1)
}
