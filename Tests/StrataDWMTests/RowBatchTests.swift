import StrataDWM
import StrataTestSupport
import XCTest

/// The dwm job's columnar batch holds exactly the rows the engine's `Emission` holds: two engines
/// fed the same events, one collected into a reused `RowBatch`, the other materialized.
final class RowBatchTests: XCTestCase {
    func testAReusedBatchHoldsEveryCollectsRowsAsTheEmissionDoes() {
        let manyActions = (0..<11).map { "act\($0)" }      // more than the 8 counts a cell holds inline
        func engine() -> WindowEngine {
            WindowEngine(config: WindowConfig(actions: manyActions, playAction: "act9", allowedLatenessMs: 600_000),
                         isKnownContent: isKnownContent)
        }
        let viaBatch = engine(), viaEmission = engine()
        let batch = RowBatch(actionCount: manyActions.count)
        let users = ["u1", "u000000001", String(repeating: "u", count: 17), String(repeating: "w", count: 200), "ü-ñ-用户", "a\\\"quote"]
        var rng = SeededRandom(seed: 21)
        var collects = 0, rows = 0
        func compare(_ e: Emission, _ what: String) {
            XCTAssertEqual(batch.dwmCount, e.dwm.count, what)
            XCTAssertEqual(batch.dwsCount, e.dws.count, what)
            XCTAssertEqual(batch.emission, e, what)
            let contentIds = Set(e.dwm.map(\.contentId) + e.dws.map(\.contentId)), userIds = Set(e.dwm.map(\.userId))
            XCTAssertEqual(batch.contents.count, contentIds.count, "\(what): each distinct content id numbered once")
            XCTAssertEqual(batch.users.count, userIds.count, "\(what): each distinct user id numbered once")
            for i in 0..<batch.dwmCount {
                let r = batch.dwmRow(i)
                XCTAssertTrue(r.contentId.elementsEqual(batch.contents.bytes(r.content)), what)
                XCTAssertTrue(r.userId.elementsEqual(batch.users.bytes(r.user)), what)
            }
            rows += e.dwm.count + e.dws.count
        }
        for k in 0..<4_000 {
            let bytes = event("e\(k)-\(rng.below(3))", ts: m0 + Int64(rng.below(240)) * 1_000, manyActions[rng.below(manyActions.count)],
                              content: "c0000000\(rng.below(4))", user: users[rng.below(users.count)],
                              strategy: rng.below(3) == 0 ? nil : "s\(rng.below(5))", durationMs: Int64(rng.below(1_000)))
            XCTAssertEqual(viaBatch.apply(bytes, offset: Int64(k)), viaEmission.apply(bytes, offset: Int64(k)))
            if rng.below(150) == 0 {
                var sink = batch
                sink.removeAll()
                let now = m0 + Int64(k) * 60
                viaBatch.collect(nowMs: now, into: &sink)
                compare(viaEmission.collect(nowMs: now), "collect \(collects)")
                collects += 1
            }
        }
        var sink = batch
        sink.removeAll()
        viaBatch.flushAll(nowMs: 0, into: &sink)
        compare(viaEmission.flushAll(nowMs: 0), "flush")
        XCTAssertGreaterThan(collects, 10)
        XCTAssertGreaterThan(rows, 1_000)

        // Materialized rows appended to an emptied batch read back the same.
        let again = viaEmission.flushAll(nowMs: 0)
        batch.removeAll()
        XCTAssertTrue(batch.isEmpty)
        var e = Emission()
        e.dwm = [DWMRow(minute: m0, contentId: "c00000001", userId: "ü-ñ-用户", counts: Array(repeating: 2, count: 11), playMs: 5,
                        strategy: nil, isFinal: true, rev: 3)]
        e.dws = [DWSRow(minute: m0, contentId: "c00000001", counts: Array(0..<11), playMs: 5, uv: 1, isFinal: true, rev: 3)]
        batch.append(e)
        XCTAssertEqual(batch.emission, e)
        XCTAssertTrue(again.isEmpty, "nothing new after the flush")
    }
}
