import XCTest
@testable import NBDKernel

final class NBDKernelModuleTests: XCTestCase {
    func testModuleLinks() throws {
        XCTAssertTrue(true)
    }
}
