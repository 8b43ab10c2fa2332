import StrataCore
import StrataDWM
import StrataTestSupport
import XCTest

/// Sources written by the split: lateness by each record's own ods.raw partition (its stamp),
/// the watermark from every raw partition's progress (stamps and markers), idleness declared by
/// the split, and all of it surviving a checkpoint restore.
final class StampedSourceTests: XCTestCase {
    let q0 = Source(topic: 0, partition: 0)
    let q1 = Source(topic: 1, partition: 0)

    func stamp(_ p: Int32, _ maxTs: Int64) -> SourceProgress.Stamp { SourceProgress.Stamp(partition: p, maxTs: maxTs) }

    func marker(_ entries: [(Int32, Int64, Bool)], raw: Int = 2) -> SourceProgress.Marker {
        SourceProgress.Marker(rawPartitions: raw, progress: entries.map { SourceProgress.PartitionProgress(partition: $0.0, maxTs: $0.1, idle: $0.2) })
    }

    @discardableResult
    func apply(_ e: WindowEngine, _ bytes: [UInt8], _ source: Source, _ offset: Int64, _ s: SourceProgress.Stamp) -> ApplyOutcome {
        bytes.withUnsafeBytes { e.apply($0, source: source, offset: offset, stamp: s) }
    }

    func testStampAndMarkerWireFormats() throws {
        let s = stamp(3, m0 + 12_345)
        XCTAssertEqual(s.bytes.count, 12)
        XCTAssertEqual(s.bytes.withUnsafeBytes { SourceProgress.Stamp($0) }, s)
        XCTAssertNil([UInt8](repeating: 0, count: 11).withUnsafeBytes { SourceProgress.Stamp($0) })
        let m = marker([(0, m0, false), (1, .min, true)], raw: 4)
        XCTAssertEqual(m.encoded.withUnsafeBytes { SourceProgress.Marker($0) }, m)
        XCTAssertNil(Array(#"{"event_id":"e1"}"#.utf8).withUnsafeBytes { SourceProgress.Marker($0) })
        let cp = SourceCheckpoint(replayOffset: 7, maxTs: .min, watermark: m0, rawPartitions: 4, upstream: m.progress)
        XCTAssertEqual(SourceCheckpoint(encoded: cp.encoded), cp)
        XCTAssertEqual(SourceCheckpoint(encoded: "dwm1:7:100:90"), SourceCheckpoint(replayOffset: 7, maxTs: 100, watermark: 90))
    }

    /// The case that broke catch-up: raw partition 0 read far ahead of partition 1. Partition 1's
    /// events are judged by partition 1's own order, not by what the micro-queue shows.
    func testLatenessIsJudgedByTheRecordsOwnPartition() {
        let e = makeEngine()
        // Partition 0 has reached minute 10 already; its records came first.
        apply(e, event("p0-a", ts: m0 + 600_000, "expose"), q0, 0, stamp(0, m0 + 600_000))
        apply(e, event("p0-b", ts: m0 + 601_000, "click"), q0, 1, stamp(0, m0 + 601_000))
        // Partition 1 is still in minute 0: its events are on time for it.
        XCTAssertEqual(apply(e, event("p1-a", ts: m0 + 1_000, "expose", user: "u2"), q0, 2, stamp(1, m0 + 1_000)), .applied)
        // Partition 1 itself has moved to minute 4: an event of minute 0 is now late (4:00 − 5 s > 1:00 + 2:00).
        XCTAssertEqual(apply(e, event("p1-late", ts: m0 + 2_000, "like", user: "u3"), q0, 3, stamp(1, m0 + 240_000)), .late)
        // …while one within the lateness of partition 1's own progress still counts.
        XCTAssertEqual(apply(e, event("p1-ok", ts: m0 + 70_000, "like", user: "u3"), q0, 4, stamp(1, m0 + 240_000)), .applied)
        XCTAssertEqual(e.accounting.late, 1)
    }

    func testEveryRawPartitionHoldsTheWatermarkUntilHeardOfAndIdleOnesStop() {
        let e = makeEngine()
        apply(e, event("a", ts: m0 + 70_000, "expose"), q0, 0, stamp(0, m0 + 70_000))
        _ = e.collect(nowMs: 0)
        XCTAssertEqual(e.watermark, .min, "ods.raw's partition count is not known yet (no marker)")
        e.applyMarker(marker([(0, m0 + 70_000, false)]), source: q0, offset: 1)
        _ = e.collect(nowMs: 0)
        XCTAssertEqual(e.watermark, .min, "raw partition 1 not heard of: it holds the watermark")
        apply(e, event("b", ts: m0 + 20_000, "click", user: "u2"), q0, 2, stamp(1, m0 + 20_000))
        var rows = e.collect(nowMs: 0)
        XCTAssertEqual(e.watermark, m0 + 15_000, "the slower raw partition minus out-of-orderness")
        XCTAssertFalse(rows.dws.contains { $0.isFinal })
        // Wall-clock silence does not make a split-written source idle…
        rows = e.collect(nowMs: 10_000_000)
        XCTAssertEqual(e.watermark, m0 + 15_000, "the dwm job waits for a split that is away")
        // …the split's idle flag does.
        e.applyMarker(marker([(1, m0 + 20_000, true)]), source: q0, offset: 3)
        rows = e.collect(nowMs: 10_000_001)
        XCTAssertEqual(e.watermark, m0 + 65_000)
        XCTAssertEqual(rows.dwm.filter(\.isFinal).map(\.userId), ["u2"], "minute 0 is final, minute 1 is not")

        // A second source that has heard less holds the watermark where it is (it never goes back).
        e.applyMarker(marker([(0, m0 + 30_000, false), (1, m0 + 20_000, false)]), source: q1, offset: 0)
        _ = e.collect(nowMs: 10_000_002)
        XCTAssertEqual(e.watermark, m0 + 65_000)
    }

    /// An event on time for its partition whose window was evicted because that partition had
    /// been idle is late (the wall-clock exception); a stamp that went backwards is a re-delivered
    /// aborted batch, whose events were counted when first seen.
    func testEvictedWindowIdleResumeIsLateAndRegressedStampIsDuplicate() {
        let e = makeEngine()
        e.applyMarker(marker([(0, m0 + 10_000, false), (1, m0 + 10_000, false)]), source: q0, offset: 0)
        XCTAssertEqual(apply(e, event("x", ts: m0 + 10_000, "expose"), q0, 1, stamp(1, m0 + 10_000)), .applied)
        // Partition 1 goes idle; partition 0 runs to minute 5.
        e.applyMarker(marker([(0, m0 + 300_000, false), (1, m0 + 10_000, true)]), source: q0, offset: 2)
        _ = e.collect(nowMs: 0)
        XCTAssertEqual(e.watermark, m0 + 295_000, "minute 0 evicted (past 1:00 + 2:00)")
        XCTAssertEqual(apply(e, event("y", ts: m0 + 11_000, "click"), q0, 3, stamp(1, m0 + 11_000)), .late)
        XCTAssertEqual(e.accounting.lateAfterIdle, 1)
        XCTAssertEqual(apply(e, event("x", ts: m0 + 10_000, "expose"), q0, 4, stamp(1, m0 + 10_000)), .duplicate,
                       "stamp below what partition 1 already announced")
    }

    /// A restored engine holds the upstream progress and idleness of the checkpoint, not what the
    /// replayed (older) markers said.
    func testCheckpointRestoresUpstreamProgress() {
        let e = makeEngine()
        e.applyMarker(marker([(0, m0 + 10_000, false), (1, m0 + 10_000, false)]), source: q0, offset: 0)
        apply(e, event("a", ts: m0 + 12_000, "expose"), q0, 1, stamp(0, m0 + 12_000))
        e.applyMarker(marker([(0, m0 + 150_000, false), (1, m0 + 90_000, true)]), source: q0, offset: 2)
        _ = e.collect(nowMs: 0)
        let points = e.replayPoints()
        let cp = points[q0]!
        XCTAssertEqual(cp.rawPartitions, 2)
        XCTAssertEqual(cp.upstream.map(\.idle), [false, true])
        XCTAssertEqual(e.watermark, m0 + 145_000, "partition 1 idle: partition 0 alone")
        XCTAssertEqual(cp.replayOffset, 1, "minute 0 is still retained: replay from its first event")

        let r = makeEngine()
        r.beginRestore(checkpoints: [q0: SourceCheckpoint(encoded: cp.encoded)!], committedOffsets: [q0: 3])
        XCTAssertEqual(r.watermark, e.watermark, "the checkpoint's watermark before any replay")
        XCTAssertEqual(apply(r, event("a", ts: m0 + 12_000, "expose"), q0, 1, stamp(0, m0 + 12_000)), .replayed)
        r.applyMarker(marker([(0, m0 + 150_000, false), (1, m0 + 90_000, true)]), source: q0, offset: 2)
        r.endRestore()
        let rows = r.collect(nowMs: 1)
        XCTAssertEqual(r.watermark, e.watermark)
        XCTAssertTrue(rows.dws.isEmpty && rows.dwm.isEmpty, "nothing republished: \(rows.dws)")
        XCTAssertEqual(r.replayPoints()[q0]?.upstream, cp.upstream)
    }
}
