import XCTest
@testable import StrataSplit
import StrataCore

/// The split's per-partition event-time progress: stamps, idleness and reading alignment.
final class RawProgressTests: XCTestCase {
    let t0: Int64 = 1_795_219_200_000

    func testStampIsTheHighestTsSoFarAndIdlenessIsAnnouncedOnce() {
        var p = RawProgress(rawPartitionCount: 2)
        let now = ContinuousClock.now
        p.reset(to: [0: .min, 1: t0], now: now)
        XCTAssertEqual(p.note(partition: 0, ts: t0 + 5, now: now), t0 + 5)
        XCTAssertEqual(p.note(partition: 0, ts: t0 + 1, now: now), t0 + 5, "an older event keeps the partition's max")
        XCTAssertEqual(p.note(partition: 0, ts: nil, now: now), t0 + 5, "a record without a usable ts changes nothing")
        XCTAssertEqual(p.note(partition: 1, ts: t0 - 10, now: now), t0, "the checkpointed progress carries over")
        p.markerSent()
        XCTAssertFalse(p.updateIdle(now: now + .seconds(29), timeout: .seconds(30)))
        XCTAssertTrue(p.updateIdle(now: now + .seconds(31), timeout: .seconds(30)))
        XCTAssertFalse(p.updateIdle(now: now + .seconds(32), timeout: .seconds(30)), "announced once")
        XCTAssertEqual(p.marker.progress.map(\.idle), [true, true])
        _ = p.note(partition: 0, ts: t0 + 6, now: now + .seconds(33))
        XCTAssertEqual(p.marker.progress.map(\.idle), [false, true], "a record ends idleness")
    }

    func testPartitionsFarAheadArePausedUntilTheSlowestCatchesUp() {
        var p = RawProgress(rawPartitionCount: 3)
        let now = ContinuousClock.now
        p.reset(to: [0: .min, 1: .min, 2: .min], now: now)
        _ = p.note(partition: 0, ts: t0 + 200_000, now: now)
        _ = p.note(partition: 1, ts: t0 + 50_000, now: now)
        var r = p.align(aheadMs: 60_000)
        XCTAssertEqual(r.pause, [0, 1], "partition 2 has input but no progress yet: the others wait for it")
        _ = p.note(partition: 2, ts: t0 + 100_000, now: now)
        r = p.align(aheadMs: 60_000)
        XCTAssertEqual(r.resume, [1], "partition 1 is not ahead of partition 2")
        XCTAssertEqual(p.pausedPartitions, [0], "100 s ahead of partition 2")
        r = p.align(aheadMs: 60_000)
        XCTAssertEqual(r.pause + r.resume, [], "stable: partition 0 is 150 s ahead of partition 1")
        _ = p.note(partition: 1, ts: t0 + 150_000, now: now)
        _ = p.note(partition: 2, ts: t0 + 160_000, now: now)
        r = p.align(aheadMs: 60_000)
        XCTAssertEqual(r.resume, [0], "the slowest caught up to within 60 s")
        _ = p.note(partition: 0, ts: t0 + 400_000, now: now)
        r = p.align(aheadMs: 60_000)
        XCTAssertEqual(r.pause, [0])
        XCTAssertFalse(p.updateIdle(now: now + .seconds(31), timeout: .seconds(30)) && p.marker.progress[0].idle,
                       "a paused partition is ahead, not idle")
        p.noteEnd(partition: 1)
        p.noteEnd(partition: 2)
        r = p.align(aheadMs: 60_000)
        XCTAssertEqual(r.resume, [0], "every slower partition is at its end (or idle): nothing holds partition 0")
        XCTAssertFalse(p.hasPaused)
    }

    /// A slower partition that delivers nothing (at its end without an end-of-partition event)
    /// stops holding the others after a quiet spell, so alignment never stalls reading.
    func testAQuietSlowPartitionStopsHoldingTheOthers() {
        var p = RawProgress(rawPartitionCount: 2)
        let now = ContinuousClock.now
        p.reset(to: [0: t0, 1: .min], now: now)
        _ = p.note(partition: 1, ts: t0 + 300_000, now: now)
        XCTAssertEqual(p.align(aheadMs: 60_000, now: now).pause, [1], "partition 0 is 300 s behind")
        XCTAssertTrue(p.hasPaused)
        XCTAssertEqual(p.align(aheadMs: 60_000, now: now + .seconds(1)).resume, [])
        XCTAssertEqual(p.align(aheadMs: 60_000, now: now + .seconds(3)).resume, [1], "partition 0 quiet for 3 s")
    }
}
