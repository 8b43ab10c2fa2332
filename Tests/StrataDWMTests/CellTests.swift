import StrataTestSupport
import StrataDWM
import XCTest

/// Inside a cell: dedupe, the strategy winner, escapes, accounting.
final class CellTests: XCTestCase {
    func testDedupeBeyondTheInlineHashes() {
        let engine = makeEngine()
        var offset: Int64 = 0
        for round in 0..<3 {
            for k in 0..<12 {
                offset += 1
                let outcome = engine.apply(event("id-\(k)", ts: m0 + Int64(k) * 100, k % 2 == 0 ? "play" : "expose", durationMs: 1_000),
                                           offset: offset)
                XCTAssertEqual(outcome, round == 0 ? .applied : .duplicate)
            }
        }
        let rows = engine.flushAll(nowMs: 0)
        XCTAssertEqual(rows.dwm.map(\.counts), [[6, 0, 6, 0, 0, 0, 0]])
        XCTAssertEqual(rows.dwm.map(\.playMs), [6_000])
        XCTAssertEqual(rows.dwm.map(\.rev), [25])
        XCTAssertEqual(engine.accounting.duplicates, 24)
    }

    func testStrategyWinnerDoesNotDependOnArrivalOrder() {
        let events = [
            event("b", ts: m0 + 5_000, "expose", strategy: "s-b"),
            event("ab", ts: m0 + 5_000, "click", strategy: "s-ab"),
            event("a", ts: m0 + 5_000, "like"),
            event("z", ts: m0 + 4_000, "share", strategy: "s-z"),
            event("bb", ts: m0 + 5_000, "comment", strategy: "s-bb"),
        ]
        var rng = SeededRandom(seed: 1)
        for _ in 0..<20 {
            var order = events
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, rng.below(i + 1)) }
            let engine = makeEngine()
            for (k, e) in order.enumerated() { engine.apply(e, offset: Int64(k)) }
            XCTAssertEqual(engine.flushAll(nowMs: 0).dwm.map(\.strategy), ["s-bb"], "greatest (ts, event_id)")
        }
        // The winner without a strategy gives none.
        let engine = makeEngine()
        engine.apply(event("x", ts: m0 + 1, "expose", strategy: "s1"), offset: 0)
        engine.apply(event("y", ts: m0 + 2, "expose"), offset: 1)
        XCTAssertEqual(engine.flushAll(nowMs: 0).dwm.map(\.strategy), [nil])
    }

    func testEscapedStringsAreComparedDecoded() {
        let engine = makeEngine()
        XCTAssertEqual(engine.apply(event("e1", ts: m0 + 1, "expose", strategy: "s1"), offset: 0), .applied)
        let escaped = Array(#"{"event_id":"e\u0031","ts":1795219200001,"action":"expos\u0065","content_id":"c0000000\u0031","user_id":"u000000001"}"#.utf8)
        XCTAssertEqual(engine.apply(escaped, offset: 1), .duplicate)
        let other = Array(#"{"event_id":"e\u0032","ts":1795219200002,"action":"click","content_id":"c0000000\u0031","user_id":"u00000000\u0031","strategy":"s\u0032"}"#.utf8)
        XCTAssertEqual(engine.apply(other, offset: 2), .applied)
        let rows = engine.flushAll(nowMs: 0)
        XCTAssertEqual(rows.dwm, [DWMRow(minute: m0, contentId: "c00000001", userId: "u000000001",
                                         counts: [1, 1, 0, 0, 0, 0, 0], playMs: 0, strategy: "s2", isFinal: true, rev: 5)])
    }

    func testAccountingIsBalancedForEveryOutcome() {
        var known = 0
        let engine = WindowEngine(config: WindowConfig(actions: actions), isKnownContent: { b in
            known += 1
            return isKnownContent(b)
        })
        let inputs: [[UInt8]] = [
            event("v1", ts: m0 + 1_000, "expose"),
            event("v1", ts: m0 + 1_000, "expose"),                    // duplicate
            event("u1", ts: m0 + 1_000, "expose", content: "c90000001"), // unknown content
            event("u2", ts: m0 + 1_000, "expose", content: "c90000001"),
            event("i1", ts: m0 + 1_000, "expose", content: "ad:77"),
            event("x1", ts: m0 + 1_000, "purchase"),                   // unknown action
            Array("{\"event_id\":".utf8),                              // malformed
            Array("[]".utf8),
            event("v2", ts: m0 + 200_000, "click"),
        ]
        for (k, b) in inputs.enumerated() { engine.apply(b, offset: Int64(k)) }
        _ = engine.collect(nowMs: 0)
        engine.apply(event("l1", ts: m0 + 2_000, "expose"), offset: 100)  // late
        let a = engine.accounting
        XCTAssertTrue(a.isBalanced, "\(a)")
        XCTAssertEqual(a.consumed, 10)
        XCTAssertEqual(a.applied, 2)
        XCTAssertEqual(a.duplicates, 1)
        XCTAssertEqual(a.late, 1)
        XCTAssertEqual(a.filtered, [WindowEngine.unknownContentId: 3, WindowEngine.unknownAction: 1,
                                    "malformed_json": 1, "not_an_object": 1])
        XCTAssertEqual(known, 4, "the gate is asked once for a known content, every time for unknown ones")
    }

    func testMemoryEstimateCountsCells() {
        let engine = makeEngine()
        for k in 0..<1_000 {
            engine.apply(event("e\(k)", ts: m0 + Int64(k), "expose", user: "u\(k)"), offset: Int64(k))
        }
        let m = engine.memoryEstimate()
        XCTAssertEqual(m.cells, 1_000)
        XCTAssertEqual(m.contentsPerMinute, 1)
        XCTAssertGreaterThan(m.bytesPerCell, 100)
        XCTAssertLessThan(m.bytesPerCell, 1_000)
    }
}

/// Ids longer than the inline 16 bytes, ids sharing long prefixes, ties on ts, and a topology with
/// more than 8 actions, against the reference computation.
final class LongIdTests: XCTestCase {
    func testLongIdsTiesAndManyActions() {
        let manyActions = (0..<11).map { "act\($0)" }
        let engine = WindowEngine(config: WindowConfig(actions: manyActions, playAction: "act9", allowedLatenessMs: 600_000),
                                  isKnownContent: isKnownContent)
        let prefix = String(repeating: "p", count: 16)
        let users = ["u1", "u000000001", String(repeating: "u", count: 16), String(repeating: "u", count: 16) + "x",
                     prefix + "-user-a", prefix + "-user-b", String(repeating: "w", count: 200), "ü-ñ-用户"]
        let ids = (0..<300).map { k in k % 3 == 0 ? "e\(k)" : k % 3 == 1 ? "\(prefix)\(prefix)-\(k)" : "\(prefix)\(k)" }
        var rng = SeededRandom(seed: 8)
        var sent: [[UInt8]] = []
        var parsed: [ParsedEvent] = []
        for k in 0..<3_000 {
            let bytes: [UInt8]
            if k > 10 && rng.below(10) == 0 {
                bytes = sent[rng.below(sent.count)]                    // duplicate
            } else {
                let id = ids[rng.below(ids.count)] + "-\(rng.below(4))"
                bytes = event(id, ts: m0 + Int64(rng.below(180)) * 1_000, manyActions[rng.below(manyActions.count)],
                              content: "c0000000\(rng.below(3))", user: users[rng.below(users.count)],
                              strategy: rng.below(4) == 0 ? nil : "s\(rng.below(5))", durationMs: Int64(rng.below(1_000)))
            }
            sent.append(bytes)
            parsed.append(ParsedEvent(bytes)!)
            XCTAssertNotEqual(engine.apply(bytes, offset: Int64(k)), .late)
            if rng.below(200) == 0 { _ = engine.collect(nowMs: 0) }
        }
        var subscriber = Subscriber()
        subscriber.receive(engine.flushAll(nowMs: 0))
        // Rows published before the flush were superseded (every row is republished final).
        let reference = referenceRows(parsed, actions: manyActions, playAction: "act9")
        assertRowsEqual(subscriber, reference)
        XCTAssertEqual(Set(subscriber.dwm.keys.map(\.user)), Set(users))
    }
}
