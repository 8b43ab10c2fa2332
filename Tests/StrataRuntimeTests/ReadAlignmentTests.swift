import XCTest
@testable import StrataRuntime

/// Event-time alignment of reading: which partitions are held back, and when they are released.
final class ReadAlignmentTests: XCTestCase {
    let t0: Int64 = 1_795_219_200_000

    func testPartitionsFarAheadAreHeldUntilTheSlowestCatchesUp() {
        var a = ReadAlignment(topic: "ods.raw", aheadMs: 60_000)
        let now = ContinuousClock.now
        a.reset([0, 1, 2], now: now)
        var maxTs: [Int32: Int64] = [0: t0 + 200_000, 1: t0 + 50_000, 2: .min]
        var r = a.decide(maxTs: { maxTs[$0]! }, now: now)
        XCTAssertEqual(r.hold, [0, 1], "partition 2 has input but no progress yet: the others wait for it")
        maxTs[2] = t0 + 100_000
        r = a.decide(maxTs: { maxTs[$0]! }, now: now)
        XCTAssertEqual(r.release, [1], "partition 1 is not ahead of partition 2")
        XCTAssertEqual(a.held, [0], "100 s ahead of partition 2")
        r = a.decide(maxTs: { maxTs[$0]! }, now: now)
        XCTAssertEqual(r.hold + r.release, [], "stable: partition 0 is 150 s ahead of partition 1")
        maxTs[1] = t0 + 150_000
        maxTs[2] = t0 + 160_000
        r = a.decide(maxTs: { maxTs[$0]! }, now: now)
        XCTAssertEqual(r.release, [0], "the slowest caught up to within 60 s")
        maxTs[0] = t0 + 400_000
        r = a.decide(maxTs: { maxTs[$0]! }, now: now)
        XCTAssertEqual(r.hold, [0])
        XCTAssertTrue(a.hasHeld)
        r = a.decide(maxTs: { maxTs[$0]! }, idle: { $0 == 1 }, now: now)
        XCTAssertEqual(r.hold + r.release, [], "partition 2 still has input and is behind")
        a.noteEnd(partition: 2)
        r = a.decide(maxTs: { maxTs[$0]! }, idle: { $0 == 1 }, now: now)
        XCTAssertEqual(r.release, [0], "every slower partition is at its end or idle: nothing holds partition 0")
        XCTAssertFalse(a.hasHeld)
        a.noteRecords(partition: 2, now: now)
        r = a.decide(maxTs: { maxTs[$0]! }, now: now)
        XCTAssertEqual(r.hold, [0], "a record ends the end-of-partition state")
    }

    /// A slower partition that delivers nothing (at its end without an end-of-partition event)
    /// stops holding the others after a quiet spell, so alignment never stalls reading.
    func testAQuietSlowPartitionStopsHoldingTheOthers() {
        var a = ReadAlignment(topic: "ods.raw", aheadMs: 60_000)
        let now = ContinuousClock.now
        a.reset([0, 1], now: now)
        let maxTs: [Int32: Int64] = [0: t0, 1: t0 + 300_000]
        XCTAssertEqual(a.decide(maxTs: { maxTs[$0]! }, now: now).hold, [1], "partition 0 is 300 s behind")
        XCTAssertEqual(a.decide(maxTs: { maxTs[$0]! }, now: now + .seconds(1)).release, [])
        XCTAssertEqual(a.decide(maxTs: { maxTs[$0]! }, now: now + .seconds(3)).release, [1], "partition 0 quiet for 3 s")
        XCTAssertEqual(a.decide(maxTs: { maxTs[$0]! }, now: now + .seconds(3)).hold, [],
                       "a released partition's quiet clock restarts; partition 0 still counts as quiet")
    }

