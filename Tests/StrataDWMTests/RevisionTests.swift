import StrataDWM
import XCTest

/// Early, final and corrected revisions; lateness and eviction; rev arithmetic.
final class RevisionTests: XCTestCase {
    func testEarlyFinalCorrectionAndLate() {
        let engine = makeEngine()   // out-of-orderness 5 s, allowed lateness 120 s
        var offset: Int64 = 0
        func feed(_ b: [UInt8]) -> ApplyOutcome { offset += 1; return engine.apply(b, offset: offset) }

        XCTAssertEqual(feed(event("e1", ts: m0 + 1_000, "expose", strategy: "s1")), .applied)
        XCTAssertEqual(feed(event("e2", ts: m0 + 2_000, "click", strategy: "s1")), .applied)
        var rows = engine.collect(nowMs: 0)
        XCTAssertEqual(rows.dwm, [DWMRow(minute: m0, contentId: "c00000001", userId: "u000000001",
                                         counts: [1, 1, 0, 0, 0, 0, 0], playMs: 0, strategy: "s1", isFinal: false, rev: 4)])
        XCTAssertEqual(rows.dws, [DWSRow(minute: m0, contentId: "c00000001", counts: [1, 1, 0, 0, 0, 0, 0], playMs: 0,
                                         uv: 1, isFinal: false, rev: 4)])
        XCTAssertTrue(engine.collect(nowMs: 0).isEmpty, "nothing changed, nothing published")

        XCTAssertEqual(feed(event("e3", ts: m0 + 30_000, "play", strategy: "s2", durationMs: 9_000)), .applied)
        XCTAssertEqual(feed(event("e3", ts: m0 + 30_000, "play", strategy: "s2", durationMs: 9_000)), .duplicate)
        rows = engine.collect(nowMs: 0)
        XCTAssertEqual(rows.dwm.map(\.rev), [6])
        XCTAssertEqual(rows.dwm.first?.playMs, 9_000)
        XCTAssertEqual(rows.dwm.first?.strategy, "s2")

        // Next minute, another user: the watermark (m0 + 66 s − 5 s) passes m0's end.
        XCTAssertEqual(feed(event("e4", ts: m0 + 66_000, "expose", user: "u000000002")), .applied)
        rows = engine.collect(nowMs: 0)
        XCTAssertEqual(engine.watermark, m0 + 61_000)
        let finalRow = rows.dwm.first { $0.minute == m0 }
        XCTAssertEqual(finalRow?.isFinal, true)
        XCTAssertEqual(finalRow?.rev, 7, "final with no new events: 2n + 1")
        XCTAssertEqual(rows.dws.first { $0.minute == m0 }.map { [$0.rev] }, [7])
        XCTAssertEqual(rows.dwm.first { $0.minute == m0 + 60_000 }.map { [$0.rev] }, [2], "early row of the open minute")
        XCTAssertEqual(rows.dwm.first { $0.minute == m0 + 60_000 }?.isFinal, false)

        // A correction within the allowed lateness: a higher odd rev, still final.
        XCTAssertEqual(feed(event("e5", ts: m0 + 50_000, "like", strategy: "s3")), .corrected)
        rows = engine.collect(nowMs: 0)
        XCTAssertEqual(rows.dwm, [DWMRow(minute: m0, contentId: "c00000001", userId: "u000000001",
                                         counts: [1, 1, 1, 1, 0, 0, 0], playMs: 9_000, strategy: "s3", isFinal: true, rev: 9)])
        XCTAssertEqual(rows.dws.map(\.rev), [9])
        XCTAssertEqual(rows.dws.first?.uv, 1)

        // A first event for a minute the watermark already passed: final from its first row.
        XCTAssertEqual(feed(event("e6", ts: m0 + 10_000, "share", content: "c00000002")), .corrected)
        rows = engine.collect(nowMs: 0)
        XCTAssertEqual(rows.dwm.map(\.rev), [3])
        XCTAssertEqual(rows.dwm.map(\.isFinal), [true])

        // Move the watermark past m0's end + lateness (m0 + 180 s): m0 is evicted, its events late.
        XCTAssertEqual(feed(event("e7", ts: m0 + 190_000, "expose")), .applied)
        rows = engine.collect(nowMs: 0)
        XCTAssertEqual(engine.watermark, m0 + 185_000)
        XCTAssertFalse(engine.windowStates.contains { $0.minute == m0 })
        XCTAssertEqual(feed(event("e8", ts: m0 + 59_000, "report")), .late)
        rows = engine.collect(nowMs: 0)
        XCTAssertTrue(rows.isEmpty, "a late event is not applied: \(rows)")
        XCTAssertEqual(engine.accounting.late, 1)
        XCTAssertTrue(engine.accounting.isBalanced)

        // Minute m0 + 60 s is final (watermark ≥ its end) and still takes corrections.
        XCTAssertEqual(feed(event("e9", ts: m0 + 61_000, "click", user: "u000000002")), .corrected)
        rows = engine.collect(nowMs: 0)
        XCTAssertEqual(rows.dwm.map(\.rev), [5])
    }

