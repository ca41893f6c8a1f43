import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `serve --metrics`: Prometheus text scraped with curl while real clients
/// (nbdcopy, nbdinfo) read an export.
final class MetricsTests: XCTestCase {
    let guid = "4d9a3738-4ac0-4f4c-8b9d-2c3d4e5f6071"

    func require(_ name: String) throws -> String {
        guard let path = DaemonHarness.tool(name) else { throw XCTSkip("\(name) is not installed") }
        return path
    }

    /// One scrape: every sample line, `name{labels}` → value.
    struct Scrape {
        var samples: [String: Double] = [:]
        var text = ""

        init(_ text: String) {
            self.text = text
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
                samples[String(line[..<space])] = value
            }
        }

        subscript(_ series: String) -> Double { samples[series] ?? 0 }

        /// The sum over every series of `name` whose labels contain `containing`.
        func sum(_ name: String, containing: String = "") -> Double {
            samples.filter { key, _ in
                (key == name || key.hasPrefix(name + "{")) && key.contains(containing)
            }.values.reduce(0, +)
        }
    }

    func scrape(_ curl: String, _ address: String, path: String = "/metrics") throws -> Scrape {
        let r = try DaemonHarness.run(curl, ["-sS", "--fail", "http://\(address)\(path)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return Scrape(r.stdout)
    }

    func testBytesReadGrowByTheExportSizeOverAnNBDCopy() throws {
        let curl = try require("curl"), nbdcopy = try require("nbdcopy"), nbdinfo = try require("nbdinfo")
        let d = try DaemonHarness(label: "metrics")
        let images = try d.makeImage(name: "metered")
        let metrics = "127.0.0.1:\(DaemonHarness.freePort())"
        try d.start(extra: ["--metrics", metrics])
        var r = try d.control(["mount", images, "metered.cim", "--volume-id", guid])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try DaemonHarness.run(nbdinfo, ["--size", d.uri(guid)])
        XCTAssertEqual(r.status, 0, r.stderr)
        let size = try XCTUnwrap(Double(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))

        let export = "export=\"\(guid)\""
        let bytes = "cimnbd_export_read_bytes_total{\(export)}"
        let reads = "cimnbd_export_requests_total{\(export),command=\"read\"}"
        let before = try scrape(curl, metrics)
        XCTAssertEqual(before["cimnbd_mounts"], 1, before.text)
        XCTAssertEqual(before["cimnbd_handshakes_total{result=\"transmission\"}"], 1, "nbdinfo --size opened the export once")

        // --no-extents: nbdcopy reads every byte of the export exactly once,
        // so bytes read grow by exactly its size, holes included.
        let copy = d.work + "/copy.ext4"
        r = try DaemonHarness.run(nbdcopy, ["--no-extents", d.uri(guid), copy])
        XCTAssertEqual(r.status, 0, r.stderr)
        let after = try scrape(curl, metrics)
        XCTAssertEqual(after[bytes] - before[bytes], size, after.text)
        XCTAssertGreaterThan(after[reads], before[reads])
        XCTAssertEqual(after.sum("cimnbd_export_errors_total", containing: export), 0, after.text)
        // Every answered request is in the latency histogram, and the
        // cumulative buckets end at the count.
        let answered = after.sum("cimnbd_export_requests_total", containing: export)
        XCTAssertEqual(after["cimnbd_export_request_duration_seconds_count{\(export)}"], answered, after.text)
        XCTAssertEqual(after["cimnbd_export_request_duration_seconds_bucket{\(export),le=\"+Inf\"}"], answered, after.text)
        XCTAssertGreaterThan(after["cimnbd_export_request_duration_seconds_sum{\(export)}"], 0)
        // nbdcopy has gone: no client left on the export or the server.
        XCTAssertEqual(after["cimnbd_export_clients{\(export)}"], 0, after.text)
        XCTAssertEqual(after["cimnbd_connections_open"], 0, after.text)
        XCTAssertGreaterThan(after["cimnbd_connections_accepted_total"], before["cimnbd_connections_accepted_total"])

        // With extents (the default) nbdcopy asks BLOCK_STATUS first and does
        // not read what is reported as zero. It widens each data extent to
        // whole requests (--request-size, aligned), so bytes read grow by the
        // request-sized pieces that hold data, per nbdinfo --map.
        let requestSize = 256 * 1024.0
        r = try DaemonHarness.run(nbdinfo, ["--map", d.uri(guid)])
        XCTAssertEqual(r.status, 0, r.stderr)
        var dataBytes: Double = 0
        var pieces = Set<Int>()
        for line in r.stdout.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 4, fields[3] == "data", let start = Double(fields[0]), let length = Double(fields[1]) else { continue }
            dataBytes += length
            for piece in Int(start / requestSize)...Int((start + length - 1) / requestSize) { pieces.insert(piece) }
        }
        let expectedSparse = pieces.map { min(requestSize, size - Double($0) * requestSize) }.reduce(0, +)
        XCTAssertGreaterThan(dataBytes, 0)
        XCTAssertLessThan(expectedSparse, size, "the test image needs zero runs")
        let beforeSparse = try scrape(curl, metrics)
        r = try DaemonHarness.run(nbdcopy, ["--request-size=\(Int(requestSize))", d.uri(guid), d.work + "/sparse.ext4"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let afterSparse = try scrape(curl, metrics)
        let sparseGrowth = afterSparse[bytes] - beforeSparse[bytes]
        XCTAssertGreaterThanOrEqual(sparseGrowth, dataBytes)
        XCTAssertEqual(sparseGrowth, expectedSparse, afterSparse.text)
        XCTAssertGreaterThan(afterSparse["cimnbd_export_requests_total{\(export),command=\"block_status\"}"], 0)
        XCTAssertEqual(try DaemonHarness.run("/usr/bin/cmp", [copy, d.work + "/sparse.ext4"]).status, 0)

        // nbdinfo --list ends with NBD_OPT_ABORT: an aborted handshake, not a failed one.
        let aborted = afterSparse["cimnbd_handshakes_total{result=\"aborted\"}"]
        r = try DaemonHarness.run(nbdinfo, ["--list", "nbd://\(d.authority)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let listed = try scrape(curl, metrics)
        XCTAssertEqual(listed["cimnbd_handshakes_total{result=\"aborted\"}"], aborted + 1, listed.text)
        // The TLS counters exist (at 0 until a TLS listener is configured).
        XCTAssertTrue(listed.text.contains("cimnbd_tls_handshakes_total 0"), listed.text)
        XCTAssertTrue(listed.text.contains("cimnbd_tls_handshake_failures_total 0"), listed.text)
    }

    func testMetricsListenerAnswersOnlyMetrics() throws {
        let curl = try require("curl")
        let d = try DaemonHarness(label: "metrics-http")
        let metrics = "127.0.0.1:\(DaemonHarness.freePort())"
        try d.start(extra: ["--metrics", metrics])
        var r = try DaemonHarness.run(curl, ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://\(metrics)/other"])
        XCTAssertEqual(r.stdout, "404")
        r = try DaemonHarness.run(curl, ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "http://\(metrics)/metrics"])
        XCTAssertEqual(r.stdout, "405")
        r = try DaemonHarness.run(curl, ["-s", "-D", "-", "-o", "/dev/null", "http://\(metrics)/metrics?x=1"])
        XCTAssertTrue(r.stdout.contains("200 OK"), r.stdout)
        XCTAssertTrue(r.stdout.lowercased().contains("content-type: text/plain; version=0.0.4"), r.stdout)
        // Two requests on one kept-alive connection.
        r = try DaemonHarness.run(curl, ["-s", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects} ",
                                         "http://\(metrics)/metrics", "http://\(metrics)/metrics"])
        XCTAssertEqual(r.stdout, "1 0 ", "the second request reuses the connection")
        // Garbage is answered 400 and the listener keeps serving.
        _ = try DaemonHarness.run("/bin/sh", ["-c", "printf 'NOT HTTP\\r\\n\\r\\n' | timeout 5 bash -c 'cat > /dev/tcp/\(metrics.replacingOccurrences(of: ":", with: "/"))'"])
        let scrape = try self.scrape(curl, metrics)
        XCTAssertEqual(scrape["cimnbd_mounts"], 0, scrape.text)
        XCTAssertTrue(scrape.text.contains("# HELP cimnbd_connections_accepted_total NBD client connections accepted."), scrape.text)
        XCTAssertTrue(scrape.text.contains("# TYPE cimnbd_connections_accepted_total counter"), scrape.text)
    }
}
