import StrataTestSupport
import Foundation
import XCTest
@testable import StrataQuery

/// The evaluator against answers computed independently (highest rev per identity, then plain
/// dictionaries), over random upsert workloads with out-of-order and stale revisions.
final class EvaluatorTests: XCTestCase {
    /// No window closes before finish(), so shuffled delivery never makes a row late.
    let noClose = QueryOptions(graceMs: 1 << 50)

    // MARK: brute-force answers

    typealias Table = [Int64: [[Value]]]

    /// Q1: DWM, TUMBLING 5 minutes, WHERE expose > 5, GROUP BY category, all aggregate kinds.
    static let q1 = """
        SELECT content.category AS cat, sum(click) AS clicks, count(*) AS n, min(play) AS min_play,
               max(play_ms) AS max_ms, avg(click) AS avg_click, count_distinct(user_id) AS users
        FROM dwm.content_user WHERE expose > 5
        WINDOW TUMBLING 5 MINUTES GROUP BY content.category
        """
    static func brute1(_ delivered: [[String: Value]]) -> Table {
        struct Acc { var clicks: Int64 = 0, n: Int64 = 0, minPlay = Int64.max, maxMs = Int64.min; var users = Set<String>() }
        var acc: [Int64: [String: Acc]] = [:]
        for r in latestPerIdentity(delivered) where int(r, "expose") > 5 {
            let start = (int(r, "minute") / (5 * minuteMs)) * 5 * minuteMs
            var a = acc[start, default: [:]][str(r, "content", "category"), default: Acc()]
            a.clicks += int(r, "click"); a.n += 1
            a.minPlay = min(a.minPlay, int(r, "play")); a.maxMs = max(a.maxMs, int(r, "play_ms"))
            if case .string(let u)? = r["user_id"] { a.users.insert(u) }
            acc[start, default: [:]][str(r, "content", "category")] = a
        }
        return acc.mapValues { groups in
            groups.keys.sorted().map { k in
                let a = groups[k]!
                return [.string(k), .int(a.clicks), .int(a.n), .int(a.minPlay), .int(a.maxMs),
                        .double(Double(a.clicks) / Double(a.n)), .int(Int64(a.users.count))]
            }
        }
    }

    /// Q2: DWS, SLIDING 3 minutes EVERY 1 minute, HAVING on an alias, ORDER BY … DESC LIMIT 1.
    static let q2 = """
        SELECT content.region AS region, sum(click) AS clicks, sum(report) AS reports FROM dws.content
        WINDOW SLIDING 3 MINUTES EVERY 1 MINUTE GROUP BY content.region
        HAVING clicks > 10 ORDER BY clicks DESC LIMIT 1
        """
    static func brute2(_ delivered: [[String: Value]]) -> Table {
        var acc: [Int64: [String: (Int64, Int64)]] = [:]
        for r in latestPerIdentity(delivered) {
            let m = int(r, "minute")
            // Windows of 3 minutes ending at each minute boundary e with e - 3 min <= m < e.
            var end = (m / minuteMs + 1) * minuteMs
            while end - 3 * minuteMs <= m {
                let key = str(r, "content", "region")
                let cur = acc[end - 3 * minuteMs, default: [:]][key] ?? (0, 0)
                acc[end - 3 * minuteMs, default: [:]][key] = (cur.0 + int(r, "click"), cur.1 + int(r, "report"))
                end += minuteMs
            }
        }
        return acc.mapValues { groups in
            let rows = groups.filter { $0.value.0 > 10 }
                .sorted { $0.value.0 != $1.value.0 ? $0.value.0 > $1.value.0 : $0.key < $1.key }
            return rows.prefix(1).map { [.string($0.key), .int($0.value.0), .int($0.value.1)] }
        }
    }

    /// Q3: no WINDOW, no GROUP BY: one global row.
    static let q3 = """
        SELECT count(*) AS n, sum(play) AS plays, count_distinct(content_id) AS contents
        FROM dws.content WHERE content.category IN ('game', 'music')
        """
    static func brute3(_ delivered: [[String: Value]]) -> Table {
        var n: Int64 = 0, plays: Int64 = 0
        var contents = Set<String>()
        for r in latestPerIdentity(delivered) where ["game", "music"].contains(str(r, "content", "category")) {
            n += 1; plays += int(r, "play")
            if case .string(let c)? = r["content_id"] { contents.insert(c) }
        }
        return [Int64.min: [[.int(n), n == 0 ? .null : .int(plays), .int(Int64(contents.count))]]]
    }