    func testEarlyRevisionsCanBeSkippedButFinalsCarryEverything() {
        let engine = makeEngine()
        engine.apply(event("a", ts: m0 + 1_000, "expose"), offset: 1)
        engine.apply(event("b", ts: m0 + 2_000, "expose", user: "u2"), offset: 2)
        XCTAssertTrue(engine.collect(nowMs: 0, earlyRevisions: false).isEmpty)
        engine.apply(event("c", ts: m0 + 70_000, "expose"), offset: 3)
        let rows = engine.collect(nowMs: 0, earlyRevisions: false)
        XCTAssertEqual(Set(rows.dwm.map { "\($0.userId) \($0.rev) \($0.isFinal)" }), ["u000000001 3 true", "u2 3 true"])
        XCTAssertEqual(rows.dws.map(\.rev), [5])
        XCTAssertEqual(rows.dws.map(\.uv), [2])
        XCTAssertEqual(engine.flushAll(nowMs: 0).dwm.map { "\($0.minute - m0) \($0.rev) \($0.isFinal)" }, ["60000 3 true"])
    }

    /// A job catching up holds the early rows of minutes long past on the wall clock until its
    /// early interval is due: the held cells stay changed, and nothing else is held back.
    func testEarlyRowsOfOldWindowsAreHeldUntilACollectTakesThem() {
        let engine = makeEngine()   // out-of-orderness 5 s
        engine.apply(event("a", ts: m0 + 1_000, "expose"), offset: 1)
        engine.apply(event("b", ts: m0 + 62_000, "click", user: "u2"), offset: 2)   // watermark m0 + 57 s
        func collect(holdingEndingBy cutoff: Int64) -> Emission {
            var batch = RowBatch(actionCount: 7)
            engine.collect(nowMs: 0, earlyRowsOfWindowsEndingAfter: cutoff, into: &batch)
            return batch.emission
        }
        XCTAssertTrue(engine.hasChangesToHold(endingAtOrBefore: m0 + 60_000))
        XCTAssertFalse(engine.hasChangesToHold(endingAtOrBefore: m0 + 59_999), "no open window ends by then")
        var rows = collect(holdingEndingBy: m0 + 60_000)
        XCTAssertTrue(engine.heldEarlyRows)
        XCTAssertTrue(engine.hasChangesToHold(endingAtOrBefore: m0 + 60_000), "held cells stay changed")
        XCTAssertEqual(rows.dwm.map { "\($0.minute - m0) \($0.userId) \($0.rev) \($0.isFinal)" }, ["60000 u2 2 false"])
        XCTAssertEqual(rows.dws.map { "\($0.minute - m0) \($0.rev)" }, ["60000 2"])

        rows = collect(holdingEndingBy: m0 + 60_000)
        XCTAssertTrue(engine.heldEarlyRows)
        XCTAssertTrue(rows.isEmpty, "the open later minute had nothing new, the held one stays held: \(rows)")

        rows = collect(holdingEndingBy: .min)
        XCTAssertFalse(engine.heldEarlyRows)
        XCTAssertFalse(engine.hasChangesToHold(endingAtOrBefore: .max), "everything changed went out")
        XCTAssertEqual(rows.dwm.map { "\($0.minute - m0) \($0.userId) \($0.rev) \($0.isFinal)" }, ["0 u000000001 2 false"])
        XCTAssertTrue(collect(holdingEndingBy: .min).isEmpty)

        // A held window's finals are not held: the watermark passing it publishes them.
        engine.apply(event("c", ts: m0 + 30_000, "like"), offset: 3)
        engine.apply(event("d", ts: m0 + 66_000, "click", user: "u3"), offset: 4)   // watermark m0 + 61 s
        rows = collect(holdingEndingBy: .max)
        XCTAssertTrue(engine.heldEarlyRows, "minute m0 + 60 s is open and changed")
        XCTAssertEqual(rows.dwm.map { "\($0.minute - m0) \($0.userId) \($0.rev) \($0.isFinal)" }, ["0 u000000001 5 true"])
        XCTAssertEqual(rows.dws.map { "\($0.minute - m0) \($0.rev) \($0.isFinal)" }, ["0 5 true"])
    }

