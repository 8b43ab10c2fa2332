import StrataCore
import StrataDWM
import StrataGen
import StrataTestSupport
import XCTest

/// An engine reading ods.raw itself (`WindowConfig.rawInput`, the dwm job's `--read-raw`): a
/// backlog keyed by content id, read in any order across its partitions, killed and replayed at
/// any commit, must count exactly what its partitions' own order says — the rule the split's
/// stamps carry when the micro-queues are in between.
final class RawInputTests: XCTestCase {
    let partitions = 4
    let outOfOrdernessMs: Int64 = 5_000
    let latenessMs: Int64 = 30_000

    func rawEngine(dwsFinalsFirst: Bool = true, assigned: Int? = nil) -> WindowEngine {
        var config = WindowConfig(actions: actions, outOfOrdernessMs: outOfOrdernessMs, allowedLatenessMs: latenessMs)
        config.dwsFinalsFirst = dwsFinalsFirst
        config.rawInput = true
        let e = WindowEngine(config: config, isKnownContent: isKnownContent)
        // As the job does: the assigned partitions hold the watermark until each has delivered.
        e.expectSources((0..<(assigned ?? partitions)).map { Source(topic: 0, partition: $0) }, nowMs: 0)
        return e
    }

    /// ods.raw as producers keyed by content id write it: one queue per partition, in offset order.
    func rawPartitions(count: Int, seed: UInt64) -> [[Record]] {
        var w = EventWorkload()
        w.contents = 400
        w.users = 4_000
        w.eventsPerSecond = 300           // 60 000 lines ≈ 200 s of event time
        w.duplicateShare = 0.03
        w.outOfOrderShare = 0.1
        w.lateShare = 0.004
        w.lateByMs = 60_000
        w.malformedShare = 0.01
        w.seed = seed
        var gen = EventGenerator(w)
        var rng = SeededRandom(seed: seed &+ 1)
        var queues = [[Record]](repeating: [], count: partitions)
        var line: [UInt8] = []
        for _ in 0..<count {
            line.removeAll(keepingCapacity: true)
            let kind = gen.next(into: &line)
            let parsed = kind == .malformed ? nil : ParsedEvent(line)
            let p = parsed.map { Int($0.contentId.utf8.reduce(UInt32(7)) { $0 &* 31 &+ UInt32($1) } % UInt32(partitions)) } ?? rng.below(partitions)
            let source = Source(topic: 0, partition: p)
            queues[p].append(Record(bytes: line, kind: kind, source: source, offset: Int64(queues[p].count), parsed: parsed))
        }
        return queues
    }

    /// The independent computation: per partition in offset order, the highest ts of every line
    /// that parses; an event is late when that progress − out-of-orderness has passed its
    /// minute's end + the allowed lateness. What is left is counted by `referenceRows`.
    func oracle(_ queues: [[Record]]) -> (counted: [ParsedEvent], late: Int) {
        let scanner = EventScanner()
        var counted: [ParsedEvent] = [], late = 0
        for q in queues {
            var progress = Int64.min
            for r in q {
                guard let ts = r.bytes.withUnsafeBytes({ try? scanner.scan($0).ts }) else { continue }
                progress = max(progress, ts)
                guard let e = r.parsed, actions.contains(e.action) else { continue }
                let known = Array(e.contentId.utf8).withUnsafeBytes { isKnownContent($0) }
                guard known else { continue }
                let end = e.ts - e.ts % 60_000 + 60_000
                if progress - outOfOrdernessMs > end + latenessMs { late += 1 } else { counted.append(e) }
            }
        }
        return (counted, late)
    }

