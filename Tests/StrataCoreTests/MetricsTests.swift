import Foundation
import XCTest
@testable import StrataCore

final class MetricsTests: XCTestCase {
    func testSameNameAndLabelsGiveSameInstance() {
        let r = MetricsRegistry()
        let a = r.counter("split_events_total", help: "Events", labels: ["action": "play", "job": "split"])
        let b = r.counter("split_events_total", help: "Events", labels: ["job": "split", "action": "play"])
        let c = r.counter("split_events_total", help: "Events", labels: ["action": "like", "job": "split"])
        XCTAssertTrue(a === b)
        XCTAssertFalse(a === c)
        XCTAssertTrue(r.gauge("lag", help: "Lag") === r.gauge("lag", help: "Lag"))
    }

    func testConcurrentIncrementsAreNotLost() {
        let r = MetricsRegistry()
        let counter = r.counter("hits_total", help: "Hits")
        let gauge = r.gauge("level", help: "Level")
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<10_000 {
                counter.increment()
                gauge.add(0.5)
            }
            counter.increment(by: 5)
        }
        XCTAssertEqual(counter.value, 80_040)
        XCTAssertEqual(gauge.value, 40_000)
        gauge.set(-2.25)
        XCTAssertEqual(gauge.value, -2.25)
    }

    func testRenderIsPrometheusText() {
        let r = MetricsRegistry()
        r.counter("zeta_total", help: "Last family").increment(by: 3)
        r.counter("events_total", help: "Events by action", labels: ["action": "play"]).increment(by: 2)
        r.counter("events_total", help: "Events by action", labels: ["action": "expose"]).increment(by: 7)
        r.gauge("watermark_lag_seconds", help: "Lag\nof the watermark", labels: ["path": "C:\\x \"q\"\nz"]).set(1.5)
        r.gauge("open_windows", help: "Open windows").set(4)
        let expected = """
        # HELP events_total Events by action
        # TYPE events_total counter
        events_total{action="expose"} 7
        events_total{action="play"} 2
        # HELP open_windows Open windows
        # TYPE open_windows gauge
        open_windows 4
        # HELP watermark_lag_seconds Lag\\nof the watermark
        # TYPE watermark_lag_seconds gauge
        watermark_lag_seconds{path="C:\\\\x \\"q\\"\\nz"} 1.5
        # HELP zeta_total Last family
        # TYPE zeta_total counter
        zeta_total 3

        """
        XCTAssertEqual(r.render(), expected)
    }

    func testSpecialGaugeValues() {
        XCTAssertEqual(MetricsRegistry.formatValue(.nan), "NaN")
        XCTAssertEqual(MetricsRegistry.formatValue(.infinity), "+Inf")
        XCTAssertEqual(MetricsRegistry.formatValue(-.infinity), "-Inf")
        XCTAssertEqual(MetricsRegistry.formatValue(-3), "-3")
        XCTAssertEqual(MetricsRegistry.formatValue(0.25), "0.25")
    }

    func testSnapshotKeys() {
        let r = MetricsRegistry()
        r.counter("a_total", help: "A", labels: ["k": "v", "b": "x"]).increment()
        r.gauge("g", help: "G").set(2.5)
        XCTAssertEqual(r.snapshot(), ["a_total{b=\"x\",k=\"v\"}": 1, "g": 2.5])
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
    /// registry to the metrics file: one registry per process, so a counter looked up again by name
    /// and labels is the instance a job increments.
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