    func testFlushAllFinalizesEveryOpenWindow() {
        let engine = makeEngine()
        for (i, t) in [1_000, 61_000, 121_000].enumerated() {
            engine.apply(event("e\(i)", ts: m0 + Int64(t), "expose"), offset: Int64(i))
        }
        let early = engine.collect(nowMs: 0)   // watermark m0 + 116 s: only m0 is final
        XCTAssertEqual(early.dwm.filter(\.isFinal).map(\.minute), [m0])
        let rows = engine.flushAll(nowMs: 0)
        XCTAssertEqual(rows.dwm.map { "\($0.minute - m0) \($0.rev) \($0.isFinal)" }, ["60000 3 true", "120000 3 true"])
        XCTAssertTrue(engine.windowStates.allSatisfy(\.isFinal))
        XCTAssertTrue(engine.flushAll(nowMs: 0).isEmpty)
    }

    /// DWS finals first: the collect that finalizes a minute publishes its DWS finals only, the
    /// next one its DWM finals (with a correction that came between), and a minute is not evicted
    /// before its DWM finals are out, even when the watermark jumps past its allowed lateness.
    func testDWSFinalsGoFirstAndDWMFinalsFollowAtTheNextCollect() {
        let engine = makeEngine(allowedLatenessMs: 10_000, dwsFinalsFirst: true)
        var offset: Int64 = 0
        func feed(_ b: [UInt8]) -> ApplyOutcome { offset += 1; return engine.apply(b, offset: offset) }
        XCTAssertEqual(feed(event("e1", ts: m0 + 1_000, "expose")), .applied)
        XCTAssertEqual(feed(event("e2", ts: m0 + 2_000, "click", user: "u000000002")), .applied)
        XCTAssertEqual(engine.collect(nowMs: 0).dwm.count, 2, "early rows as usual")
        XCTAssertFalse(engine.finalsDue(nowMs: 0) != .none)

        XCTAssertEqual(feed(event("e3", ts: m0 + 66_000, "expose", user: "u000000003")), .applied)
        XCTAssertTrue(engine.finalsDue(nowMs: 0) != .none)
        var rows = engine.collect(nowMs: 0)
        XCTAssertEqual(rows.dws.filter { $0.minute == m0 }.map { [$0.isFinal ? 1 : 0, $0.rev] }, [[1, 5]], "m0's DWS final now")
        XCTAssertEqual(rows.dwm.filter { $0.minute == m0 }, [], "m0's DWM finals wait for the next collect")
        XCTAssertEqual(rows.dwm.filter { $0.minute == m0 + 60_000 }.count, 1, "the open minute's early row is not held back")
        XCTAssertLessThan(engine.dwmFinalMark, m0 + 60_000)
        XCTAssertTrue(engine.finalsDue(nowMs: 0) != .none, "the DWM finals are owed: commit again now")

        // A correction between the two collects, and a watermark jump past m0's lateness.
        XCTAssertEqual(feed(event("e4", ts: m0 + 3_000, "like")), .corrected)
        XCTAssertEqual(feed(event("e5", ts: m0 + 200_000, "expose", user: "u000000004")), .applied)
        rows = engine.collect(nowMs: 0)
        let finals = rows.dwm.filter { $0.minute == m0 }.sorted { $0.userId < $1.userId }
        XCTAssertEqual(finals.map(\.userId), ["u000000001", "u000000002"])
        XCTAssertTrue(finals.allSatisfy(\.isFinal))
        XCTAssertEqual(finals.map(\.rev), [5, 3], "the correction is in u1's final (2 events), u2's has 1")
        XCTAssertEqual(rows.dws.filter { $0.minute == m0 }.map(\.rev), [7], "the DWS correction goes with it")
        XCTAssertEqual(rows.dws.filter { $0.minute == m0 + 60_000 }.map(\.isFinal), [true], "the next minute's DWS final")
        XCTAssertEqual(rows.dwm.filter { $0.minute == m0 + 60_000 }, [], "…and its DWM final follows")
        XCTAssertFalse(engine.windowStates.contains { $0.minute == m0 }, "m0 evicted once its DWM finals are out")
        XCTAssertTrue(engine.windowStates.contains { $0.minute == m0 + 60_000 }, "kept until its DWM finals are out")
        rows = engine.collect(nowMs: 0)
        XCTAssertEqual(rows.dwm.map(\.minute), [m0 + 60_000])
        XCTAssertEqual(rows.dwm.first?.isFinal, true)
        XCTAssertFalse(engine.windowStates.contains { $0.minute == m0 + 60_000 })
        XCTAssertFalse(engine.finalsDue(nowMs: 0) != .none)
        XCTAssertTrue(engine.collect(nowMs: 0).isEmpty)
    }

