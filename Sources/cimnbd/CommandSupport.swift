import ArgumentParser
import CimFS
#if canImport(Glibc)
import Glibc
#endif

/// Prints `cimnbd: message` on stderr.
func printError(_ message: String) {
    writeStderr("cimnbd: " + message + "\n")
}

/// Runs `body`, turning any error into one line on stderr and exit code `code`.
func reportingErrors<T>(exitCode code: Int32 = 1, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let exit as ExitCode {
        throw exit
    } catch let error as CleanExit {
        throw error
    } catch {
        printError("\(error)")
        throw ExitCode(code)
    }
}

/// True when stderr is a terminal (progress is shown only then).
var stderrIsTerminal: Bool { isatty(2) != 0 }

/// Writes text to stderr, unbuffered.
func writeStderr(_ text: String) {
    var copy = text
    copy.withUTF8 { writeAll(2, UnsafeRawBufferPointer($0)) }
}

/// Writes text to stdout unbuffered (the daemon's output must appear at once, also in a pipe).
func writeStdoutText(_ text: String) {
    var copy = text
    copy.withUTF8 { writeAll(1, UnsafeRawBufferPointer($0)) }
}

/// Writes raw bytes to stdout.
func writeStdout(_ bytes: UnsafeRawBufferPointer) {
    writeAll(1, bytes)
}

private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress else { return }
    var done = 0
    while done < bytes.count {
        let n = write(fd, base + done, bytes.count - done)
        if n <= 0 {
            if errno == EINTR { continue }
            return
        }
        done += n
    }
}

/// Formats a FILETIME (100 ns ticks since 1601) as UTC `YYYY-MM-DD hh:mm:ss.fffffff`.
func formatFileTime(_ ticks: UInt64) -> String {
    let seconds = CimFileTime.unixTime(ticks).seconds
    let fraction = ticks % UInt64(CimFileTime.ticksPerSecond)
    var time = time_t(seconds)
    var parts = tm()
    gmtime_r(&time, &parts)
    func pad(_ v: Int32, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
    let frac = String(fraction)
    return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2)) \(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(String(repeating: "0", count: 7 - frac.count) + frac)"
}

func hexString(_ bytes: [UInt8]) -> String {
    let digits: [Character] = Array("0123456789abcdef")
    var out = ""
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 15)])
    }
    return out
}

/// Splits `PATH:STREAM` (the stream part is optional; a drive-letter-free image path never has another colon).
func splitStreamPath(_ text: String) -> (path: String, stream: String?) {
    guard let colon = text.lastIndex(of: ":") else { return (text, nil) }
    return (String(text[..<colon]), String(text[text.index(after: colon)...]))
}
