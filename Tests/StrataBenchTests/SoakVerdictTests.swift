import XCTest
@testable import StrataBench

/// `bench soak`'s verdict: the middle and last thirds of the load compared by their medians.
final class SoakVerdictTests: XCTestCase {
    /// 30 samples over 300 s of load, 10 per third, plus 2 drain samples.
    func samples(rss: (Double) -> Double, state: (Double) -> Double = { _ in 100 }, lag: (Double) -> Int64 = { _ in 20_000 },
                 freshness: (Double) -> Double = { _ in 3 }) -> [SoakSample] {
        var out: [SoakSample] = []
        for i in 0..<32 {
            let t = Double(i) * 10 + 5
            var s = SoakSample(t: t, phase: t < 300 ? .load : .drain, rssMB: rss(t), cpuSeconds: t / 2)
            s.stateMB = state(t)
            s.openCells = Int(state(t) * 3_000)
            s.lag = ["split": lag(t), "dwm": lag(t)]
            s.freshnessS = freshness(t)
            out.append(s)
        }
        return out
    }

    func verdict(_ s: [SoakSample]) -> SoakVerdict {
        SoakVerdict.evaluate(s, loadSeconds: 300, rate: 5_000, groups: ["split", "dwm"], accounting: [])
    }

    func testSteadyRunPasses() {
        // Warm-up may grow as it likes; afterwards RSS wobbles around a plateau.
        let v = verdict(samples(rss: { t in t < 100 ? 200 + 3 * t : 500 + (Int(t) % 20 == 5 ? 8 : -8) }))
        XCTAssertEqual(v.outcome, .pass, "\(v.checks.map(\.reason))")
    }

    /// RSS that grows with the window state is not a leak: the check subtracts the state.
    func testGrowthOfWindowStateIsNotALeak() {
        let v = verdict(samples(rss: { 400 + $0 }, state: { $0 }))
        XCTAssertEqual(v.checks[0].outcome, .pass)
        XCTAssertEqual(v.outcome, .pass)
    }

    /// 0.5 MB/s outside the window state: ≈ 50 MB between the thirds' medians, over 32 MB and 5 %.
    func testMemoryGrowthOutsideWindowStateFails() {
        let v = verdict(samples(rss: { 400 + 0.5 * $0 }))
        XCTAssertEqual(v.checks[0].outcome, .fail)
        XCTAssertEqual(v.outcome, .fail)
        // The allowance is 5 % of the middle third once that is above 32 MB: 2 000 MB may grow by 100.
        let big = verdict(samples(rss: { 2_100 + 0.5 * $0 }))
        XCTAssertEqual(big.checks[0].allowance, 0.05 * (big.checks[0].middle ?? 0), accuracy: 0.001)
        XCTAssertEqual(big.checks[0].outcome, .pass)
    }

    func testGrowingLagFailsAndBoundedSpikesDoNot() {
        // +500 records/s: 50 000 between the medians, over 10 s of input (50 000 is not "over").
        let growing = verdict(samples(rss: { _ in 500 }, lag: { Int64($0 * 600) }))
        XCTAssertEqual(growing.checks.first { $0.name == "consumer lag split" }?.outcome, .fail)
        // One spike under 60 s of input after warm-up is within bounds …
        let spike = verdict(samples(rss: { _ in 500 }, lag: { $0 == 205 ? 250_000 : 20_000 }))
        XCTAssertEqual(spike.outcome, .pass)
        // … one above it is not.
        let stall = verdict(samples(rss: { _ in 500 }, lag: { $0 == 205 ? 400_000 : 20_000 }))
        XCTAssertEqual(stall.checks.first { $0.name == "consumer lag dwm" }?.outcome, .fail)
    }

    func testFreshnessGrowthAndCeiling() {
        XCTAssertEqual(verdict(samples(rss: { _ in 500 }, freshness: { $0 / 15 })).checks.last?.outcome, .fail)   // medians 9.7 → 16.3 s
        XCTAssertEqual(verdict(samples(rss: { _ in 500 }, freshness: { $0 / 40 })).checks.last?.outcome, .pass)   // 3.6 → 6.1 s
        XCTAssertEqual(verdict(samples(rss: { _ in 500 }, freshness: { $0 == 295 ? 75 : 3 })).checks.last?.outcome, .fail)
    }

    func testTooFewSamplesAreInconclusiveAndAccountingDecides() {
        let few = Array(samples(rss: { _ in 500 }).filter { Int($0.t) % 40 == 5 })   // 2–3 per third
        let v = verdict(few)
        XCTAssertEqual(v.outcome, .inconclusive)
        let unbalanced = SoakVerdict.evaluate(samples(rss: { _ in 500 }), loadSeconds: 300, rate: 5_000, groups: ["split"],
                                              accounting: [.init(what: "split balanced", detail: "", ok: false)])
        XCTAssertEqual(unbalanced.outcome, .fail)
    }

