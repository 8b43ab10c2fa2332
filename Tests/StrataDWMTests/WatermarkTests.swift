import StrataDWM
import XCTest

/// Per-source watermarks, the minimum over active sources, idle sources.
final class WatermarkTests: XCTestCase {
    let a = Source(topic: 0, partition: 0)
    let b = Source(topic: 0, partition: 1)

    func testIdleSourceStopsHoldingTheWatermarkBack() {
        let engine = makeEngine()   // idle timeout 30 s
        engine.apply(event("a1", ts: m0 + 1_000, "expose"), source: a, offset: 0)
        engine.apply(event("b1", ts: m0 + 2_000, "expose", content: "c00000002"), source: b, offset: 0)
        _ = engine.collect(nowMs: 1_000_000)
        XCTAssertEqual(engine.watermark, m0 - 4_000, "min over sources: a's 1 s − 5 s")

        for k in 1...10 {
            engine.apply(event("a\(k + 1)", ts: m0 + Int64(k) * 10_000, "expose", user: "u\(k)"), source: a, offset: Int64(k))
        }
        var rows = engine.collect(nowMs: 1_010_000)
        XCTAssertEqual(engine.watermark, m0 - 3_000, "b (quiet for 10 s) still holds it back")
        XCTAssertFalse(rows.dwm.contains { $0.isFinal })

        engine.apply(event("a12", ts: m0 + 110_000, "expose"), source: a, offset: 11)
        rows = engine.collect(nowMs: 1_031_001)
        XCTAssertEqual(engine.watermark, m0 + 105_000, "b idle for more than 30 s: only a counts")
        XCTAssertTrue(rows.dwm.contains { $0.minute == m0 && $0.isFinal && $0.userId == "u000000001" })
        XCTAssertTrue(rows.dws.contains { $0.minute == m0 && $0.contentId == "c00000002" && $0.isFinal })

        // b comes back with older events: its minute is final, so they are corrections.
        XCTAssertEqual(engine.apply(event("b2", ts: m0 + 3_000, "click", content: "c00000002"), source: b, offset: 1), .corrected)
        rows = engine.collect(nowMs: 1_032_000)
        XCTAssertEqual(engine.watermark, m0 + 105_000, "the watermark never goes back")
        XCTAssertEqual(rows.dws.filter { $0.contentId == "c00000002" }.map(\.rev), [5])
    }

    func testSourcesNeverSeenDoNotHoldItBackAndAllIdleMovesToTheFurthest() {
        let engine = makeEngine()
        XCTAssertEqual(engine.watermark, .min)
        _ = engine.collect(nowMs: 0)
        XCTAssertEqual(engine.watermark, .min, "no source seen: no watermark")
        engine.apply(event("a1", ts: m0 + 10_000, "expose"), source: a, offset: 0)
        engine.apply(event("b1", ts: m0 + 70_000, "expose", content: "c00000002"), source: b, offset: 0)
        _ = engine.collect(nowMs: 0)
        XCTAssertEqual(engine.watermark, m0 + 5_000)
        XCTAssertFalse(engine.finalsDue(nowMs: 30_000) != .none)
        XCTAssertTrue(engine.finalsDue(nowMs: 30_001) != .none)
        XCTAssertEqual(engine.previewWatermark(nowMs: 30_001), m0 + 65_000)
        let rows = engine.collect(nowMs: 30_001)
        XCTAssertEqual(engine.watermark, m0 + 65_000, "all idle: the furthest source")
        XCTAssertEqual(rows.dwm.filter(\.isFinal).map(\.minute), [m0])
    }

    func testOutOfOrdernessKeepsAWindowOpen() {
        let engine = makeEngine()
        engine.apply(event("a1", ts: m0 + 30_000, "expose"), source: a, offset: 0)
        engine.apply(event("a2", ts: m0 + 64_000, "expose"), source: a, offset: 1)
        _ = engine.collect(nowMs: 0)
        XCTAssertEqual(engine.windowStates.map(\.isFinal), [false, false], "watermark m0 + 59 s < m0's end")
        XCTAssertEqual(engine.apply(event("a3", ts: m0 + 59_000, "click"), source: a, offset: 2), .applied)
        engine.apply(event("a4", ts: m0 + 65_000, "expose"), source: a, offset: 3)
        let rows = engine.collect(nowMs: 0)
        XCTAssertEqual(rows.dwm.filter { $0.minute == m0 }.map { "\($0.rev) \($0.isFinal)" }, ["5 true"])
    }
}
