import XCTest
@testable import NBDServer

final class NBDServerModuleTests: XCTestCase {
    func testModuleLinks() throws {
        XCTAssertTrue(true)
    }
}
