import NBDFuzzSession

// libFuzzer target: the NBD option phase. The input is everything a client
// sends after the server's greeting: the 32-bit client flags, then options
// (and, once NBD_OPT_GO or NBD_OPT_EXPORT_NAME succeeds, requests). The real
// connection handler answers in an EmbeddedChannel; a crash, a trap, a sanitizer
// report or a session that never ends is a finding.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNBDOptions(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    NBDFuzzSession.shared.run(UnsafeRawBufferPointer(start: start, count: count))
    return 0
}
