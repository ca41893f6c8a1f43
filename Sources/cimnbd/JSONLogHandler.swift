import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// `serve --log-format json`: one JSON object per line on stderr, with the
/// same facts as the text format: time, level, label, message, source, and
/// the metadata (`nbd.connection`, `nbd.peer`, `nbd.export`, …) as an object.
///
///     {"time":"2026-12-02T07:50:01.123Z","level":"info","label":"cimnbd","source":"NBDServer",
///      "message":"client entered transmission phase","metadata":{"nbd.connection":"3","nbd.export":"…"}}
struct JSONLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: @Sendable (String) -> Void

    /// A handler writing to standard error, each line with one `write(2)` so
    /// lines from different threads never interleave.
    init(label: String, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.init(label: label, metadataProvider: metadataProvider) { line in
            var bytes = Array(line.utf8)
            bytes.append(UInt8(ascii: "\n"))
            var done = 0
            while done < bytes.count {
                let written = bytes[done...].withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                done += written
            }
        }
    }

    /// A handler handing each line (without newline) to `output`.
    init(label: String, metadataProvider: Logger.MetadataProvider?, output: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.output = output
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let given = event.metadata { merged.merge(given) { _, new in new } }
        var line = "{\"time\":"
        Self.appendString(Self.timestamp(), to: &line)
        line += ",\"level\":"
        Self.appendString(event.level.rawValue, to: &line)
        line += ",\"label\":"
        Self.appendString(label, to: &line)
        line += ",\"source\":"
        Self.appendString(event.source, to: &line)
        line += ",\"message\":"
        Self.appendString(event.message.description, to: &line)
        if let error = event.error {
            line += ",\"error\":"
            Self.appendString("\(error)", to: &line)
        }
        if !merged.isEmpty {
            line += ",\"metadata\":"
            Self.appendValue(.dictionary(merged), to: &line)
        }
        line += "}"
        output(line)
    }

    /// UTC, milliseconds, RFC 3339.
    static func timestamp(_ date: Date = Date()) -> String {
        date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }

    private static func appendValue(_ value: Logger.Metadata.Value, to line: inout String) {
        switch value {
        case .string(let text):
            appendString(text, to: &line)
        case .stringConvertible(let convertible):
            appendString(convertible.description, to: &line)
        case .array(let values):
            line += "["
            for (index, element) in values.enumerated() {
                if index > 0 { line += "," }
                appendValue(element, to: &line)
            }
            line += "]"
        case .dictionary(let entries):
            line += "{"
            // Sorted keys: the same event always prints the same line.
            for (index, key) in entries.keys.sorted().enumerated() {
                if index > 0 { line += "," }
                appendString(key, to: &line)
                line += ":"
                if let element = entries[key] { appendValue(element, to: &line) }
            }
            line += "}"
        }
    }

    /// Appends `text` as a JSON string literal (RFC 8259 escapes).
    static func appendString(_ text: String, to line: inout String) {
        line += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20:
                line += "\\u00" + String(scalar.value >> 4, radix: 16) + String(scalar.value & 0xF, radix: 16)
            default: line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }
}
