import XCTest
@testable import VolumeSynth

final class VolumeSynthModuleTests: XCTestCase {
    func testModuleLinks() throws {
        XCTAssertTrue(true)
    }
}
