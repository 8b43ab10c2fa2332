import StrataTestSupport
import StrataCore
import StrataDWM
import StrataGen
import XCTest

/// Crash at random points, restore by replay, continue: same rows as an uninterrupted run.
final class ReplayTests: XCTestCase {
    private func workloadStream() -> [Record] {
        var w = EventWorkload()
        w.contents = 500
        w.users = 5_000
        w.eventsPerSecond = 400           // 80 000 lines ≈ 200 s of event time
        w.duplicateShare = 0.03
        w.outOfOrderShare = 0.1
        w.lateShare = 0.003
        w.lateByMs = 60_000
        w.seed = 99
        return generatedStream(w, count: 80_000, seed: 5)
    }

    func testCrashAndReplayPublishTheSameRowsAsAnUninterruptedRun() {
        assertCrashAndReplayPublishTheSameRows(dwsFinalsFirst: false)
    }

    /// DWS finals first: a crash between a minute's DWS finals and its DWM finals (the next
    /// commit) must publish those DWM finals after the restore, once.
    func testCrashAndReplayWithDWSFinalsFirstPublishTheSameRowsOnce() {
        assertCrashAndReplayPublishTheSameRows(dwsFinalsFirst: true)
    }

    /// A minute's DWM finals spread over several commits: a crash between two of them must publish
    /// the rest after the restore, once, and nothing of what went out before.
    func testCrashAndReplayWithDWMFinalsSpreadOverCommitsPublishTheSameRowsOnce() {
        assertCrashAndReplayPublishTheSameRows(dwsFinalsFirst: true, dwmFinalsPerCollect: 700)
    }

