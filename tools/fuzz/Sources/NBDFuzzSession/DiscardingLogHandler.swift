import Logging

/// Formats every message, at every level, and drops it: log messages quote
/// client input, so building them is part of what is fuzzed, but printing
/// them would only slow the fuzzer down.
struct DiscardingLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        _ = event.message.description
    }
}
