import Foundation
import XCTest
import Metrics
import StrataCore

final class MetricsTests: XCTestCase {
    /// Handles looked up again by name and labels (in any order) update one series.
    func testSameNameAndLabelsAreOneSeries() {
        let r = MetricsRegistry()
        r.counter("split_events_total", help: "Events", labels: ["action": "play", "job": "split"]).increment(by: 2)
        r.counter("split_events_total", help: "Events", labels: ["job": "split", "action": "play"]).increment(by: 3)
        r.counter("split_events_total", help: "Events", labels: ["action": "like", "job": "split"]).increment()
        let snap = r.snapshot()
        XCTAssertEqual(snap["split_events_total{action=\"play\",job=\"split\"}"], 5)
        XCTAssertEqual(snap["split_events_total{action=\"like\",job=\"split\"}"], 1)
    }

    func testConcurrentIncrementsAreNotLost() {
        let r = MetricsRegistry()
        let counter = r.counter("hits_total", help: "Hits")
        let meter = r.meter("level", help: "Level")
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<10_000 {
                counter.increment()
                meter.increment(by: 0.5)
            }
            counter.increment(by: 5)
        }
        XCTAssertEqual(r.snapshot()["hits_total"], 80_040)
        XCTAssertEqual(r.snapshot()["level"], 40_000)
        r.gauge("level_set", help: "Set").record(-2.25)
        XCTAssertEqual(r.snapshot()["level_set"], -2.25)
    }

    func testRenderIsPrometheusTextWithHelpAndTypes() {
        let r = MetricsRegistry()
        r.counter("events_total", help: "Events by action", labels: ["action": "play"]).increment(by: 2)
        r.counter("events_total", help: "Events by action", labels: ["action": "expose"]).increment(by: 7)
        r.gauge("open_windows", help: "Open windows").record(4)
        r.timer("commit_seconds", help: "Commit time", buckets: [.milliseconds(10), .seconds(1)]).record(duration: .milliseconds(20))
        let text = r.render()
        for line in ["# HELP events_total Events by action", "# TYPE events_total counter",
                     "events_total{action=\"expose\"} 7", "events_total{action=\"play\"} 2",
                     "# TYPE open_windows gauge", "open_windows 4.0",
                     "# TYPE commit_seconds histogram", "commit_seconds_bucket{le=\"0.01\"} 0",
                     "commit_seconds_bucket{le=\"1.0\"} 1", "commit_seconds_count 1"] {
            XCTAssertTrue(text.contains(line + "\n"), "missing \(line.debugDescription) in:\n\(text)")
        }
    }

    func testWriteTextfileAtomically() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-metrics-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = MetricsRegistry()
        r.counter("written_total", help: "W").increment(by: 9)
        let path = dir.appendingPathComponent("strata.prom").path
        try r.writeTextfile(path: path)
        r.counter("written_total", help: "W").increment()
        try r.writeTextfile(path: path)   // replaces the previous file
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), r.render())
        XCTAssertTrue(r.render().contains("written_total 10\n"))
        // Only the final file remains: the temporary file was renamed, not left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["strata.prom"])

        XCTAssertThrowsError(try r.writeTextfile(path: dir.appendingPathComponent("missing/dir/x.prom").path)) { error in
            XCTAssertTrue("\(error)".contains("missing/dir/x.prom"))
        }
    }

    /// The jobs register their series in `MetricsRegistry.shared` and the command line writes that
    /// registry to the metrics file: one registry per process.
    func testSharedRegistryIsOneRegistryPerProcess() {
        let run = UUID().uuidString // a series no other test (or earlier run of this one) touches
        let key = "strata_metrics_tests_total{run=\"\(run)\"}"
        XCTAssertTrue(MetricsRegistry.shared === MetricsRegistry.shared)
        XCTAssertNil(MetricsRegistry.shared.snapshot()[key], "a fresh series")
        MetricsRegistry.shared.counter("strata_metrics_tests_total", help: "test", labels: ["run": run]).increment(by: 2)
        MetricsRegistry.shared.counter("strata_metrics_tests_total", help: "test", labels: ["run": run]).increment(by: 3)
        XCTAssertEqual(MetricsRegistry.shared.snapshot()[key], 5, "both lookups reached the same counter")
        XCTAssertTrue(MetricsRegistry.shared.render().contains(key + " 5\n"), "and the exposition shows it")
        XCTAssertNil(MetricsRegistry().snapshot()[key], "a registry of its own does not see the shared series")
    }
}