    private func assertCrashAndReplayPublishTheSameRows(dwsFinalsFirst: Bool, dwmFinalsPerCollect: Int = 0) {
        func engine() -> WindowEngine {
            makeEngine(allowedLatenessMs: 30_000, dwsFinalsFirst: dwsFinalsFirst, dwmFinalsPerCollect: dwmFinalsPerCollect)
        }
        let stream = workloadStream()
        var rng = SeededRandom(seed: 17)
        var collectAfter = Set<Int>()
        var i = 0
        while i < stream.count { collectAfter.insert(i); i += 1 + rng.below(1_500) }

        // Uninterrupted run.
        var reference = Subscriber()
        let straight = engine()
        var partial = 0
        for (k, r) in stream.enumerated() {
            straight.apply(r.bytes, source: r.source, offset: r.offset)
            guard collectAfter.contains(k) else { continue }
            let e = straight.collect(nowMs: 0)
            reference.receive(e)
            guard dwmFinalsPerCollect > 0 else { continue }
            // The budget, plus at most one part begun within it, plus corrections.
            XCTAssertLessThanOrEqual(e.dwm.filter(\.isFinal).count, 4 * dwmFinalsPerCollect, "about one budget of finals per collect")
            if straight.dwmPartsOut > 0 { partial += 1 }
        }
        if dwmFinalsPerCollect > 0 { XCTAssertGreaterThan(partial, 10, "commits with a minute's DWM finals partly out") }
        reference.receive(straight.flushAll(nowMs: 0))
        XCTAssertEqual(Array(reference.violations.prefix(5)), [])

        var sawSkipped = false, sawOwedFinals = false, sawPartial = false
        for trial in 0..<5 {
            let crashAt = 2_000 + rng.below(stream.count - 4_000)
            var subscriber = Subscriber()
            subscriber.strictlyIncreasing = false

            // The run that crashes: what it published up to its last commit is out there.
            let doomed = engine()
            var checkpoints: [Source: SourceCheckpoint] = [:]
            var committed: [Source: Int64] = [:]
            var positions: [Source: Int64] = [:]
            var lastCommit = -1
            var sawPartialAtCrash = false
            for k in 0..<crashAt {
                let r = stream[k]
                doomed.apply(r.bytes, source: r.source, offset: r.offset)
                positions[r.source] = r.offset + 1
                if collectAfter.contains(k) {
                    subscriber.receive(doomed.collect(nowMs: 0))
                    checkpoints = doomed.replayPoints()
                    committed = positions
                    lastCommit = k
                    if doomed.dwmPartsOut > 0 { sawPartialAtCrash = true } else { sawPartialAtCrash = false }
                }
            }
            // Records after the last commit were consumed, but their transaction never committed.
            XCTAssertEqual(Set(checkpoints.keys), Set(committed.keys), "trial \(trial)")
            XCTAssertTrue(checkpoints.allSatisfy { $0.value.replayOffset <= committed[$0.key]! })
            let encoded = checkpoints.mapValues(\.encoded)

            // Restart: replay each source from its replay point to its committed position, one
            // source after the other (a different interleaving from the original).
            let restored = engine()
            restored.beginRestore(checkpoints: encoded.mapValues { SourceCheckpoint(encoded: $0)! },
                                  committedOffsets: committed)
            var bySource: [Source: [Record]] = [:]
            for r in stream[0...lastCommit] where r.offset >= checkpoints[r.source]!.replayOffset {
                bySource[r.source, default: []].append(r)
            }
            var replayed = 0
            for source in bySource.keys.sorted(by: { ($0.partition, $0.topic) > ($1.partition, $1.topic) }) {
                for r in bySource[source]! {
                    XCTAssertEqual(restored.apply(r.bytes, source: r.source, offset: r.offset), .replayed)
                    replayed += 1
                }
            }
            restored.endRestore()
            if sawPartialAtCrash { sawPartial = true }
            XCTAssertLessThan(replayed, lastCommit + 1, "replay points skip state already evicted")
            XCTAssertTrue(restored.restoreAccounting.isBalanced, "\(restored.restoreAccounting)")
            if restored.restoreAccounting.late > 0 { sawSkipped = true }
            XCTAssertEqual(restored.watermark, checkpoints.values.first?.watermark ?? .min)
            // Nothing already published comes again; with DWS finals first, the DWM finals the
            // last commit still owed come now (and only final DWM rows).
            let first = restored.collect(nowMs: 0)
            if dwsFinalsFirst {
                XCTAssertTrue(first.dws.isEmpty && first.dwm.allSatisfy(\.isFinal), "trial \(trial)")
                if !first.dwm.isEmpty { sawOwedFinals = true }
                subscriber.receive(first)
            } else {
                XCTAssertTrue(first.isEmpty, "restore publishes nothing (trial \(trial))")
            }

            for k in (lastCommit + 1)..<stream.count {
                let r = stream[k]
                XCTAssertNotEqual(restored.apply(r.bytes, source: r.source, offset: r.offset), .replayed)
                if collectAfter.contains(k) { subscriber.receive(restored.collect(nowMs: 0)) }
            }
            subscriber.receive(restored.flushAll(nowMs: 0))

            XCTAssertEqual(Array(subscriber.violations.prefix(5)), [], "trial \(trial), crash at \(crashAt)")
            XCTAssertEqual(subscriber.republished, 0, "trial \(trial), crash at \(crashAt)")
            assertRowsEqual(subscriber, (reference.dwm, reference.dws))
        }
        XCTAssertTrue(sawSkipped, "some replayed records belonged to windows evicted before the commit")
        if dwsFinalsFirst { XCTAssertTrue(sawOwedFinals, "some crash fell between a minute's DWS finals and its DWM finals") }
        if dwmFinalsPerCollect > 0 { XCTAssertTrue(sawPartial, "some crash fell while a minute's DWM finals were partly out") }
    }

    /// Catching up, one collect can move the watermark past a minute's end and its allowed
    /// lateness at once: with DWS finals first the minute is retained for its DWM finals, and a
    /// crash before they went out must rebuild it from the replay (not judge its events late).
    func testMinutePastItsLatenessStillOwingDWMFinalsIsRebuiltByTheReplay() {
        func engine() -> WindowEngine { makeEngine(allowedLatenessMs: 10_000, dwsFinalsFirst: true) }
        let a = Source(topic: 0, partition: 0)
        let records = [event("e1", ts: m0 + 1_000, "expose"), event("e2", ts: m0 + 2_000, "click", user: "u000000002"),
                       event("e3", ts: m0 + 200_000, "expose", user: "u000000003")]
        let doomed = engine()
        for (i, r) in records.enumerated() { doomed.apply(r, source: a, offset: Int64(i)) }
        let t1 = doomed.collect(nowMs: 0)
        XCTAssertEqual(t1.dws.filter { $0.minute == m0 }.map(\.isFinal), [true])
        XCTAssertEqual(t1.dwm.filter { $0.minute == m0 }, [], "m0's DWM finals owed")
        let checkpoint = doomed.replayPoints()
        XCTAssertEqual(checkpoint[a]?.replayOffset, 0, "m0 is retained for its DWM finals")
        XCTAssertGreaterThan(checkpoint[a]!.watermark, m0 + 60_000 + 10_000, "past m0's lateness")
        XCTAssertLessThan(checkpoint[a]!.dwmFinalMark, m0 + 60_000)

        // Crash before the next commit; restart from the checkpoint.
        let restored = engine()
        restored.beginRestore(checkpoints: [a: SourceCheckpoint(encoded: checkpoint[a]!.encoded)!], committedOffsets: [a: 3])
        for (i, r) in records.enumerated() { XCTAssertEqual(restored.apply(r, source: a, offset: Int64(i)), .replayed) }
        restored.endRestore()
        XCTAssertEqual(restored.restoreAccounting.late, 0, "m0's events rebuild it")
        XCTAssertTrue(restored.finalsDue(nowMs: 0) != .none)
        let t2 = restored.collect(nowMs: 0)
        XCTAssertEqual(t2.dws, [], "the DWS finals went out before the crash")
        XCTAssertEqual(t2.dwm.map(\.userId).sorted(), ["u000000001", "u000000002"])
        XCTAssertTrue(t2.dwm.allSatisfy { $0.minute == m0 && $0.isFinal && $0.rev == 3 })
        XCTAssertFalse(restored.windowStates.contains { $0.minute == m0 }, "evicted once they are out")
        XCTAssertTrue(restored.collect(nowMs: 0).isEmpty)
    }

