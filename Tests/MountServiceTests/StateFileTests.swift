import Foundation
import XCTest

/// issue 9, item 4: a damaged state file must not stop the daemon. It is kept
/// aside as STATE.corrupt-<time>, one log line says so, the table starts empty.
final class StateFileTests: XCTestCase {
    private func startWithDamagedState(_ damage: String, contents: Data) throws {
        let d = try DaemonHarness(label: "state-\(damage)")
        try contents.write(to: URL(fileURLWithPath: d.state))
        try d.start()
        let list = try d.control(["list", "--json"])
        XCTAssertEqual(list.status, 0, list.stderr)
        let table = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [Any]
        XCTAssertEqual(table?.count, 0, "\(damage): empty table: \(list.stdout)")

        let kept = try FileManager.default.contentsOfDirectory(atPath: d.work).filter { $0.hasPrefix("state.json.corrupt-") }
        XCTAssertEqual(kept.count, 1, "\(damage): \(kept)")
        if let name = kept.first {
            XCTAssertNotNil(name.range(of: #"^state\.json\.corrupt-\d{8}T\d{6}Z$"#, options: .regularExpression), name)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: d.work + "/" + name)), contents, "\(damage): kept unchanged")
        }
        let log = try String(contentsOfFile: d.logPath, encoding: .utf8)
        let lines = log.split(separator: "\n").filter { $0.contains("damaged") }
        XCTAssertEqual(lines.count, 1, "\(damage): one log line\n\(log)")
        XCTAssertTrue(lines.first?.contains("state.json.corrupt-") ?? false, log)

        // The daemon works: a mount is saved in a fresh, valid state file and
        // comes back after a restart.
        let images = try d.makeImage(name: "layer", files: 3, bigFileBytes: 4096)
        let guid = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
        let mount = try d.control(["mount", images, "layer.cim", "--volume-id", guid])
        XCTAssertEqual(mount.status, 0, mount.stderr)
        d.stop()
        try d.start()
        XCTAssertTrue(try d.control(["list"]).stdout.contains(guid), "\(damage): restored after restart")
        d.stop()
    }

    func testTruncatedStateFile() throws {
        let full = #"{"mounts":[{"flags":0,"guid":"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d","imageDirectory":"/images","imageName":"a.cim"}],"version":1}"#
        try startWithDamagedState("truncated", contents: Data(full.utf8.prefix(57)))
    }

    func testEmptyStateFile() throws {
        try startWithDamagedState("empty", contents: Data())
    }

    func testGarbageStateFile() throws {
        var generator = SystemRandomNumberGenerator()
        try startWithDamagedState("garbage", contents: Data((0..<3000).map { _ in UInt8.random(in: 0...255, using: &generator) }))
        // Valid JSON that is not a mount table counts as damaged too.
        try startWithDamagedState("not-a-table", contents: Data(#"{"hello": [1, 2, 3]}"#.utf8))
    }

    /// Entries whose image is gone are logged and kept for the next start (not damage).
    func testMissingImageIsKeptNotSetAside() throws {
        let d = try DaemonHarness(label: "state-missing")
        let images = try d.makeImage(name: "gone", files: 2, bigFileBytes: 4096)
        try d.start()
        let guid = "1f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
        XCTAssertEqual(try d.control(["mount", images, "gone.cim", "--volume-id", guid]).status, 0)
        d.stop()
        try FileManager.default.moveItem(atPath: images, toPath: images + ".away")
        try d.start()
        XCTAssertFalse(try d.control(["list"]).stdout.contains(guid))
        d.stop()
        XCTAssertTrue(try String(contentsOfFile: d.state, encoding: .utf8).contains(guid), "kept for the next start")
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: d.work).allSatisfy { !$0.contains("corrupt") })
        try FileManager.default.moveItem(atPath: images + ".away", toPath: images)
        try d.start()
        XCTAssertTrue(try d.control(["list"]).stdout.contains(guid), "back once the image is")
        d.stop()
    }
}