    /// Q4: ORDER BY with ties (broken by the group key) and LIMIT.
    static let q4 = """
        SELECT content_id, sum(expose) AS e FROM dws.content
        WINDOW TUMBLING 2 MINUTES GROUP BY content_id ORDER BY e DESC LIMIT 5
        """
    static func brute4(_ delivered: [[String: Value]]) -> Table {
        var acc: [Int64: [String: Int64]] = [:]
        for r in latestPerIdentity(delivered) {
            let start = (int(r, "minute") / (2 * minuteMs)) * 2 * minuteMs
            if case .string(let c)? = r["content_id"] { acc[start, default: [:]][c, default: 0] += int(r, "expose") }
        }
        return acc.mapValues { groups in
            groups.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
                .prefix(5).map { [.string($0.key), .int($0.value)] }
        }
    }

    static func same(_ a: [[Value]], _ b: [[Value]]) -> Bool {
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) {
            guard x.count == y.count else { return false }
            for (u, v) in zip(x, y) {
                if case .double = u, let p = u.number, let q = v.number {
                    if abs(p - q) > 1e-9 * max(1, abs(q)) { return false }
                } else if u != v {
                    return false
                }
            }
        }
        return true
    }

    /// After every batch the latest emitted table of every window equals brute force over the
    /// rows delivered so far; finish() emits each window once, final, equal to brute force.
    func check(_ text: String, withUsers: Bool, brute: ([[String: Value]]) -> Table, seeds: Range<UInt64>) throws {
        let query = try Query.parse(text)
        for seed in seeds {
            let workload = Workload(seed: seed, identities: 300, minutes: 12, withUsers: withUsers)
            let engine = QueryEngine(query, options: noClose)
            var delivered: [[String: Value]] = []
            var latest: [Int64: QueryResult] = [:]
            for batch in splitIntoBatches(workload.deliveries, seed: seed &* 31, maxBatch: 40) {
                let emitted = try engine.ingest(batch)
                XCTAssertEqual(Set(emitted.map { $0.windowStart ?? Int64.min }).count, emitted.count, "one emission per window per batch")
                XCTAssertFalse(emitted.contains { $0.final })
                collect(emitted, into: &latest)
                delivered += batch
                let expected = brute(delivered)
                for w in Set(expected.keys).union(latest.keys) {
                    let got = latest[w]?.rows ?? []
                    let want = expected[w] ?? []
                    XCTAssertTrue(Self.same(got, want), "seed \(seed) window \(w): got \(got) want \(want)")
                }
            }
            let finals = engine.finish()
            XCTAssertTrue(finals.allSatisfy(\.final))
            XCTAssertEqual(Set(finals.map { $0.windowStart ?? Int64.min }).count, finals.count, "each window once")
            let expected = brute(workload.deliveries)
            for f in finals {
                XCTAssertTrue(Self.same(f.rows, expected[f.windowStart ?? Int64.min] ?? []), "seed \(seed) final \(String(describing: f.windowStart))")
            }
            for (w, rows) in expected where !rows.isEmpty {
                XCTAssertTrue(finals.contains { ($0.windowStart ?? Int64.min) == w }, "seed \(seed): window \(w) missing from finish()")
            }
            XCTAssertGreaterThan(engine.stats.staleRevisions, 0, "the workload must exercise stale revisions")
        }
    }

    func testTumblingGroupedAllAggregatesAgainstBruteForce() throws {
        try check(Self.q1, withUsers: true, brute: Self.brute1, seeds: 1..<9)
    }

    func testSlidingHavingOrderLimitAgainstBruteForce() throws {
        try check(Self.q2, withUsers: false, brute: Self.brute2, seeds: 11..<19)
    }

    func testGlobalAggregateAgainstBruteForce() throws {
        try check(Self.q3, withUsers: false, brute: Self.brute3, seeds: 21..<29)
    }

    func testOrderByTiesAndLimitAgainstBruteForce() throws {
        try check(Self.q4, withUsers: false, brute: Self.brute4, seeds: 31..<39)
    }

    // MARK: upsert semantics, explicitly

    func testNewerRevReplacesOlderEvenWhenItLowersACount() throws {
        let q = try Query.parse("SELECT content_id, sum(click) AS clicks, max(click) AS top, count(*) AS n FROM dws.content GROUP BY content_id")
        let e = QueryEngine(q)
        var r = try e.ingest([record(minute: 0, content: "c1", rev: 1, click: 9)])
        XCTAssertEqual(r.last?.rows, [[.string("c1"), .int(9), .int(9), .int(1)]])
        r = try e.ingest([record(minute: 0, content: "c1", rev: 2, click: 4)])
        XCTAssertEqual(r.last?.rows, [[.string("c1"), .int(4), .int(4), .int(1)]], "rev 2 lowers the count: max must fall back")
        r = try e.ingest([record(minute: 0, content: "c1", rev: 1, click: 100)])
        XCTAssertEqual(r, [], "stale rev ignored, nothing emitted")
        r = try e.ingest([record(minute: 0, content: "c1", rev: 2, click: 100)])
        XCTAssertEqual(r, [], "equal rev ignored")
        r = try e.ingest([record(minute: 60_000, content: "c1", rev: 1, click: 1)])
        XCTAssertEqual(r.last?.rows, [[.string("c1"), .int(5), .int(4), .int(2)]], "another minute is another identity")
        XCTAssertEqual(e.stats.staleRevisions, 2)
    }

    func testOutOfOrderRevsWithinABatchAndAcrossBatches() throws {
        let q = try Query.parse("SELECT sum(click) AS clicks FROM dwm.content_user")
        let e = QueryEngine(q)
        _ = try e.ingest([record(minute: 0, content: "c1", user: "u1", rev: 3, click: 3),
                          record(minute: 0, content: "c1", user: "u1", rev: 1, click: 1),
                          record(minute: 0, content: "c1", user: "u2", rev: 2, click: 20)])
        let r = try e.ingest([record(minute: 0, content: "c1", user: "u2", rev: 1, click: 10),
                              record(minute: 0, content: "c1", user: "u2", rev: 4, click: 40)])
        XCTAssertEqual(r.last?.rows, [[.int(43)]])
    }

    func testRevisionMovingARowBetweenGroupsAndOutOfTheFilter() throws {
        let q = try Query.parse("SELECT content.category AS cat, count(*) AS n FROM dws.content WHERE click > 0 GROUP BY cat")
        let e = QueryEngine(q)
        _ = try e.ingest([record(minute: 0, content: "c1", rev: 1, click: 1, category: "game"),
                          record(minute: 0, content: "c2", rev: 1, click: 1, category: "game")])
        var r = try e.ingest([record(minute: 0, content: "c1", rev: 2, click: 1, category: "news")])
        XCTAssertEqual(r.last?.rows, [[.string("game"), .int(1)], [.string("news"), .int(1)]])
        r = try e.ingest([record(minute: 0, content: "c2", rev: 2, click: 0, category: "game")])
        XCTAssertEqual(r.last?.rows, [[.string("news"), .int(1)]], "the group empties and disappears")
        r = try e.ingest([record(minute: 0, content: "c2", rev: 1, click: 5, category: "game")])
        XCTAssertEqual(r, [], "a filtered-out newer rev still makes older revs stale")
    }

    func testProjectionShowsLatestRevOfEachRow() throws {
        let q = try Query.parse("SELECT content_id, click FROM dws.content WHERE click > 0 ORDER BY click DESC")
        let e = QueryEngine(q)
        _ = try e.ingest([record(minute: 0, content: "c1", rev: 1, click: 5), record(minute: 0, content: "c2", rev: 1, click: 7)])
        let r = try e.ingest([record(minute: 0, content: "c1", rev: 2, click: 9), record(minute: 0, content: "c2", rev: 2, click: 0)])
        XCTAssertEqual(r.last?.rows, [[.string("c1"), .int(9)]])
        XCTAssertEqual(r.last?.columns, ["content_id", "click"])
    }

    // MARK: windows

    func testTumblingWindowAssignment() throws {
        let w = WindowSpec(kind: .tumbling, lengthMs: 5 * minuteMs, everyMs: 5 * minuteMs, lengthText: "", everyText: "")
        XCTAssertEqual(w.windows(containing: 7 * minuteMs).map { [$0.start, $0.end] }, [[5 * minuteMs, 10 * minuteMs]])
        XCTAssertEqual(w.windows(containing: 5 * minuteMs).map { [$0.start, $0.end] }, [[5 * minuteMs, 10 * minuteMs]])
        XCTAssertEqual(w.windows(containing: 5 * minuteMs - 1).map { [$0.start, $0.end] }, [[0, 5 * minuteMs]])
        XCTAssertEqual(w.windows(containing: -1).map { [$0.start, $0.end] }, [[-5 * minuteMs, 0]], "aligned to the epoch before 1970 too")
        XCTAssertEqual(w.lastEnd(containing: 7 * minuteMs), 10 * minuteMs)
    }

    func testSlidingWindowAssignment() throws {
        let w = WindowSpec(kind: .sliding, lengthMs: 10 * minuteMs, everyMs: 5 * minuteMs, lengthText: "", everyText: "")
        XCTAssertEqual(w.windows(containing: 7 * minuteMs).map { [$0.start, $0.end] },
                       [[0, 10 * minuteMs], [5 * minuteMs, 15 * minuteMs]])
        XCTAssertEqual(w.windows(containing: 10 * minuteMs).map { [$0.start, $0.end] },
                       [[5 * minuteMs, 15 * minuteMs], [10 * minuteMs, 20 * minuteMs]])
        XCTAssertEqual(w.lastEnd(containing: 7 * minuteMs), 15 * minuteMs)
        XCTAssertEqual(w.windowsPerRow, 2)

        // Through the engine: one row at minute 7 lands in the three 3-minute windows ending at 8, 9, 10.
        let q = try Query.parse("SELECT window_start() AS ws, window_end() AS we, count(*) AS n FROM t WINDOW SLIDING 3 MINUTES EVERY 1 MINUTE")
        let e = QueryEngine(q)
        _ = try e.ingest([record(minute: 7 * minuteMs, content: "c1", rev: 1)])
        let finals = e.finish()
        XCTAssertEqual(finals.map { $0.rows }, [5, 6, 7].map { [[.int($0 * minuteMs), .int(($0 + 3) * minuteMs), .int(1)]] })
        XCTAssertEqual(finals.map(\.windowStart), [5, 6, 7].map { $0 * minuteMs })
    }

    func testEmitFinalEmitsEachWindowOnceWithTheRightAnswer() throws {
        let q = try Query.parse(Self.q1.replacingOccurrences(of: "GROUP BY content.category", with: "GROUP BY content.category EMIT FINAL"))
        for seed in UInt64(41)..<UInt64(45) {
            // Deliver in time order with jitter below the 2-minute grace: nothing is late.
            var rng = SeededRandom(seed: seed)
            let workload = Workload(seed: seed, identities: 400, minutes: 30, withUsers: true)
            let ordered = workload.deliveries.map { r in (int(r, "minute") + Int64.random(in: 0...90_000, using: &rng), r) }
                .sorted { $0.0 < $1.0 }.map(\.1)
            let e = QueryEngine(q)
            var emitted: [QueryResult] = []
            for batch in splitIntoBatches(ordered, seed: seed, maxBatch: 25) {
                let r = try e.ingest(batch)
                emitted += r
            }
            let beforeFinish = emitted.count
            XCTAssertGreaterThan(beforeFinish, 0, "the watermark must close windows before the end")
            emitted += e.finish()
            XCTAssertTrue(emitted.allSatisfy(\.final))
            let starts = emitted.map { $0.windowStart ?? -1 }
            XCTAssertEqual(Set(starts).count, starts.count, "each window exactly once")
            XCTAssertEqual(starts, starts.sorted(), "windows close in time order")
            XCTAssertEqual(e.stats.lateRows, 0)
            let expected = Self.brute1(workload.deliveries)
            XCTAssertEqual(Set(starts), Set(expected.keys))
            for r in emitted { XCTAssertTrue(Self.same(r.rows, expected[r.windowStart ?? -1] ?? []), "seed \(seed)") }
        }
    }

    func testEmitChangesMarksClosedWindowsFinalAndDropsLateRows() throws {
        let q = try Query.parse("SELECT sum(click) AS clicks FROM dws.content WINDOW TUMBLING 5 MINUTES")
        let e = QueryEngine(q)
        var r = try e.ingest([record(minute: 0, content: "c1", rev: 1, click: 1)])
        XCTAssertEqual(r, [QueryResult(windowStart: 0, windowEnd: 5 * minuteMs, final: false, columns: ["clicks"], rows: [[.int(1)]])])
        r = try e.ingest([record(minute: 6 * minuteMs, content: "c1", rev: 1, click: 2)])
        XCTAssertEqual(r.map(\.final), [false], "watermark 6 min < end 5 min + grace 2 min: still open")
        r = try e.ingest([record(minute: 7 * minuteMs, content: "c1", rev: 1, click: 3)])
        XCTAssertEqual(r.map { [$0.windowStart, $0.final ? 1 : 0] }, [[0, 1], [5 * minuteMs, 0]])
        XCTAssertEqual(r.first?.rows, [[.int(1)]])
        r = try e.ingest([record(minute: 0, content: "c1", rev: 2, click: 50)])
        XCTAssertEqual(r, [], "a revision for a closed window is late")
        XCTAssertEqual(e.stats.lateRows, 1)
        XCTAssertEqual(e.finish().map(\.rows), [[[.int(5)]]])
    }

    /// A job catching up publishes early rows of minutes far ahead while corrections of earlier
    /// minutes are still to come: only final rows may move a subscriber's watermark.
    func testEarlyRowsOfLaterMinutesDoNotCloseWindows() throws {
        let q = try Query.parse("SELECT sum(click) AS clicks FROM dws.content WINDOW TUMBLING 5 MINUTES EMIT FINAL")
        let e = QueryEngine(q)
        XCTAssertEqual(try e.ingest([record(minute: 0, content: "c1", rev: 3, click: 1)]), [])
        XCTAssertEqual(try e.ingest([record(minute: 20 * minuteMs, content: "c1", rev: 2, click: 7, final: false)]), [],
                       "an early row 20 minutes ahead closes nothing")
        XCTAssertEqual(try e.ingest([record(minute: 2 * minuteMs, content: "c1", rev: 5, click: 2)]), [],
                       "a correction of minute 2 arrives after it and still counts")
        XCTAssertEqual(e.stats.lateRows, 0)
        let r = try e.ingest([record(minute: 7 * minuteMs, content: "c2", rev: 3, click: 1)])
        XCTAssertEqual(r.map(\.windowStart), [0], "a final row of minute 7 closes [0, 5 min) (grace 2 min)")
        XCTAssertEqual(r.first?.rows, [[.int(3)]])
    }

    /// A row is late once every window holding it closed: for SLIDING 3 MINUTES EVERY 1 MINUTE the
    /// last window holding minute m ends at m + 3 minutes, whatever the rows before it were (the
    /// engine remembers the last answer for the times it holds for).
    func testSlidingLatenessIsJudgedPerRowMinute() throws {
        let q = try Query.parse("SELECT count(*) AS n FROM dws.content WINDOW SLIDING 3 MINUTES EVERY 1 MINUTE EMIT FINAL")
        let e = QueryEngine(q, options: QueryOptions(graceMs: 0))
        _ = try e.ingest([record(minute: 13 * minuteMs, content: "c0", rev: 1)])
        // Watermark 13: minute 10's windows all end by 13 (late); minute 11 still has [11, 14).
        _ = try e.ingest([record(minute: 10 * minuteMs, content: "c1", rev: 1), record(minute: 11 * minuteMs, content: "c2", rev: 1),
                          record(minute: 10 * minuteMs + 30_000, content: "c3", rev: 1)])
        XCTAssertEqual(e.stats.lateRows, 2)
        let r = try e.ingest([record(minute: 14 * minuteMs, content: "c0", rev: 1)])
        XCTAssertEqual(r.map(\.windowStart), [11 * minuteMs])
        XCTAssertEqual(r.first?.rows, [[.int(2)]], "minute 11's row and minute 13's")

        // TUMBLING 2 MINUTES at watermark 4: minute 3 is late, minute 4 (window [4, 6)) is not.
        let t = QueryEngine(try Query.parse("SELECT count(*) AS n FROM dws.content WINDOW TUMBLING 2 MINUTES"), options: QueryOptions(graceMs: 0))
        _ = try t.ingest([record(minute: 4 * minuteMs, content: "c0", rev: 1)])
        _ = try t.ingest([record(minute: 3 * minuteMs, content: "c1", rev: 1), record(minute: 4 * minuteMs, content: "c2", rev: 1)])
        XCTAssertEqual(t.stats.lateRows, 1)
    }

    func testGraceIsConfigurable() throws {
        let q = try Query.parse("SELECT count(*) AS n FROM dws.content WINDOW TUMBLING 1 MINUTE EMIT FINAL")
        let e = QueryEngine(q, options: QueryOptions(graceMs: 0))
        XCTAssertEqual(try e.ingest([record(minute: 0, content: "c1", rev: 1)]), [])
        let r = try e.ingest([record(minute: minuteMs, content: "c1", rev: 1)])
        XCTAssertEqual(r.map(\.windowStart), [0])
    }

    func testHavingWithAliasAndOrderByLimit() throws {
        let q = try Query.parse("""
            SELECT content.author_id AS author, sum(report) AS reports, count(*) AS n FROM dws.content
            GROUP BY content.author_id HAVING reports >= 2 AND n > 0 ORDER BY reports DESC, author LIMIT 2
            """)
        let e = QueryEngine(q)
        let rows = [("c00000001", 3), ("c00000002", 5), ("c00000003", 1), ("c00000004", 5), ("c00000005", 2)].map {
            record(minute: 0, content: $0.0, rev: 1, report: Int64($0.1))
        }
        let r = try e.ingest(rows)
        XCTAssertEqual(r.last?.rows, [[.string("a00000002"), .int(5), .int(1)], [.string("a00000004"), .int(5), .int(1)]])
        XCTAssertEqual(r.last?.columns, ["author", "reports", "n"])
    }

    func testOrderByPutsNullsLastAscendingAndFirstDescending() throws {
        let rows: [[String: Value]] = [["k": "a", "x": 2], ["k": "b"], ["k": "c", "x": 1]]
        let asc = QueryEngine(try Query.parse("SELECT k, x FROM t ORDER BY x"))
        XCTAssertEqual(try asc.ingest(rows).last?.rows.map { $0[0] }, ["c", "a", "b"])
        let desc = QueryEngine(try Query.parse("SELECT k, x FROM t ORDER BY x DESC"))
        XCTAssertEqual(try desc.ingest(rows).last?.rows.map { $0[0] }, ["b", "a", "c"])
    }

    func testEmitEveryFollowsTheCallersClock() throws {
        let q = try Query.parse("SELECT count(*) AS n FROM dws.content WINDOW TUMBLING 1 MINUTE EMIT EVERY 10 SECONDS")
        let e = QueryEngine(q)
        XCTAssertEqual(try e.ingest([record(minute: 0, content: "c1", rev: 1)]), [], "EVERY emits only on tick")
        XCTAssertEqual(e.tick(nowMs: 1_000).map(\.rows), [[[.int(1)]]])
        _ = try e.ingest([record(minute: 0, content: "c2", rev: 1)])
        XCTAssertEqual(e.tick(nowMs: 5_000), [], "next period starts at 10 s")
        XCTAssertEqual(e.tick(nowMs: 10_000).map(\.rows), [[[.int(2)]]])
        XCTAssertEqual(e.tick(nowMs: 20_000), [], "unchanged windows are not repeated")
        _ = try e.ingest([record(minute: 3 * minuteMs, content: "c1", rev: 1)])
        let r = e.tick(nowMs: 30_000)
        XCTAssertEqual(r.map { $0.final }, [true, false], "window 0 closed (final) and window 3 changed")
        XCTAssertEqual(e.finish().map { [$0.windowStart ?? -1, $0.final ? 1 : 0] }, [[3 * minuteMs, 1]])
    }

    func testWatermarkIsTheMinimumOverPartitionsUntilOneIsIdle() throws {
        let q = try Query.parse("SELECT count(*) AS n FROM dws.content WINDOW TUMBLING 1 MINUTE EMIT FINAL")
        let e = QueryEngine(q, options: QueryOptions(graceMs: 0, idlePartitionTimeoutMs: 30_000))
        _ = e.tick(nowMs: 0)
        XCTAssertEqual(try e.ingest([record(minute: 0, content: "c1", rev: 1), record(minute: 0, content: "c2", rev: 1)], partitions: [0, 1]), [])
        XCTAssertEqual(try e.ingest([record(minute: 5 * minuteMs, content: "c1", rev: 1)], partition: 0), [],
                       "partition 1 is still at minute 0")
        XCTAssertEqual(e.watermark, 0)
        XCTAssertEqual(e.tick(nowMs: 10_000), [])
        _ = e.tick(nowMs: 20_000)
        XCTAssertEqual(try e.ingest([record(minute: 5 * minuteMs, content: "c3", rev: 1)], partition: 0), [])
        let r = e.tick(nowMs: 40_000)
        XCTAssertEqual(r.map(\.windowStart), [0], "partition 1 idle for 40 s no longer holds the watermark back")
        XCTAssertEqual(r.first?.rows, [[.int(2)]])
    }

    func testRowsWithoutMinuteOrIdentity() throws {
        let windowed = QueryEngine(try Query.parse("SELECT count(*) AS n FROM t WINDOW TUMBLING 1 MINUTE"))
        XCTAssertEqual(try windowed.ingest([["x": 1]]), [])
        XCTAssertEqual(windowed.stats.rowsWithoutMinute, 1)
        // Append-only rows (no content_id) are all counted, even when equal.
        let global = QueryEngine(try Query.parse("SELECT count(*) AS n, sum(x) AS s FROM t"))
        XCTAssertEqual(try global.ingest([["x": 1], ["x": 1], ["x": 2.5]]).last?.rows, [[.int(3), .double(4.5)]])
        XCTAssertEqual(QueryEngine(try Query.parse("SELECT count(*) AS n, sum(x) AS s FROM t")).finish().first?.rows,
                       [[.int(0), .null]], "an aggregate without GROUP BY has one row even over no input")
    }

    func testExpressionsAndFunctions() throws {
        let q = try Query.parse("""
            SELECT k, coalesce(missing, k) AS c, lower(k) AS l, upper(k) AS u, round(x / 3, 2) AS r, round(x / 4) AS r0,
                   x / 0 AS z, x * 2 + 1 AS m, k LIKE 'A_c%' AS lk, x BETWEEN 1 AND 9 AS b, x IN (1, 9) AS i, nested.v AS nv
            FROM t
            """)
        let row: [String: Value] = ["k": "AbcD", "x": 9, "nested": .object(["v": true])]
        let r = try QueryEngine(q).ingest([row]).last?.rows.first
        XCTAssertEqual(r, ["AbcD", "AbcD", "abcd", "ABCD", 3.0, 2, .null, 19, true, true, true, true])
    }

    func testSubscriptionDeliversEmissionsThenFinals() async throws {
        let q = try Query.parse("SELECT sum(click) AS clicks FROM dws.content WINDOW TUMBLING 1 MINUTE")
        let (stream, continuation) = AsyncStream<[[String: Value]]>.makeStream()
        continuation.yield([record(minute: 0, content: "c1", rev: 1, click: 1)])
        continuation.yield([])
        continuation.yield([record(minute: 0, content: "c1", rev: 2, click: 5)])
        continuation.finish()
        var results: [QueryResult] = []
        for try await r in QuerySubscription(query: q, rows: stream) { results.append(r) }
        XCTAssertEqual(results.map(\.final), [false, false, true])
        XCTAssertEqual(results.map(\.rows), [[[.int(1)]], [[.int(5)]], [[.int(5)]]])
    }

    func testSubscriptionEndsWithAQueryErrorWhenTheSourceFails() async throws {
        struct Broken: Error {}
        let q = try Query.parse("SELECT count(*) AS n FROM t")
        let stream = AsyncThrowingStream<[[String: Value]], any Error> { c in
            c.yield([["x": 1]])
            c.finish(throwing: Broken())
        }
        var results: [QueryResult] = []
        var caught: QueryError?
        do {
            for try await r in QuerySubscription(query: q, rows: stream) { results.append(r) }
        } catch {
            caught = error  // typed: the sequence's Failure is QueryError
        }
        guard case .source? = caught else { return XCTFail("expected a source error, got \(String(describing: caught))") }
        XCTAssertEqual(results.count, 1)
    }
}