    func testThirdsAndStatistics() {
        let (w, m, l) = SoakVerdict.thirds(samples(rss: { _ in 1 }), loadSeconds: 300)
        XCTAssertEqual([w.count, m.count, l.count], [10, 10, 10])
        XCTAssertEqual(SoakVerdict.median([5, 1, 3]), 3)
        XCTAssertEqual(SoakVerdict.percentile([1, 2, 3, 4], 0.5), 2)
        XCTAssertEqual(SoakVerdict.percentile(Array(1...100).map(Double.init), 0.99), 99)
        XCTAssertEqual(SoakVerdict.slopePerMinute([(0, 10), (60, 12), (120, 14)]) ?? 0, 2, accuracy: 1e-9)
    }

    func testAccountingFromSummaryLines() {
        let gen: [String: Any] = ["total": 1_000, "routed": 985, "invalid_id": 10, "malformed": 5]
        let summaries: [[String: Any]] = [
            ["job": "split", "consumed": 1_000, "outcomes": ["routed": 985, "filtered": 10, "dead_lettered": 5], "balanced": true],
            ["job": "dwm", "consumed": 985, "outcomes": ["applied": 960, "duplicates": 10, "late": 5, "filtered": 10], "balanced": true],
        ]
        let ok = BenchCommand.Soak.accounting(gen: gen, summaries: summaries, offline: false, exitStatus: 0,
                                              finalLag: ["split": 0, "dwm": 28], partitions: ["split": 4, "dwm": 28], interrupted: false)
        XCTAssertTrue(ok.allSatisfy(\.ok), "\(ok.filter { !$0.ok }.map(\.what))")
        let short = BenchCommand.Soak.accounting(gen: ["total": 1_001, "routed": 986, "invalid_id": 10, "malformed": 5], summaries: summaries,
                                                 offline: false, exitStatus: 0, finalLag: ["split": 0, "dwm": 29],
                                                 partitions: ["split": 4, "dwm": 28], interrupted: false)
        XCTAssertEqual(short.filter { !$0.ok }.map(\.what),
                       ["produced = consumed by split", "split outcomes = generator's counts", "drained (lag after the run, ≤ 1 marker per partition)"])
    }

    /// With the offline layer: the archive reads every event, the sink every DWS row dwm published.
    func testOfflineAccounting() {
        let gen: [String: Any] = ["total": 100, "routed": 98, "invalid_id": 1, "malformed": 1]
        var summaries: [[String: Any]] = [
            ["job": "split", "consumed": 100, "outcomes": ["routed": 98, "filtered": 1, "dead_lettered": 1], "balanced": true],
            ["job": "dwm", "consumed": 98, "outcomes": ["applied": 98], "written": ["dws_rows": 40], "aborted_transactions": 0, "balanced": true],
            ["job": "archive", "consumed": 100, "outcomes": ["archived": 100], "balanced": true],
            ["job": "sink", "consumed": 40, "outcomes": ["stored": 40, "markers": 0], "balanced": true],
        ]
        func failing() -> [String] {
            BenchCommand.Soak.accounting(gen: gen, summaries: summaries, offline: true, exitStatus: 0,
                                         finalLag: ["split": 0, "dwm": 0, "archive": 0, "sink": 0],
                                         partitions: ["split": 4, "dwm": 28, "archive": 4, "sink": 4], interrupted: false)
                .filter { !$0.ok }.map(\.what)
        }
        XCTAssertEqual(failing(), [])
        // The sink stopped before dwm's last rows.
        summaries[3] = ["job": "sink", "consumed": 33, "outcomes": ["stored": 33, "markers": 0], "balanced": true]
        XCTAssertEqual(failing(), ["DWS rows published = consumed by sink"])
        // Aborted transactions' rows are visible on Tansu: reading more is not a loss.
        summaries[1]["aborted_transactions"] = 2
        summaries[3] = ["job": "sink", "consumed": 45, "outcomes": ["stored": 45, "markers": 0], "balanced": true]
        XCTAssertEqual(failing(), [])
    }

    func testSVGScale() {
        XCTAssertEqual(SoakReport.niceScale(470).top, 500)
        XCTAssertEqual(SoakReport.niceScale(0.8).step, 0.2, accuracy: 1e-12)
        XCTAssertEqual(SoakReport.axisLabel(250_000), "250k")
        XCTAssertEqual(SoakReport.esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;")
    }
}
