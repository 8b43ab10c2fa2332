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

    private func engine() -> WindowEngine { makeEngine(allowedLatenessMs: 30_000) }

    func testCrashAndReplayPublishTheSameRowsAsAnUninterruptedRun() {
        let stream = workloadStream()
        var rng = SeededRandom(seed: 17)
        var collectAfter = Set<Int>()
        var i = 0
        while i < stream.count { collectAfter.insert(i); i += 1 + rng.below(1_500) }

        // Uninterrupted run.
        var reference = Subscriber()
        let straight = engine()
        for (k, r) in stream.enumerated() {
            straight.apply(r.bytes, source: r.source, offset: r.offset)
            if collectAfter.contains(k) { reference.receive(straight.collect(nowMs: 0)) }
        }
        reference.receive(straight.flushAll(nowMs: 0))
        XCTAssertEqual(Array(reference.violations.prefix(5)), [])

        var sawSkipped = false
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
            for k in 0..<crashAt {
                let r = stream[k]
                doomed.apply(r.bytes, source: r.source, offset: r.offset)
                positions[r.source] = r.offset + 1
                if collectAfter.contains(k) {
                    subscriber.receive(doomed.collect(nowMs: 0))
                    checkpoints = doomed.replayPoints()
                    committed = positions
                    lastCommit = k
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
            XCTAssertLessThan(replayed, lastCommit + 1, "replay points skip state already evicted")
            XCTAssertTrue(restored.restoreAccounting.isBalanced, "\(restored.restoreAccounting)")
            if restored.restoreAccounting.late > 0 { sawSkipped = true }
            XCTAssertTrue(restored.collect(nowMs: 0).isEmpty, "restore publishes nothing (trial \(trial))")
            XCTAssertEqual(restored.watermark, checkpoints.values.first?.watermark ?? .min)

            for k in (lastCommit + 1)..<stream.count {
                let r = stream[k]
                XCTAssertNotEqual(restored.apply(r.bytes, source: r.source, offset: r.offset), .replayed)
                if collectAfter.contains(k) { subscriber.receive(restored.collect(nowMs: 0)) }
            }
            subscriber.receive(restored.flushAll(nowMs: 0))

            XCTAssertEqual(Array(subscriber.violations.prefix(5)), [], "trial \(trial), crash at \(crashAt)")
            assertRowsEqual(subscriber, (reference.dwm, reference.dws))
        }
        XCTAssertTrue(sawSkipped, "some replayed records belonged to windows evicted before the commit")
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
        XCTAssertNil(SourceCheckpoint(encoded: "dwm2:1:2:3"))
        XCTAssertNil(SourceCheckpoint(encoded: "dwm1:1:2"))
    }
}
