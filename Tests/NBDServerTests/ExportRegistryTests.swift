import NBDServer
import XCTest

final class ExportRegistryTests: XCTestCase {
    func testGUIDParsingAndLayout() throws {
        let guid = try XCTUnwrap(ExportGUID("00112233-4455-6677-8899-AABBCCDDEEFF"))
        XCTAssertEqual(guid.description, "00112233-4455-6677-8899-aabbccddeeff")
        XCTAssertEqual(guid.bytes, [0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])
        XCTAssertEqual(ExportGUID(bytes: guid.bytes), guid)
        XCTAssertEqual(ExportGUID("{00112233-4455-6677-8899-aabbccddeeff}"), guid)
        for bad in ["", "{}", "{00112233-4455-6677-8899-aabbccddeeff", "00112233-4455-6677-8899-aabbccddeeff}",
                    "00112233x4455-6677-8899-aabbccddeeff", "00112233-4455-6677-8899-aabbccddeefg",
                    "00112233-4455-6677-8899-aabbccddeeff0", "é0112233-4455-6677-8899-aabbccddeeff"] {
            XCTAssertNil(ExportGUID(bad), bad)
        }
        XCTAssertNil(ExportGUID(bytes: [1, 2, 3]))
    }

    func testAddRemoveAndLookup() throws {
        let registry = ExportRegistry()
        let volume = TestVolume([.zeros(4096)])
        try registry.add(guid: "{AAAAAAAA-0000-0000-0000-000000000001}", volume: volume, description: "one")
        XCTAssertThrowsError(try registry.add(guid: "aaaaaaaa-0000-0000-0000-000000000001", volume: volume, description: "dup"))
        XCTAssertThrowsError(try registry.add(guid: "nope", volume: volume, description: "bad")) { error in
            XCTAssertEqual(error as? ExportRegistryError, .invalidGUID("nope"))
        }
        XCTAssertEqual(registry.export(named: "AAAAAAAA-0000-0000-0000-000000000001")?.description, "one")
        XCTAssertEqual(registry.export(named: "")?.description, "one", "the only export is the default")
        try registry.add(guid: "bbbbbbbb-0000-0000-0000-000000000002", volume: volume, description: "two")
        XCTAssertNil(registry.export(named: ""))
        XCTAssertEqual(registry.exports.map(\.name), ["aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002"])
        let guid = try XCTUnwrap(ExportGUID("aaaaaaaa-0000-0000-0000-000000000001"))
        XCTAssertEqual(registry.clientCount(guid: guid), 0)
        XCTAssertEqual(try registry.remove(guid: guid, force: false), 0)
        XCTAssertThrowsError(try registry.remove(guid: guid, force: true)) { error in
            XCTAssertEqual(error as? ExportRegistryError, .notFound(guid))
        }
        XCTAssertEqual(registry.exports.count, 1)
    }
}
