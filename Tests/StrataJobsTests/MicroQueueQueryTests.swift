import Foundation
import StrataCore
import StrataSplit
import StrataTestSupport
import XCTest

/// `strata query` over the micro-queues, as a user runs it: a union of three `ods.<action>`
/// topics the real split wrote from the reference workload (out-of-order, duplicate and invalid
/// events included), windowed by event time, against a computation from the input lines alone.
final class MicroQueueQueryTests: XCTestCase {
    func testUnionOfMicroQueuesThroughTheSplitMatchesTheInput() throws {
        let sandbox = try PipelineSandbox(seed: 23)
        let (lines, partitionOf) = generateWorkload(events: 6_000, seed: 23, contents: sandbox.contents, users: sandbox.users,
                                                    eventsPerSecond: 40)
        try sandbox.produceRaw(lines[...], partitionOf: partitionOf)
        try SplitJob(options: sandbox.splitOptions(), topology: sandbox.topology).run(shouldStop: { false }, report: { _ in })

        // The truth: each event the split routes (the event contract's required fields, a listed
        // action, a well-formed content id; known to the dimensions or not), once by (event_id, ts),
        // per minute of ts and action.
        let routed = Self.routedEvents(lines, actions: ["expose", "click", "play"])
        var want: [String: (events: Set<String>, users: Set<String>)] = [:]
        for e in routed {
            let key = "\(e.ts / 60_000 * 60_000)|\(e.action)"
            want[key, default: ([], [])].events.insert("\(e.id)|\(e.ts)")
            want[key]!.users.insert(e.user)
        }
        XCTAssertGreaterThan(want.count, 10)

        let out = Pipe(), err = Pipe()
        let query = try launchStrata(strataBinary, [
            "query", "--brokers", sandbox.brokers, "--topic-prefix", sandbox.prefix, "--from-beginning", "--until-idle", "4",
            "--grace", "24h", "--format", "ndjson",
            "SELECT action, count(*) AS events, count_distinct(user_id) AS users FROM ods.expose, ods.click, ods.play WINDOW TUMBLING 1 MINUTE GROUP BY action EMIT FINAL",
        ], standardOutput: out, standardError: err)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        query.waitUntilExit()
        XCTAssertEqual(query.terminationStatus, 0, String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))