    /// Reading orders a catch-up sees: a fair interleaving, and one partition read far ahead of
    /// the others (librdkafka prefetching it), then the rest in blocks.
    func orders(_ queues: [[Record]], seed: UInt64) -> [(String, [Record])] {
        var rng = SeededRandom(seed: seed)
        let fair = randomMerge(queues, rng: &rng)
        var ahead = queues[2]
        var heads = [0, 0, 0, 0]
        while heads.enumerated().contains(where: { $0.offset != 2 && $0.element < queues[$0.offset].count }) {
            for p in [3, 0, 1] {
                let n = min(2_000 + rng.below(4_000), queues[p].count - heads[p])
                ahead += queues[p][heads[p]..<heads[p] + n]
                heads[p] += n
            }
        }
        return [("fair", fair), ("one partition ahead", ahead)]
    }

    func testABacklogReadInAnyOrderCountsWhatItsPartitionsOwnOrderSays() {
        let queues = rawPartitions(count: 60_000, seed: 31)
        let want = oracle(queues)
        XCTAssertGreaterThan(want.late, 50, "the workload has late events")
        let reference = referenceRows(want.counted)
        for (name, stream) in orders(queues, seed: 7) {
            let e = rawEngine()
            var subscriber = Subscriber()
            for (k, r) in stream.enumerated() {
                e.apply(r.bytes, source: r.source, offset: r.offset)
                if k % 1_500 == 0 { subscriber.receive(e.collect(nowMs: 0)) }
            }
            subscriber.receive(e.flushAll(nowMs: 0))
            XCTAssertEqual(Array(subscriber.violations.prefix(5)), [], name)
            XCTAssertEqual(e.accounting.late, want.late, "late events (\(name))")
            XCTAssertTrue(e.accounting.isBalanced, "\(e.accounting)")
            XCTAssertEqual(e.accounting.consumed, queues.reduce(0) { $0 + $1.count })
            assertRowsEqual(subscriber, reference)
        }
    }

    /// A replay restarts each partition's progress at its replay offset (the checkpoint carries the
    /// progress before it): with a partition read far ahead, its progress at the commit would
    /// have judged the replayed events of the retained minutes late.
    func testCrashAndReplayPublishTheSameRowsOnce() {
        let queues = rawPartitions(count: 60_000, seed: 43)
        let reference = referenceRows(oracle(queues).counted)
        let stream = orders(queues, seed: 11)[1].1
        var rng = SeededRandom(seed: 23)
        var collectAfter = Set<Int>()
        var i = 0
        while i < stream.count { collectAfter.insert(i); i += 1 + rng.below(1_500) }

        var sawRewoundProgress = false
        for trial in 0..<6 {
            let crashAt = 3_000 + rng.below(stream.count - 6_000)
            var subscriber = Subscriber()
            subscriber.strictlyIncreasing = false
            let doomed = rawEngine()
            var checkpoints: [Source: SourceCheckpoint] = [:]
            var committed: [Source: Int64] = [:], positions: [Source: Int64] = [:], maxAtCommit: [Source: Int64] = [:]
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
                    maxAtCommit = [:]
                    for r in stream[0...k] { maxAtCommit[r.source] = max(maxAtCommit[r.source] ?? .min, r.parsed?.ts ?? .min) }
                }
            }
            if checkpoints.contains(where: { $0.value.maxTs < (maxAtCommit[$0.key] ?? .min) }) { sawRewoundProgress = true }

