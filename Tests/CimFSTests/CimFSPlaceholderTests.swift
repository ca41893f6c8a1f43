import XCTest
@testable import CimFS

final class CimFSModuleTests: XCTestCase {
    func testModuleLinks() throws {
        XCTAssertTrue(true)
    }
}
