/// Where an import is, for progress displays.
public struct ImportProgress: Sendable {
    /// Bytes read from the input (compressed, when it is).
    public var inputBytes: UInt64
    /// Tar (or package) entries handled.
    public var entries: Int
}
