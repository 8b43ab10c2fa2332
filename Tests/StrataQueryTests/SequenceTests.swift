import Foundation
import StrataCore
import StrataTestSupport
import XCTest
@testable import StrataQuery

/// Sessions, funnels and paths over an event stream, each against a brute-force computation on a
/// randomized workload delivered out of order (within the grace) with duplicates.
final class SequenceTests: XCTestCase {
    let catalog = Catalog(topology: CatalogTests.topology)
    static let hour: Int64 = 3_600_000
    static let start: Int64 = 1_800_000_000_000 / hour * hour

    struct Event {
        var id: String, ts: Int64, user: String, action: String, page: String?, duration: Int64?, version: String, strategy: String
        var row: [String: Value] {
            var r: [String: Value] = ["event_id": .string(id), "ts": .int(ts), "user_id": .string(user), "action": .string(action),
                                      "content_id": .string("c00000001"), "strategy": .string(strategy),
                                      "device": .object(["os": .string("android"), "app_ver": .string(version)])]
            if let page { r["page"] = .string(page) }
            if let duration { r["duration_ms"] = .int(duration) }
            return r
        }
    }

    /// Users with bursts of activity (so sessions, gaps and funnels all happen) over `hours` hours.
    func workload(seed: UInt64, users: Int, hours: Int64) -> [Event] {
        var rng = SeededRandom(seed: seed)
        var out: [Event] = []
        let actions = ["expose", "expose", "expose", "click", "click", "play", "like"]
        let pages = ["home", "feed", "detail", "search", "profile", "home"]
        for u in 0..<users {
            var t = Self.start + Int64(rng.below(20 * 60_000))
            let version = ["1.0", "1.1", "2.0"][u % 3]
            while t < Self.start + hours * Self.hour {
                let burst = 1 + rng.below(8)
                for _ in 0..<burst {
                    let action = actions[rng.below(actions.count)]
                    out.append(Event(id: "e\(out.count)", ts: t, user: "u\(u)", action: action,
                                     page: rng.below(6) == 0 ? nil : pages[rng.below(pages.count)],
                                     duration: action == "play" ? Int64(rng.below(30_000)) : nil, version: version,
                                     strategy: "s\(u % 2)"))
                    t += Int64(rng.below(5 * 60_000))
                }
                t += Int64(10 * 60_000 + rng.below(50 * 60_000))   // a pause: sometimes beyond the session gap
            }
        }
        return out
    }

    /// Delivered roughly in time order with jitter below `graceMs`, plus redeliveries.
    func deliver(_ events: [Event], seed: UInt64, to engine: QueryEngine) throws -> [QueryResult] {
        var rng = SeededRandom(seed: seed)
        var keyed = events.map { ($0.ts + Int64(rng.below(90_000)), $0) }
        for _ in 0..<(events.count / 10) { let e = events[rng.below(events.count)]; keyed.append((e.ts + Int64(rng.below(90_000)), e)) }
        keyed.sort { $0.0 < $1.0 }
        var out: [QueryResult] = []
        for b in stride(from: 0, to: keyed.count, by: 200) {
            out += try engine.ingest(keyed[b..<min(b + 200, keyed.count)].map(\.1.row))
        }
        return out + engine.finish()
    }

    /// The final table of each window, by window start then group.
    func finals(_ results: [QueryResult], key: String) -> [String: [String: Value]] {
        var out: [String: [String: Value]] = [:]
        for r in results where r.final { for o in r.objects { out["\(r.windowStart!)|\(o[key]?.displayText ?? "")"] = o } }
        return out
    }

    func sorted(_ events: [Event]) -> [Event] { events.sorted { $0.ts != $1.ts ? $0.ts < $1.ts : $0.id < $1.id } }