        var got: [String: [Int]] = [:]
        for line in text.split(separator: "\n") {
            let table = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(table["final"] as? Bool, true)
            let start = try XCTUnwrap(table["window_start"] as? Int)
            for r in try XCTUnwrap(table["rows"] as? [[String: Any]]) {
                got["\(start)|\(r["action"] as? String ?? "?")"] = [r["events"] as? Int ?? -1, r["users"] as? Int ?? -1]
            }
        }
        // Events exactly; distinct users exactly up to count_distinct's exact threshold (1024 per
        // group), within HyperLogLog's error above it.
        XCTAssertEqual(got.mapValues { $0[0] }, want.mapValues { $0.events.count })
        for (key, w) in want {
            let users = got[key]?[1] ?? -1
            if w.users.count <= 1024 { XCTAssertEqual(users, w.users.count, key) }
            else { XCTAssertEqual(Double(users), Double(w.users.count), accuracy: 0.03 * Double(w.users.count), key) }
        }
        // The split forwards duplicates (the dwm job removes them); the query counted each once.
        XCTAssertGreaterThan(routed.count, want.values.reduce(0) { $0 + $1.events.count }, "the workload has duplicate events")
    }

    /// The four behaviour-analytics queries shipped in sql/queries/, run by `strata query` over the
    /// micro-queues the split wrote, each against a brute-force computation from the input lines.
    func testSeedAnalyticsQueriesMatchTheInput() throws {
        let sandbox = try PipelineSandbox(seed: 29)
        let (lines, partitionOf) = generateWorkload(events: 8_000, seed: 29, contents: sandbox.contents, users: 400,
                                                    eventsPerSecond: 4)
        try sandbox.produceRaw(lines[...], partitionOf: partitionOf)
        try SplitJob(options: sandbox.splitOptions(), topology: sandbox.topology).run(shouldStop: { false }, report: { _ in })

        // Every event the split routes, once by (event_id, ts).
        var seen = Set<String>()
        var events = Self.routedEvents(lines, actions: sandbox.topology.actions).filter { seen.insert("\($0.id)|\($0.ts)").inserted }
        events.sort { $0.ts != $1.ts ? $0.ts < $1.ts : $0.id < $1.id }
        func finals(_ file: String) throws -> [(start: Int, end: Int, rows: [[String: Any]])] {
            let out = Pipe(), err = Pipe()
            let p = try launchStrata(strataBinary, ["query", "-f", PipelineSandbox.root.appendingPathComponent("sql/queries/" + file).path,
                                                    "--brokers", sandbox.brokers, "--topic-prefix", sandbox.prefix, "--from-beginning",
                                                    "--until-idle", "4", "--grace", "24h", "--format", "ndjson"],
                                     standardOutput: out, standardError: err)
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, file + ": " + String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
            return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .filter { $0["final"] as? Bool == true }
                .map { ($0["window_start"] as? Int ?? 0, $0["window_end"] as? Int ?? 0, $0["rows"] as? [[String: Any]] ?? []) }
        }
        func within(_ w: (start: Int, end: Int, rows: [[String: Any]]), _ actions: Set<String>) -> [Event] {
            events.filter { $0.ts >= Int64(w.start) && $0.ts < Int64(w.end) && actions.contains($0.action) }
        }
        func key(_ v: Any?) -> String { (v as? String) ?? "null" }

        // (a) The funnel per strategy: from each expose, the earliest next click, long play, like within the hour.
        let funnelWindows = try finals("seed5_funnel_by_strategy.sql")
        XCTAssertFalse(funnelWindows.isEmpty)
        var completed = 0
        for w in funnelWindows {
            var want: [String: [Int]] = [:]
            for (group, evs) in Dictionary(grouping: within(w, ["expose", "click", "play", "like"]), by: { "\($0.strategy ?? "null")|\($0.user)" }) {
                let steps: [(Event) -> Bool] = [{ $0.action == "expose" }, { $0.action == "click" },
                                                { $0.action == "play" && $0.duration >= 10_000 }, { $0.action == "like" }]
                var best = 0
                for i in evs.indices where steps[0](evs[i]) {
                    var level = 1
                    for e in evs[(i + 1)...] where level < 4 && e.ts - evs[i].ts <= 3_600_000 && steps[level](e) { level += 1 }
                    best = max(best, level)
                }
                let strategy = String(group.split(separator: "|")[0])
                var counts = want[strategy] ?? [0, 0, 0, 0]
                for s in 0..<best { counts[s] += 1 }
                want[strategy] = counts
            }
            var got: [String: [Int]] = [:]
            for r in w.rows { got[key(r["strategy"])] = r["users"] as? [Int] }
            XCTAssertEqual(got, want, "funnel window \(w.start)")
            completed += want.values.reduce(0) { $0 + $1[3] }
        }
        XCTAssertGreaterThan(completed, 0, "some users liked after a long play")

        // (b) Sessions per app version per day.
        let sessionWindows = try finals("seed6_sessions_by_app_version.sql")
        XCTAssertFalse(sessionWindows.isEmpty)
        for w in sessionWindows {
            var want: [String: (sessions: Int, lengthMs: Int64, bounces: Int, users: Int)] = [:]
            for (group, evs) in Dictionary(grouping: within(w, Set(sandbox.topology.actions)), by: { "\($0.version ?? "null")|\($0.user)" }) {
                var spans: [(Int64, Int64, Int)] = []
                for e in evs {
                    if let last = spans.last, e.ts - last.1 <= 30 * 60_000 { spans[spans.count - 1] = (last.0, e.ts, last.2 + 1) }
                    else { spans.append((e.ts, e.ts, 1)) }
                }
                let version = String(group.split(separator: "|")[0])
                var v = want[version] ?? (0, 0, 0, 0)
                v.sessions += spans.count
                v.lengthMs += spans.reduce(0) { $0 + $1.1 - $1.0 }
                v.bounces += spans.filter { $0.2 == 1 }.count
                v.users += 1
                want[version] = v
            }
            XCTAssertEqual(Set(w.rows.map { key($0["app_version"]) }), Set(want.keys))
            for r in w.rows {
                let v = try XCTUnwrap(want[key(r["app_version"])])
                XCTAssertEqual(r["sessions"] as? Int, v.sessions)
                XCTAssertEqual(r["avg_session_s"] as? Double ?? -1, Double(v.lengthMs) / 1000 / Double(v.sessions), accuracy: 0.051)
                XCTAssertEqual(r["bounce_rate"] as? Double ?? -1, Double(v.bounces) / Double(v.sessions), accuracy: 0.0006)
                XCTAssertEqual(Double(r["users"] as? Int ?? -1), Double(v.users), accuracy: v.users <= 1024 ? 0 : 0.03 * Double(v.users))
            }
        }

        // (c) The top ten three-page paths from home.
        let pathWindows = try finals("seed7_paths_from_home.sql")
        XCTAssertFalse(pathWindows.isEmpty)
        for w in pathWindows {
            var counts: [String: Int] = [:]
            for (_, evs) in Dictionary(grouping: within(w, ["expose", "click", "play"]), by: \.user) {
                var pages: [String] = []
                for p in evs.compactMap(\.page) where p != pages.last { pages.append(p) }   // repeats are one view
                for i in pages.indices where pages[i] == "home" && i + 2 < pages.count {
                    counts[pages[i...(i + 2)].joined(separator: " > "), default: 0] += 1
                }
            }
            let want = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(10).map { "\($0.key)=\($0.value)" }
            let got = ((w.rows.first?["paths"] as? [[String: Any]]) ?? []).map { "\($0["path"] as? String ?? "?")=\($0["count"] as? Int ?? -1)" }
            XCTAssertEqual(got, Array(want), "paths window \(w.start)")
        }

        // (d) Clickers and clicks per content and day.
        let dayWindows = try finals("seed8_settlement_per_content.sql")
        XCTAssertFalse(dayWindows.isEmpty)
        print("seed analytics: \(funnelWindows.count) funnel windows, \(sessionWindows.map(\.rows.count)) version rows, \(pathWindows.map { ($0.rows.first?["paths"] as? [Any])?.count ?? 0 }) paths, \(dayWindows.map(\.rows.count)) contents, \(completed) completed funnels")
        for w in dayWindows {
            var want: [String: (clicks: Int, users: Set<String>)] = [:]
            for e in within(w, ["click"]) { want[e.content, default: (0, [])].clicks += 1; want[e.content]!.users.insert(e.user) }
            var got: [String: (Int, Int)] = [:]
            for r in w.rows { got[key(r["content_id"])] = (r["clicks"] as? Int ?? -1, r["distinct_clickers"] as? Int ?? -1) }
            XCTAssertEqual(got.count, want.count)
            for (c, v) in want {
                XCTAssertEqual(got[c]?.0, v.clicks, c)
                XCTAssertEqual(got[c]?.1, v.users.count, c)
            }
        }
    }

    struct Event { var id: String, ts: Int64, action: String, user: String, content: String
                   var strategy: String?, page: String?, version: String?, duration: Int64 }

    /// The input lines the split routes to a micro-queue of `actions`, duplicates included: the
    /// event contract's required fields, a listed action, a well-formed content id (known to the
    /// dimensions or not), parsed here without Strata's code.
    static func routedEvents(_ lines: [[UInt8]], actions: [String]) -> [Event] {
        lines.compactMap { line in
            guard let o = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any],
                  let id = o["event_id"] as? String, (1...64).contains(id.utf8.count), let ts = o["ts"] as? Int64,
                  let action = o["action"] as? String, actions.contains(action), let user = o["user_id"] as? String,
                  let c = o["content_id"] as? String, c.utf8.count == 9, c.hasPrefix("c"), c.dropFirst().allSatisfy({ ("0"..."9").contains($0) })
            else { return nil }
            return Event(id: id, ts: ts, action: action, user: user, content: c, strategy: o["strategy"] as? String,
                         page: o["page"] as? String, version: (o["device"] as? [String: Any])?["app_ver"] as? String,
                         duration: o["duration_ms"] as? Int64 ?? 0)
        }
    }
}
