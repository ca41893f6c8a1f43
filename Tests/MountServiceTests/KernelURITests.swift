import MountService
import NBDKernel
import NBDServer
import XCTest

/// Where `mount --attach` and the reconnect at start send the kernel under
/// `--tls require`: the daemon's Unix socket, as a URI whose parse gives the
/// socket path back unchanged, whatever characters the path holds.
final class KernelURITests: XCTestCase {
    private func manager(scheme: String, socket: String?) -> MountManager {
        MountManager(registry: ExportRegistry(), store: nil, advertisedScheme: scheme, plainSocketPath: socket,
                     makeVolume: { _, _ in throw MountError.fileNotFound(path: "not used") })
    }

    func testSocketPathWithURICharactersSurvivesTheURI() throws {
        let path = "/tmp/odd dir/a%b&c?d#e.sock"
        let uri = try XCTUnwrap(manager(scheme: "nbds", socket: path).kernelURI(for: "G"))
        XCTAssertEqual(uri, "nbd+unix:///G?socket=/tmp/odd%20dir/a%25b%26c%3Fd%23e.sock")
        let address = try NBDServerAddress(parsing: uri)
        XCTAssertEqual(address.endpoint, .unix(path: path))
        XCTAssertEqual(address.exportName, "G")
    }

    func testPlainTCPKeepsTheAdvertisedURIAndTLSWithoutSocketHasNone() {
        XCTAssertEqual(manager(scheme: "nbd", socket: "/run/x.sock").kernelURI(for: "G"), "nbd://127.0.0.1/G")
        XCTAssertNil(manager(scheme: "nbds", socket: nil).kernelURI(for: "G"))
    }
}
