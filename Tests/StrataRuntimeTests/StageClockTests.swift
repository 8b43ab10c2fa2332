import Foundation
import StrataCore
import StrataRuntime
import XCTest

/// The jobs' per-stage clock: laps chain without gaps, CPU counts only what the thread ran, and
/// the totals reach the metrics and the job's summary line.
final class StageClockTests: XCTestCase {
    func testLapsPartitionTheThreadsTimeAndSplitCPUFromWaiting() throws {
        let registry = MetricsRegistry()
        let clock = StageClock(job: "t", registry: registry)
        let busy = clock.stage("busy"), sleep = clock.stage("sleep")
        XCTAssertEqual(clock.stage("busy"), busy, "a name registers once")
        clock.start()
        var x: UInt64 = 1
        let until = ContinuousClock.now + .milliseconds(30)
        while ContinuousClock.now < until { x = x &* 6364136223846793005 &+ 1442695040888963407 }
        clock.lap(busy)
        Thread.sleep(forTimeInterval: 0.03)
        clock.lap(sleep)
        XCTAssertNotEqual(x, 0)

        let s = clock.snapshot
        let b = try XCTUnwrap(s["busy"]), z = try XCTUnwrap(s["sleep"])
        XCTAssertEqual(b.laps, 1)
        XCTAssertGreaterThanOrEqual(b.wallNs, 30_000_000)
        XCTAssertGreaterThan(b.cpuNs, 10_000_000, "spinning is CPU")
        XCTAssertGreaterThanOrEqual(z.wallNs, 30_000_000)
        XCTAssertLessThan(z.cpuNs, 10_000_000, "sleeping is waiting, not CPU")
        XCTAssertEqual(clock.thread.wallNs, b.wallNs + z.wallNs, "laps chain: the stages add up to the loop's wall time")

        let m = registry.snapshot()
        XCTAssertEqual(m["strata_job_stage_seconds_total{clock=\"wall\",job=\"t\",stage=\"busy\"}"] ?? 0, Double(b.wallNs) / 1e9, accuracy: 1e-6)
        XCTAssertEqual(m["strata_job_stage_seconds_total{clock=\"cpu\",job=\"t\",stage=\"sleep\"}"] ?? -1, Double(z.cpuNs) / 1e9, accuracy: 1e-6)
    }

    func testSummaryLineCarriesStagesAndCPUPerRecord() throws {
        let clock = StageClock(job: "t2", registry: MetricsRegistry())
        let work = clock.stage("work")
        clock.start()
        let until = ContinuousClock.now + .milliseconds(5)
        while ContinuousClock.now < until {}
        clock.lap(work)
        var j = JobSummary(job: "t2")
        j.consumed = 1_000
        j.outcomes = ["done": 1_000]
        j.addStages(clock)
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(j.jsonLine.utf8)) as? [String: Any])
        let stages = try XCTUnwrap(o["stages"] as? [String: [String: Any]])
        XCTAssertEqual(stages["work"]?["laps"] as? Int, 1)
        XCTAssertGreaterThan(stages["work"]?["wall_s"] as? Double ?? 0, 0.004)
        let perRecord = try XCTUnwrap(o["stage_cpu_us_per_record"] as? [String: Double])
        XCTAssertGreaterThan(perRecord["work"] ?? 0, 1, "≥ 5 ms of CPU over 1 000 records")
        XCTAssertNotNil(o["thread"])
        XCTAssertNil(try XCTUnwrap(JSONSerialization.jsonObject(with: Data(JobSummary(job: "x").jsonLine.utf8)) as? [String: Any])["stages"],
                     "jobs without a loop print no stages")
    }
}