    func testSessionsPerAppVersionMatchBruteForce() throws {
        let events = workload(seed: 3, users: 120, hours: 3)
        let q = try Query.parse("""
            SELECT device.app_ver AS version, sessions(user_id, 30 MINUTES) AS sessions, count_distinct(user_id) AS users,
                   session_seconds(user_id, 30 MINUTES) AS avg_s, session_events(user_id, 30 MINUTES) AS avg_events,
                   bounce_rate(user_id, 30 MINUTES) AS bounce
            FROM ods.raw WINDOW TUMBLING 1 HOUR GROUP BY device.app_ver EMIT FINAL
            """, catalog: catalog)
        let got = finals(try deliver(events, seed: 4, to: QueryEngine(q)), key: "version")

        var want: [String: (Int64, Int64, Int64, Int64, Set<String>)] = [:]
        let byWindowUser = Dictionary(grouping: events) { "\($0.ts / Self.hour * Self.hour)|\($0.version)|\($0.user)" }
        for (k, evs) in byWindowUser {
            let parts = k.split(separator: "|")
            let key = "\(parts[0])|\(parts[1])"
            // Brute force: split the user's sorted events at gaps of more than 30 minutes.
            var sessions: [[Event]] = []
            for e in sorted(evs) {
                if let last = sessions.last?.last, e.ts - last.ts <= 30 * 60_000 { sessions[sessions.count - 1].append(e) } else { sessions.append([e]) }
            }
            var w = want[key] ?? (0, 0, 0, 0, [])
            w.0 += Int64(sessions.count)
            w.1 += sessions.reduce(0) { $0 + $1.last!.ts - $1.first!.ts }
            w.2 += Int64(evs.count)
            w.3 += Int64(sessions.filter { $0.count == 1 }.count)
            w.4.insert(String(parts[2]))
            want[key] = w
        }
        XCTAssertEqual(Set(got.keys), Set(want.keys))
        for (key, w) in want {
            let o = try XCTUnwrap(got[key], key)
            XCTAssertEqual(o["sessions"], .int(w.0), key)
            XCTAssertEqual(o["users"], .int(Int64(w.4.count)), key)
            XCTAssertEqual(o["avg_s"]?.number ?? -1, Double(w.1) / 1000 / Double(w.0), accuracy: 1e-9, key)
            XCTAssertEqual(o["avg_events"]?.number ?? -1, Double(w.2) / Double(w.0), accuracy: 1e-9, key)
            XCTAssertEqual(o["bounce"]?.number ?? -1, Double(w.3) / Double(w.0), accuracy: 1e-9, key)
        }
        XCTAssertGreaterThan(want.values.reduce(0) { $0 + $1.0 } - want.values.reduce(0) { $0 + Int64($1.4.count) }, 50,
                             "users have several sessions in a window")
    }

    func testALateEventBridgingTwoSessionsMergesThem() throws {
        let q = try Query.parse("""
            SELECT sessions(user_id, 30 MINUTES) AS n, session_seconds(user_id, 30 MINUTES) AS s FROM ods.raw WINDOW TUMBLING 1 HOUR
            """, catalog: catalog)
        let engine = QueryEngine(q)
        func ev(_ id: String, _ minutes: Int64) -> [String: Value] {
            ["event_id": .string(id), "ts": .int(Self.start + minutes * 60_000), "user_id": .string("u1")]
        }
        let before = try engine.ingest([ev("a", 0), ev("b", 40)])
        XCTAssertEqual(before.last?.objects.first?["n"], .int(2))
        let after = try engine.ingest([ev("late", 20)])
        XCTAssertEqual(after.last?.objects.first?["n"], .int(1), "the late event bridges the gap")
        XCTAssertEqual(after.last?.objects.first?["s"]?.number, 2_400)
    }

    /// Brute force: from each event matching step 1, the earliest matching event for each next
    /// step (distinct, later in order) — optimal for that start — within the window; the best start.
    func bruteLevel(_ evs: [Event], window: Int64, steps: [(Event) -> Bool]) -> Int {
        let s = sorted(evs)
        var best = 0
        for i in s.indices where steps[0](s[i]) {
            var level = 1, j = i + 1
            while level < steps.count, j < s.count {
                if s[j].ts - s[i].ts > window { break }
                if steps[level](s[j]) { level += 1 }
                j += 1
            }
            best = max(best, level)
        }
        return best
    }

