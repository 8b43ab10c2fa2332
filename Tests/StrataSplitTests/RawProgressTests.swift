import XCTest
@testable import StrataSplit
import StrataCore

/// The split's per-partition event-time progress: stamps and idleness.
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

    func testAPartitionHeldByAlignmentIsNotDeclaredIdleAndItsClockRestartsOnRelease() {
        var p = RawProgress(rawPartitionCount: 2)
        let now = ContinuousClock.now
        p.reset(to: [0: t0, 1: t0], now: now)
        XCTAssertTrue(p.updateIdle(now: now + .seconds(31), timeout: .seconds(30), hasInput: [1]))
        XCTAssertEqual(p.marker.progress.map(\.idle), [true, false], "a held partition is ahead, not idle")
        p.restartIdleClocks([1], now: now + .seconds(40))
        XCTAssertFalse(p.updateIdle(now: now + .seconds(60), timeout: .seconds(30)), "released 20 s ago")
        XCTAssertTrue(p.updateIdle(now: now + .seconds(71), timeout: .seconds(30)))
        XCTAssertTrue(p.isIdle(1))
    }
}