    func testReplayPointsFollowTheOldestRetainedWindow() {
        let engine = makeEngine(allowedLatenessMs: 0)
        let a = Source(topic: 0, partition: 0)
        engine.apply(event("x1", ts: m0 + 1_000, "expose"), source: a, offset: 10)
        engine.apply(event("x2", ts: m0 + 61_000, "expose"), source: a, offset: 11)
        _ = engine.collect(nowMs: 0)
        XCTAssertEqual(engine.replayPoints()[a]?.replayOffset, 10, "minute m0 is still open")
        engine.apply(event("x3", ts: m0 + 70_000, "expose"), source: a, offset: 12)
        _ = engine.collect(nowMs: 0)   // watermark m0 + 65 s > m0's end + 0: evicted
        XCTAssertEqual(engine.replayPoints()[a], SourceCheckpoint(replayOffset: 11, maxTs: m0 + 70_000, watermark: m0 + 65_000))
        engine.apply(event("x4", ts: m0 + 130_000, "bogus"), source: a, offset: 13)
        engine.apply(event("x5", ts: m0 + 190_000, "expose"), source: a, offset: 14)
        _ = engine.collect(nowMs: 0)
        XCTAssertEqual(engine.replayPoints()[a]?.replayOffset, 14, "only the newest window is retained")
    }

    func testCheckpointEncoding() {
        let c = SourceCheckpoint(replayOffset: 42, maxTs: m0, watermark: .min)
        XCTAssertEqual(SourceCheckpoint(encoded: c.encoded), c)
        let d = SourceCheckpoint(replayOffset: 42, maxTs: m0 + 9, watermark: m0, dwmFinalMark: m0 - 60_000, rawPartitions: 4,
                                 upstream: [SourceProgress.PartitionProgress(partition: 1, maxTs: m0 + 3, idle: true)])
        XCTAssertEqual(SourceCheckpoint(encoded: d.encoded), d)
        let e = SourceCheckpoint(replayOffset: 42, maxTs: m0 + 9, watermark: m0, dwmFinalMark: m0 - 60_001,
                                 dwmPartialEnd: m0 - 60_000, dwmPartsOut: 5, rawPartitions: 4)
        XCTAssertEqual(SourceCheckpoint(encoded: e.encoded), e)
        XCTAssertTrue(e.encoded.hasPrefix("dwm4:"))
        let v3 = SourceCheckpoint(encoded: "dwm3:1:2:3:2:4:0,5,0")
        XCTAssertEqual(v3?.dwmFinalMark, 2)
        XCTAssertEqual(v3?.dwmPartialEnd, .min, "before the parts: a minute's DWM finals went out in one commit")
        XCTAssertEqual(v3?.upstream.count, 1)
        XCTAssertNil(SourceCheckpoint(encoded: "dwm4:1:2:3:2:9:17:4:"), "more parts than there are")
        XCTAssertEqual(SourceCheckpoint(encoded: "dwm2:1:2:3:4:0,5,0")?.dwmFinalMark, 3, "before the mark: DWM finals went with DWS finals")
        XCTAssertNil(SourceCheckpoint(encoded: "dwm2:1:2:3"))
        XCTAssertNil(SourceCheckpoint(encoded: "dwm1:1:2"))
    }
}