    func testFunnelPerStrategyMatchesBruteForceWithRepeatedSteps() throws {
        let events = workload(seed: 9, users: 150, hours: 2)
        // Step 4 repeats step 2's action: a second click after a play.
        let q = try Query.parse("""
            SELECT strategy, funnel(user_id, 20 MINUTES, action = 'expose', action = 'click',
                                    action = 'play' AND duration_ms >= 10000, action = 'click') AS users,
                   conversion(funnel(user_id, 20 MINUTES, action = 'expose', action = 'click',
                                     action = 'play' AND duration_ms >= 10000, action = 'click')) AS conversion
            FROM ods.raw WINDOW TUMBLING 1 HOUR GROUP BY strategy EMIT FINAL
            """, catalog: catalog)
        let got = finals(try deliver(events, seed: 10, to: QueryEngine(q)), key: "strategy")
        let steps: [(Event) -> Bool] = [{ $0.action == "expose" }, { $0.action == "click" },
                                        { $0.action == "play" && ($0.duration ?? 0) >= 10_000 }, { $0.action == "click" }]
        var want: [String: [Int64]] = [:]
        for (k, evs) in Dictionary(grouping: events, by: { "\($0.ts / Self.hour * Self.hour)|\($0.strategy)|\($0.user)" }) {
            let p = k.split(separator: "|")
            let level = bruteLevel(evs, window: 20 * 60_000, steps: steps)
            var counts = want["\(p[0])|\(p[1])"] ?? [0, 0, 0, 0]
            for step in 0..<level { counts[step] += 1 }
            want["\(p[0])|\(p[1])"] = counts
        }
        XCTAssertEqual(Set(got.keys), Set(want.keys))
        for (key, w) in want {
            XCTAssertEqual(got[key]?["users"], .array(w.map { .int($0) }), key)
            if case .array(let c)? = got[key]?["conversion"], w[0] > 0, w[1] > 0 {
                XCTAssertEqual(c[1].number ?? -1, (Double(w[1]) / Double(w[0]) * 10_000).rounded() / 10_000, accuracy: 1e-12)
            }
        }
        XCTAssertTrue(want.values.contains { $0[3] > 0 }, "some users complete the funnel")
        XCTAssertTrue(want.values.contains { $0[1] > $0[3] }, "and some stop before")
    }

    func testFunnelTimeLimitAndOrder() throws {
        func level(_ evs: [(String, Int64)]) throws -> Value? {
            let q = try Query.parse("SELECT funnel(user_id, 10 MINUTES, action = 'expose', action = 'click', action = 'like') AS f FROM ods.raw",
                                    catalog: catalog)
            let rows = evs.enumerated().map { i, e -> [String: Value] in
                ["event_id": .string("e\(i)"), "ts": .int(Self.start + e.1 * 60_000), "user_id": .string("u"), "action": .string(e.0)]
            }
            return try QueryEngine(q).ingest(rows).last?.objects.first?["f"]
        }
        XCTAssertEqual(try level([("expose", 0), ("click", 5), ("like", 9)]), .array([1, 1, 1]))
        XCTAssertEqual(try level([("expose", 0), ("click", 5), ("like", 11)]), .array([1, 1, 0]), "like is past the limit")
        XCTAssertEqual(try level([("click", 0), ("expose", 1), ("like", 2)]), .array([1, 0, 0]), "click before expose does not count")
        // A later expose restarts the clock: expose 0, expose 8, click 12, like 17 reaches step 3 from the second.
        XCTAssertEqual(try level([("expose", 0), ("expose", 8), ("click", 12), ("like", 17)]), .array([1, 1, 1]))
        // Arrival order does not matter: the same events delivered backwards.
        XCTAssertEqual(try level([("like", 9), ("click", 5), ("expose", 0)]), .array([1, 1, 1]))
    }

