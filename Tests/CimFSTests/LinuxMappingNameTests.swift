import XCTest
@testable import CimFS

/// Names the Linux mapping makes up must stay valid Linux names.
final class LinuxMappingNameTests: XCTestCase {
    func testNumberedNamesStayWithin255BytesAndWholeCharacters() {
        let long = Array(String(repeating: "é", count: 127).utf8) + [0x61]  // 255 bytes
        let numbered = CimLinuxMapping.numbered(long, 2)
        XCTAssertEqual(numbered.count, 254, "the cut é is dropped whole")
        XCTAssertNotNil(String(validating: numbered, as: UTF8.self))
        XCTAssertTrue(numbered.hasSuffixBytes(Array("é~2".utf8)))
        let emoji = Array(String(repeating: "😀", count: 63).utf8) + [0x61, 0x62, 0x63]  // 255 bytes
        XCTAssertEqual(CimLinuxMapping.numbered(emoji, 10), Array(String(repeating: "😀", count: 63).utf8) + Array("~10".utf8))
        XCTAssertEqual(CimLinuxMapping.numbered(Array("short".utf8), 3), Array("short~3".utf8))
    }
}

extension Array where Element == UInt8 {
    fileprivate func hasSuffixBytes(_ suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}
