import NBDFuzzSession

// libFuzzer target: the NBD transmission phase. The first input byte picks a
// fixed handshake (NBDFuzzSession.handshake(mode:): NO_ZEROES, structured
// replies, base:allocation, NBD_OPT_GO or NBD_OPT_EXPORT_NAME); the rest is
// sent as requests on the export. The real connection handler answers in an
// EmbeddedChannel; a crash, a trap, a sanitizer report or a request never
// answered is a finding.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNBDRequests(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: start, count: count)
    var session = NBDFuzzSession.handshake(mode: input.first ?? 0)
    session += input.dropFirst()
    session.withUnsafeBytes { NBDFuzzSession.shared.run($0) }
    return 0
}
