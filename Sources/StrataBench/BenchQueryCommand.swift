import ArgumentParser
import Foundation
import StrataCLI
import StrataCore
import StrataGen
import StrataQuery

extension BenchCommand {
    struct QueryBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "query",
            abstract: "Query engine rows/s on recorded-style DWS rows (several revisions per identity), beside a decode-only baseline.",
            discussion: """
            Rows are generated in memory as the dws.content JSON contract (3 revisions per (minute, content)), decoded
            once, then fed in batches of 1 000 to: one filtered grouped aggregate with ORDER BY/LIMIT, and --concurrent
            copies of it sharing the decoded rows (one subscription feeding many queries). Then --events raw events
            (the reference generator's, as the micro-queues carry them) to a session query (sessions per app version
            per hour) and a funnel query (expose → click → long play → like per strategy, 1 hour), beside decoding
            them. Build with -c release.
            """)
        @Option(help: "Rows (revisions).") var rows = 600_000
        @Option(help: "Queries sharing one decoded stream.") var concurrent = 50
        @Option(help: "Raw events for the session and funnel queries.") var events = 400_000

        static let sessionSQL = """
            SELECT device.app_ver, sessions(user_id, 30 MINUTES) AS sessions, session_seconds(user_id, 30 MINUTES) AS avg_s
            FROM ods.raw WINDOW TUMBLING 1 HOUR GROUP BY device.app_ver EMIT FINAL
            """
        static let funnelSQL = """
            SELECT strategy, funnel(user_id, 1 HOUR, action = 'expose', action = 'click',
                                    action = 'play' AND duration_ms >= 10000, action = 'like') AS users
            FROM ods.raw WINDOW TUMBLING 1 HOUR GROUP BY strategy EMIT FINAL
            """

        static let sql = """
            SELECT content_id, content.category AS category, sum(click) AS clicks, sum(expose) AS exposes, count(*) AS n
            FROM dws.content WHERE content.category IN ('game', 'news', 'sports') AND expose > 0
            WINDOW TUMBLING 5 MINUTES GROUP BY content_id, content.category HAVING clicks > 0
            ORDER BY clicks DESC LIMIT 20 EMIT FINAL
            """

        func run() throws {
            let categories = ["game", "news", "sports", "music", "food", "tech"]
            var lines: [[UInt8]] = []
            lines.reserveCapacity(rows)
            var i = 0
            outer: for minute in 0... {
                for c in 0..<2_000 {
                    for rev in 1...3 {
                        let m = 1_795_219_200_000 + Int64(minute) * 60_000
                        let expose = (c % 50) + rev, click = (c % 7) * rev
                        let s = #"{"minute":\#(m),"content_id":"c\#(String(format: "%08d", c))","expose":\#(expose),"click":\#(click),"play":\#(rev),"play_ms":\#(rev * 1000),"like":0,"share":0,"comment":0,"report":0,"uv":\#(rev),"content":{"title":"t","category":"\#(categories[c % categories.count])","author_id":"a000001","region":"Guangdong"},"final":\#(rev == 3),"rev":\#(rev * 2),"emitted_at":0}"#
                        lines.append(Array(s.utf8))
                        i += 1
                        if i == rows { break outer }
                    }
                }
            }
            let t0 = ContinuousClock.now
            let decoded = lines.compactMap { l in l.withUnsafeBytes { Value.decodeRow($0) } }
            let decodeRate = Double(decoded.count) / (ContinuousClock.now - t0).seconds
            let query = try Query.parse(Self.sql)

            func feed(_ engines: [QueryEngine], _ decoded: [[String: Value]]) throws -> Double {
                let t = ContinuousClock.now
                var emitted = 0
                for start in stride(from: 0, to: decoded.count, by: 1_000) {
                    let batch = Array(decoded[start..<min(start + 1_000, decoded.count)])
                    for e in engines { emitted += try e.ingest(batch).count }
                }
                for e in engines { emitted += e.finish().count }
                blackHole(emitted)
                return (ContinuousClock.now - t).seconds
            }
            let one = try feed([QueryEngine(query)], decoded)
            let many = try feed((0..<concurrent).map { _ in QueryEngine(query) }, decoded)

            // Raw events: the reference workload's valid ones, spread over two hours of event time.
            var w = EventWorkload()
            w.seed = 7; w.contents = 10_000; w.users = 100_000
            w.eventsPerSecond = Double(events) / 7_200
            var gen = EventGenerator(w)
            var raw: [[UInt8]] = []
            raw.reserveCapacity(events)
            var line: [UInt8] = []
            while raw.count < events {
                line.removeAll(keepingCapacity: true)
                _ = gen.next(into: &line)
                raw.append(line)
            }
            let t1 = ContinuousClock.now
            let rawDecoded = raw.compactMap { l in l.withUnsafeBytes { Value.decodeRow($0) } }
            let rawDecodeRate = Double(rawDecoded.count) / (ContinuousClock.now - t1).seconds
            let catalog = Catalog(topology: try Topology.load(path: Topology.defaultPath()))
            let sessions = try feed([QueryEngine(try Query.parse(Self.sessionSQL, catalog: catalog))], rawDecoded)
            let funnel = try feed([QueryEngine(try Query.parse(Self.funnelSQL, catalog: catalog))], rawDecoded)
            print("{\"bench\":\"query\",\"rows\":\(decoded.count),\"decode_baseline_rows_per_s\":\(Int(decodeRate)),"
                + "\"one_query_rows_per_s\":\(Int(Double(decoded.count) / one)),"
                + "\"concurrent\":\(concurrent),\"concurrent_input_rows_per_s\":\(Int(Double(decoded.count) / many)),"
                + "\"concurrent_cost_over_one\":\(String(format: "%.2f", many / one)),\"target_rows_per_s\":1000000,"
                + "\"events\":\(rawDecoded.count),\"event_decode_baseline_per_s\":\(Int(rawDecodeRate)),"
                + "\"session_query_events_per_s\":\(Int(Double(rawDecoded.count) / sessions)),"
                + "\"funnel_query_events_per_s\":\(Int(Double(rawDecoded.count) / funnel))}")
        }
    }
}