    /// A quiet partition the consumer knows has unread records, or has not fetched yet (a broker
    /// may serve one partition's backlog before the next one's), still holds the others, for a
    /// while: a partition kept waiting for ever would stall them.
    func testAQuietPartitionWithUnreadRecordsHoldsTheOthersForAWhile() {
        var a = ReadAlignment(topic: "ods.raw", aheadMs: 60_000, quietAfter: .seconds(2), pendingWait: .seconds(10))
        let now = ContinuousClock.now
        a.reset([0, 1, 2], now: now)
        let maxTs: [Int32: Int64] = [0: t0 + 300_000, 1: .min, 2: t0]
        let unread: [Int32: Bool?] = [0: false, 1: nil, 2: true]
        var r = a.decide(maxTs: { maxTs[$0]! }, unread: { unread[$0]! }, now: now + .seconds(5))
        XCTAssertEqual(r.hold, [0, 2], "partition 1 has not delivered and its backlog is unknown: it holds both")
        let empty1: (Int32) -> Bool? = { $0 == 1 ? false : unread[$0]! }
        r = a.decide(maxTs: { maxTs[$0]! }, unread: empty1, now: now + .seconds(6))
        XCTAssertEqual(r.release, [0, 2], "partition 1 turns out to have nothing to read: nothing left holds")
        r = a.decide(maxTs: { maxTs[$0]! }, unread: empty1, now: now + .seconds(7))
        XCTAssertEqual(r.hold, [0], "partition 2, read again, holds partition 0 (300 s ahead)")
        r = a.decide(maxTs: { maxTs[$0]! }, unread: empty1, now: now + .seconds(15))
        XCTAssertEqual(r.hold + r.release, [], "partition 2 is quiet but has unread records")
        r = a.decide(maxTs: { maxTs[$0]! }, unread: empty1, now: now + .seconds(17))
        XCTAssertEqual(r.release, [0], "quiet for longer than the pending wait: it no longer holds partition 0")
    }

    /// What the job's wall clock must not declare idle: a held partition, and one the broker has
    /// not served though it has records (unread, or nothing read since the assignment), until it
    /// reaches its end or stays starved past `starvedWait`.
    func testHeldAndStarvedPartitionsHaveInputUntilTheirEndOrTheStarvedWait() {
        var a = ReadAlignment(topic: "ods.raw", aheadMs: 60_000, starvedWait: .seconds(300))
        let now = ContinuousClock.now
        a.reset([0, 1, 2, 3], now: now)
        var unread: [Int32: Bool?] = [0: false, 1: true, 2: nil, 3: false]
        XCTAssertEqual(a.withInput(unread: { unread[$0]! }, now: now + .seconds(60)), [1, 2],
                       "1 has unread records, 2 has delivered nothing yet; 0 and 3 have read all they know of")
        a.noteEnd(partition: 2)
        XCTAssertEqual(a.withInput(unread: { unread[$0]! }, now: now + .seconds(60)), [1], "2 is at its end")
        XCTAssertEqual(a.takeStarved(), [], "no wait has run out yet")
        XCTAssertEqual(a.withInput(unread: { unread[$0]! }, now: now + .seconds(301)), [], "1 starved past the wait")
        XCTAssertEqual(a.takeStarved(), [1], "its wait ran out: reported (the job logs and counts it)")
        XCTAssertEqual(a.withInput(unread: { unread[$0]! }, now: now + .seconds(302)), [])
        XCTAssertEqual(a.takeStarved(), [], "reported once per spell without records")
        a.noteRecords(partition: 1, now: now + .seconds(301))
        XCTAssertEqual(a.withInput(unread: { unread[$0]! }, now: now + .seconds(400)), [1], "a record restarts its clock")
        unread[1] = false
        XCTAssertEqual(a.withInput(unread: { unread[$0]! }, now: now + .seconds(400)), [], "1 has read all it knows of")
        let maxTs: [Int32: Int64] = [0: t0 + 300_000, 1: t0, 2: t0, 3: t0]
        unread[1] = true
        a.noteRecords(partition: 1, now: now + .seconds(400))
        XCTAssertEqual(a.decide(maxTs: { maxTs[$0]! }, unread: { unread[$0]! }, now: now + .seconds(401)).hold, [0])
        XCTAssertEqual(a.withInput(unread: { unread[$0]! }, now: now + .seconds(401)), [0, 1], "0 is held: ahead, not idle")
    }

    func testPartitionsNotOwnedAreIgnored() {
        var a = ReadAlignment(topic: "ods.raw", aheadMs: 1_000)
        let now = ContinuousClock.now
        a.reset([3], now: now)
        a.noteRecords(partition: 7, now: now)
        a.noteEnd(partition: 7)
        XCTAssertEqual(a.decide(maxTs: { $0 == 3 ? self.t0 : .min }, now: now).hold, [])
        XCTAssertEqual(a.held, [])
    }
}