    /// A minute's DWM finals spread over collects (`dwmFinalsPerCollect`): each collect publishes
    /// about the budget, a part of the contents at a time; the next minute's early rows go out in
    /// every one of them; a correction to a part already out goes out at once, one to a part still
    /// to come with its part; every cell's final is published exactly once; `flushAll` publishes
    /// whatever is left at once.
    func testDWMFinalsSpreadOverCollectsAPartAtATime() {
        let engine = makeEngine(allowedLatenessMs: 120_000, dwsFinalsFirst: true, dwmFinalsPerCollect: 300)
        var offset: Int64 = 0
        func feed(_ b: [UInt8]) -> ApplyOutcome { offset += 1; return engine.apply(b, offset: offset) }
        func content(_ i: Int) -> String { "c" + String(100_000_000 + i).dropFirst() }
        // 2 000 cells in m0: 200 contents × 10 users.
        for i in 0..<2_000 {
            XCTAssertEqual(feed(event("a\(i)", ts: m0 + Int64(i), "expose", content: content(i % 200), user: "u\(i / 200)")), .applied)
        }
        _ = engine.collect(nowMs: 0)
        XCTAssertEqual(feed(event("n0", ts: m0 + 66_000, "expose", content: content(0))), .applied)
        var rows = engine.collect(nowMs: 0)
        XCTAssertEqual(rows.dws.filter { $0.minute == m0 && $0.isFinal }.count, 200, "m0's DWS finals first")
        XCTAssertEqual(rows.dwm.filter { $0.minute == m0 }, [])

        var finals: [String: Int] = [:]
        var collects = 0
        var corrected = false, heldBack = false
        while engine.finalsDue(nowMs: 0) != .none {
            collects += 1
            // Early rows of m0 + 1 keep coming.
            XCTAssertEqual(feed(event("n\(collects)", ts: m0 + 66_000, "click", content: content(collects))), .applied)
            if collects == 3 {
                // A correction in a content whose part is out, one in a content whose part is not.
                let out = (0..<200).first { finals["\(content($0))|u0"] != nil }!
                let waiting = (0..<200).first { finals["\(content($0))|u0"] == nil }!
                XCTAssertEqual(feed(event("late-out", ts: m0 + 5_000, "like", content: content(out), user: "u0")), .corrected)
                XCTAssertEqual(feed(event("late-wait", ts: m0 + 5_000, "like", content: content(waiting), user: "u0")), .corrected)
                rows = engine.collect(nowMs: 0)
                let got = rows.dwm.filter { $0.minute == m0 }
                XCTAssertEqual(got.first { $0.contentId == content(out) && $0.userId == "u0" }?.rev, 5, "the correction to a part out goes at once")
                heldBack = !got.contains { $0.contentId == content(waiting) && $0.userId == "u0" }
                corrected = true
                let before = finals.count
                for r in got { finals["\(r.contentId)|\(r.userId)", default: 0] += 1 }
                finals["\(content(out))|u0"]! -= 1   // its correction is a second final, by design
                XCTAssertGreaterThan(finals.count, before)
            } else {
                rows = engine.collect(nowMs: 0)
                let got = rows.dwm.filter { $0.minute == m0 }
                XCTAssertTrue(got.allSatisfy(\.isFinal))
                XCTAssertLessThanOrEqual(got.count, 300 + 2_000 / 4, "the budget and at most one part begun within it")
                for r in got { finals["\(r.contentId)|\(r.userId)", default: 0] += 1 }
            }
            XCTAssertEqual(rows.dwm.filter { $0.minute == m0 + 60_000 }.count, 1, "the open minute's early row goes with them")
            if engine.finalsDue(nowMs: 0) != .none {
                XCTAssertLessThan(engine.dwmFinalMark, m0 + 60_000, "the mark stays below m0 until all is out")
                XCTAssertEqual(engine.dwmPartialEnd, m0 + 60_000)
                XCTAssertGreaterThan(engine.dwmPartsOut, 0)
            }
            XCTAssertLessThan(collects, 50)
        }
        XCTAssertTrue(corrected)
        XCTAssertTrue(heldBack, "a correction to a part not out yet waits for its part")
        XCTAssertGreaterThanOrEqual(collects, 5, "2 000 finals at 300 a collect")
        XCTAssertEqual(finals.count, 2_000, "every cell's final")
        XCTAssertTrue(finals.values.allSatisfy { $0 == 1 }, "each once")
        XCTAssertEqual(engine.dwmPartialEnd, .min)
        XCTAssertGreaterThanOrEqual(engine.dwmFinalMark, m0 + 60_000)

        // The next minute, 1 000 cells more, turns final: DWS first, then flushAll (the end of a
        // bounded run) publishes every DWM final at once, budget or not.
        for i in 0..<1_000 {
            XCTAssertEqual(feed(event("b\(i)", ts: m0 + 70_000, "expose", content: content(i % 100), user: "v\(i / 100)")), .applied)
        }
        _ = engine.collect(nowMs: 0)
        XCTAssertEqual(feed(event("x", ts: m0 + 130_000, "expose")), .applied)
        rows = engine.collect(nowMs: 0)
        XCTAssertTrue(rows.dws.contains { $0.minute == m0 + 60_000 && $0.isFinal })
        // One part-at-a-time collect first: the minute is partly out and its cells are listed by part.
        rows = engine.collect(nowMs: 0)
        var second = rows.dwm.filter { $0.minute == m0 + 60_000 }.count
        XCTAssertGreaterThan(second, 0)
        XCTAssertEqual(engine.dwmPartialEnd, m0 + 120_000)
        let partlyOut = engine.memoryEstimate().bytes
        rows = engine.flushAll(nowMs: 0)
        second += rows.dwm.filter { $0.minute == m0 + 60_000 }.count
        XCTAssertEqual(second, 1_000 + collects + 1)
        XCTAssertFalse(engine.finalsDue(nowMs: 0) != .none)
        XCTAssertLessThanOrEqual(engine.memoryEstimate().bytes, partlyOut - WindowEngine.finalParts * 16 * 4,
                                 "the part lists are freed when the rest goes out at once")
    }
}