    func testTopPathsFromHomeMatchBruteForce() throws {
        let events = workload(seed: 21, users: 200, hours: 1)
        let q = try Query.parse("SELECT top_paths(user_id, page, 'home', 3, 10) AS paths FROM ods.raw WINDOW TUMBLING 1 HOUR EMIT FINAL",
                                catalog: catalog)
        let results = try deliver(events, seed: 22, to: QueryEngine(q))
        var fullWindows = 0
        for r in results where r.final {
            var counts: [String: Int64] = [:]
            let inWindow = events.filter { $0.ts >= r.windowStart! && $0.ts < r.windowEnd! }
            for (_, evs) in Dictionary(grouping: inWindow, by: \.user) {
                var pages: [String] = []
                for p in sorted(evs).compactMap(\.page) where p != pages.last { pages.append(p) }   // repeats are one view
                for i in pages.indices where pages[i] == "home" && i + 2 < pages.count {
                    counts[pages[i...(i + 2)].joined(separator: " > "), default: 0] += 1
                }
            }
            let top = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(10)
            let want: Value = .array(top.map { .object(["path": .string($0.key), "count": .int($0.value)]) })
            XCTAssertEqual(r.objects.first?["paths"], want, "window \(r.windowStart!)")
            if top.count == 10 { fullWindows += 1 }
        }
        XCTAssertGreaterThan(fullWindows, 0, "a window with at least ten distinct paths")
    }

    func testHeldEventsAreALimitAndClosedWindowsReleaseThem() throws {
        // A funnel keeps every matching event of its window (sessions keep only spans).
        let q = try Query.parse("SELECT funnel(user_id, 5 MINUTES, action = 'click', action = 'like') AS f FROM ods.raw WINDOW TUMBLING 1 MINUTE",
                                catalog: catalog)
        let engine = QueryEngine(q, limits: QueryLimits(maxSequenceEvents: 50), options: QueryOptions(graceMs: 0))
        func events(minute: Int64, _ n: Int) -> [[String: Value]] {
            (0..<n).map { ["event_id": .string("m\(minute)e\($0)"), "ts": .int(Self.start + minute * 60_000 + Int64($0)), "user_id": .string("u\($0 % 7)"), "action": .string("click")] }
        }
        _ = try engine.ingest(events(minute: 0, 40))
        _ = try engine.ingest(events(minute: 5, 40))   // closes minute 0: its 40 events are released
        XCTAssertThrowsError(try engine.ingest(Array(events(minute: 5, 60).suffix(20)))) { error in
            guard case .limitExceeded(.sequenceEvents, let limit, _)? = error as? QueryError else { return XCTFail("\(error)") }
            XCTAssertEqual(limit, 50)
        }
    }

    func testSequenceAggregatesNeedAnEventStreamAndConstants() {
        func message(_ text: String) -> String? {
            do throws(QueryError) { _ = try Query.parse(text, catalog: catalog); return nil } catch { return error.message }
        }
        XCTAssertTrue(message("SELECT sessions(content_id, 30 MINUTES) FROM dws")?.hasPrefix("sessions() reads each actor's events") == true)
        XCTAssertTrue(message("SELECT sessions(user_id, ts) FROM ods.raw")?.hasPrefix("sessions's session gap must be a positive constant") == true)
        XCTAssertTrue(message("SELECT funnel(user_id, 1 HOUR, action) FROM ods.raw")?.hasPrefix("funnel expects") == true)
        XCTAssertTrue(message("SELECT funnel(user_id, 1 HOUR, action, action = 'x') FROM ods.raw")?.hasPrefix("a funnel step needs a condition") == true)
        XCTAssertTrue(message("SELECT top_paths(user_id, page, 'home', 1, 10) FROM ods.raw")?.hasPrefix("a path has at least 2 pages") == true)
        XCTAssertTrue(message("SELECT top_paths(user_id, page, page, 3, 10) FROM ods.raw")?.hasPrefix("top_paths' start page must be a string") == true)
    }
}