            let restored = rawEngine()
            restored.beginRestore(checkpoints: checkpoints.mapValues { SourceCheckpoint(encoded: $0.encoded)! }, committedOffsets: committed)
            // One partition after the other: another order than the original.
            for p in (0..<partitions).reversed() {
                let s = Source(topic: 0, partition: p)
                guard let from = checkpoints[s]?.replayOffset else { continue }
                for r in queues[p] where r.offset >= from && r.offset < committed[s]! {
                    XCTAssertEqual(restored.apply(r.bytes, source: r.source, offset: r.offset), .replayed)
                }
            }
            restored.endRestore()
            XCTAssertTrue(restored.restoreAccounting.isBalanced, "\(restored.restoreAccounting)")
            subscriber.receive(restored.collect(nowMs: 0))
            for k in (lastCommit + 1)..<stream.count {
                let r = stream[k]
                XCTAssertNotEqual(restored.apply(r.bytes, source: r.source, offset: r.offset), .replayed)
                if collectAfter.contains(k) { subscriber.receive(restored.collect(nowMs: 0)) }
            }
            subscriber.receive(restored.flushAll(nowMs: 0))
            XCTAssertEqual(Array(subscriber.violations.prefix(5)), [], "trial \(trial), crash at \(crashAt)")
            XCTAssertEqual(subscriber.republished, 0, "trial \(trial), crash at \(crashAt)")
            assertRowsEqual(subscriber, reference)
        }
        XCTAssertTrue(sawRewoundProgress, "some checkpoint restarted a partition's progress below its progress at the commit")
    }

    /// A partition nobody has committed yet (its first owner left before its first commit) comes to
    /// an instance whose other partitions' checkpoints are minutes ahead of it: read from its
    /// beginning, its events count as its own order says, not as late against the others.
    func testAPartitionNobodyCommittedCountsFullyAfterTheOthersMovedOn() {
        let queues = rawPartitions(count: 60_000, seed: 47)
        let want = oracle(queues)
        let wantLateInP0 = oracle([queues[0]]).late
        var rng = SeededRandom(seed: 29)
        var subscriber = Subscriber()
        subscriber.strictlyIncreasing = false
        // Partitions 1–3 read to their end and committed; partition 0 never read.
        let first = rawEngine(assigned: 0)
        var committed: [Source: Int64] = [:]
        for (k, r) in randomMerge(Array(queues[1...]), rng: &rng).enumerated() {
            first.apply(r.bytes, source: r.source, offset: r.offset)
            committed[r.source] = r.offset + 1
            if k % 1_500 == 0 { subscriber.receive(first.collect(nowMs: 0)) }
        }
        subscriber.receive(first.collect(nowMs: 0))
        let checkpoints = first.replayPoints()
        XCTAssertGreaterThan(first.watermark, queues[0].compactMap { $0.parsed?.ts }.min()! + 60_000 + latenessMs,
                             "the others' checkpoints are past partition 0's first minutes")

        let restored = rawEngine()
        let p0 = Source(topic: 0, partition: 0)
        restored.beginRestore(checkpoints: checkpoints, committedOffsets: committed, unstarted: [p0])
        for p in 1..<partitions {
            let s = Source(topic: 0, partition: p)
            for r in queues[p] where r.offset >= checkpoints[s]!.replayOffset && r.offset < committed[s]! {
                restored.apply(r.bytes, source: r.source, offset: r.offset)
            }
        }
        restored.endRestore()
        for (k, r) in queues[0].enumerated() {
            XCTAssertNotEqual(restored.apply(r.bytes, source: r.source, offset: r.offset), .replayed)
            if k % 1_500 == 0 { subscriber.receive(restored.collect(nowMs: 0)) }
        }
        subscriber.receive(restored.flushAll(nowMs: 0))
        XCTAssertEqual(restored.accounting.late, wantLateInP0, "partition 0's late events, by its own order")
        XCTAssertEqual(first.accounting.late + restored.accounting.late, want.late)
        XCTAssertEqual(Array(subscriber.violations.prefix(5)), [])
        XCTAssertEqual(subscriber.republished, 0)
        assertRowsEqual(subscriber, referenceRows(want.counted))
    }

    /// The engine may resume below a source's checkpoint (a partition nobody committed, or
    /// checkpoints of several instances). A live record of that source whose minute was past its
    /// lateness at the checkpoint (its partition had been declared idle while the other went on:
    /// the wall-clock exception) is late, as the engine that wrote the checkpoint would have said:
    /// counted into a window made anew, it would publish a row under a rev already used.
    func testALiveRecordIsJudgedAgainstItsOwnCheckpointWhenTheEngineResumesLower() {
        let p0 = Source(topic: 0, partition: 0), p1 = Source(topic: 0, partition: 1)
        let first = rawEngine(assigned: 2)
        var next: [Source: Int64] = [p0: 0, p1: 0]
        func feed(_ e: WindowEngine, _ s: Source, _ line: [UInt8]) -> ApplyOutcome {
            defer { next[s]! += 1 }
            return e.apply(line, source: s, offset: next[s]!)
        }
        var lines: [Source: [[UInt8]]] = [p0: [], p1: []]
        func produce(_ s: Source, _ id: String, ts: Int64, content: String) {
            let line = event(id, ts: ts, "click", content: content)
            lines[s]!.append(line)
            XCTAssertEqual(feed(first, s, line), .applied, id)
        }
        produce(p0, "a0", ts: m0 + 10_000, content: "c00000001")
        produce(p1, "b0", ts: m0 + 11_000, content: "c00000002")
        _ = first.collect(nowMs: 0)
        // Partition 0 goes quiet; partition 1 runs ten minutes on.
        for k in 1...20 { produce(p1, "b\(k)", ts: m0 + Int64(k) * 30_000, content: "c00000002") }
        _ = first.collect(nowMs: 100_000)
        _ = first.collect(nowMs: 100_001)
        XCTAssertGreaterThan(first.watermark, m0 + 60_000 + latenessMs, "minute m0 is past its lateness")
        let checkpoints = first.replayPoints()
        let committed = next
        let straggler = event("a1", ts: m0 + 20_000, "click", content: "c00000001")

        // A third partition nobody has committed: the restored engine resumes below every window.
        let restored = rawEngine(assigned: 3)
        restored.beginRestore(checkpoints: checkpoints, committedOffsets: committed, unstarted: [Source(topic: 0, partition: 2)])
        for s in [p0, p1] {
            for (o, line) in lines[s]!.enumerated() where Int64(o) >= checkpoints[s]!.replayOffset {
                XCTAssertEqual(restored.apply(line, source: s, offset: Int64(o)), .replayed)
            }
        }
        restored.endRestore()
        XCTAssertEqual(restored.apply(straggler, source: p0, offset: committed[p0]!), .late, "as the checkpoint's engine judges it")
        XCTAssertEqual(first.apply(straggler, source: p0, offset: committed[p0]!), .late)
    }

    /// Records the job does not count (filtered by the split's rules, dead-lettered) still move
    /// their partition's progress, as they move the split's stamp; a line that does not parse does not.
    func testRecordsNotCountedStillMoveTheirPartitionsProgress() {
        let e = rawEngine(assigned: 2)
        let s = Source(topic: 0, partition: 0)
        XCTAssertEqual(e.apply(event("a", ts: m0 + 1_000, "expose"), source: s, offset: 0), .applied)
        XCTAssertEqual(e.skip(source: s, offset: 1, ts: nil, reason: "malformed"), .filtered("malformed"))
        XCTAssertEqual(e.apply(event("b", ts: m0 + 2_000, "click"), source: s, offset: 2), .applied, "an unparsed line moves nothing")
        XCTAssertEqual(e.skip(source: s, offset: 3, ts: m0 + 240_000, reason: "invalid_content_id"), .filtered("invalid_content_id"))
        XCTAssertEqual(e.apply(event("c", ts: m0 + 3_000, "like"), source: s, offset: 4), .late,
                       "4:00 − 5 s is past 1:00 + 30 s on this partition")
        XCTAssertEqual(e.apply(event("d", ts: m0 + 3_000, "like"), source: Source(topic: 0, partition: 1), offset: 0), .applied,
                       "another partition has its own progress")
        _ = e.collect(nowMs: 0)
        XCTAssertEqual(e.watermark, m0 + 3_000 - outOfOrdernessMs, "the watermark is the slowest partition's")
    }
}
