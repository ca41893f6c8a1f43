import XCTest
@testable import MountService

final class MountServiceModuleTests: XCTestCase {
    func testModuleLinks() throws {
        XCTAssertTrue(true)
    }
}
