import XCTest
@testable import NBDKernel

final class ServerAddressTests: XCTestCase {
    func testTCPURI() throws {
        let a = try NBDServerAddress(parsing: "nbd://127.0.0.1/3f2a9c4e-5b1d-4e7a-9c2f-0d8e6b4a1c57")
        XCTAssertEqual(a.endpoint, .tcp(host: "127.0.0.1", port: 10809))
        XCTAssertEqual(a.exportName, "3f2a9c4e-5b1d-4e7a-9c2f-0d8e6b4a1c57")
        let b = try NBDServerAddress(parsing: "nbd://example.org:1234")
        XCTAssertEqual(b.endpoint, .tcp(host: "example.org", port: 1234))
        XCTAssertNil(b.exportName)
        let c = try NBDServerAddress(parsing: "nbd://10.0.2.2:10809/")
        XCTAssertEqual(c.endpoint, .tcp(host: "10.0.2.2", port: 10809))
        XCTAssertNil(c.exportName)
    }

    func testIPv6AndEscapes() throws {
        let a = try NBDServerAddress(parsing: "nbd://[::1]:10810/a%20b")
        XCTAssertEqual(a.endpoint, .tcp(host: "::1", port: 10810))
        XCTAssertEqual(a.exportName, "a b")
        XCTAssertEqual(a.endpointDescription, "[::1]:10810")
    }

    func testUnixURI() throws {
        let a = try NBDServerAddress(parsing: "nbd+unix:///guid-1?socket=/run/cimnbd.sock")
        XCTAssertEqual(a.endpoint, .unix(path: "/run/cimnbd.sock"))
        XCTAssertEqual(a.exportName, "guid-1")
        let b = try NBDServerAddress(parsing: "nbd+unix:///?socket=/tmp/s")
        XCTAssertEqual(b.endpoint, .unix(path: "/tmp/s"))
        XCTAssertNil(b.exportName)
        XCTAssertEqual(try NBDServerAddress(parsing: "unix:/tmp/x").endpoint, .unix(path: "/tmp/x"))
    }

    func testHostPort() throws {
        XCTAssertEqual(try NBDServerAddress(parsing: "localhost:9000").endpoint, .tcp(host: "localhost", port: 9000))
        XCTAssertEqual(try NBDServerAddress(parsing: "localhost").endpoint, .tcp(host: "localhost", port: 10809))
    }

    func testInvalid() {
        for bad in ["nbd://", "nbd://host:0/x", "nbd://host:99999/x", "nbd://[::1/x", "nbds://host/x",
                    "nbd+unix:///name", "nbd+unix:///name?socket=", "host/x", "http://x/y", "nbd://host:abc/"] {
            XCTAssertThrowsError(try NBDServerAddress(parsing: bad), bad) { error in
                guard case NBDKernelError.invalidURI = error else { return XCTFail("\(bad): \(error)") }
            }
        }
    }
}
