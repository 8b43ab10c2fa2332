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
            abstract: "Query engine rows/s on recorded-style DWS rows (several revisions per identity), beside decoding every field into dictionaries.",
            discussion: """
            Rows are generated in memory as the dws.content JSON contract (3 revisions per (minute, content)) and \
            decoded into slots (only the fields the query reads), in batches of 1 000. Reported: decoding every field \
            into dictionaries (the baseline), slot decoding alone, one filtered grouped aggregate with ORDER BY/LIMIT \
            on decoded batches, the same from bytes to results, and --concurrent different queries sharing one \
            decoded stream (decode included): as separate engines, then as one QuerySet (identities and \
            revisions looked up once per row for all), its rate as a fraction of one query's (decode included). Then --events raw \
            events (the reference generator's, as the micro-queues carry them): their slot decoding, and on decoded \
            batches a session query (sessions per app version per hour) and a funnel query (expose → click → long \
            play → like per strategy, 1 hour). Times are the bench thread's CPU time (time off the CPU on a \
            shared machine is not counted). Build with -c release.
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
            // Baseline: every field of every row decoded into a dictionary (the old row model).
            let t0 = ThreadCPU.now
            var decodedAll = 0
            for l in lines { if l.withUnsafeBytes({ Value.decodeRow($0) }) != nil { decodedAll += 1 } }
            let decodeRate = Double(decodedAll) / (ThreadCPU.now - t0)
            let query = try Query.parse(Self.sql)
            let layout = RowLayout([query])

            /// Decodes `lines` into batches of 1 000 rows of `layout`.
            func decode(_ lines: [[UInt8]], _ layout: RowLayout) -> [RowBatch] {
                var out: [RowBatch] = []
                var batch = RowBatch(layout: layout, capacity: 1_000)
                for l in lines {
                    l.withUnsafeBytes { _ = batch.append(json: $0) }
                    if batch.count == 1_000 { out.append(batch); batch = RowBatch(layout: layout, capacity: 1_000) }
                }
                if !batch.isEmpty { out.append(batch) }
                return out
            }
            func feed(_ engines: [QueryEngine], _ batches: [RowBatch]) throws -> Double {
                let t = ThreadCPU.now
                var emitted = 0
                for batch in batches { for e in engines { emitted += try e.ingest(batch).count } }
                for e in engines { emitted += e.finish().count }
                blackHole(emitted)
                return (ThreadCPU.now - t)
            }
            // Slot decoding alone, then bytes to results (decode + the query, one reused batch).
            let t2 = ThreadCPU.now
            let batches = decode(lines, layout)
            let slotDecode = (ThreadCPU.now - t2)
            let one = try feed([QueryEngine(query, layout: layout)], batches)
            let t3 = ThreadCPU.now
            let engine = QueryEngine(query, layout: layout)
            var batch = RowBatch(layout: layout, capacity: 1_000)
            var emitted = 0
            for l in lines {
                l.withUnsafeBytes { _ = batch.append(json: $0) }
                if batch.count == 1_000 { emitted += try engine.ingest(batch).count; batch.removeAll() }
            }
            if !batch.isEmpty { emitted += try engine.ingest(batch).count }
            emitted += engine.finish().count
            blackHole(emitted)
            let endToEnd = (ThreadCPU.now - t3)
            // --concurrent different queries (thresholds and categories vary) over one decoded stream.
            let variants = try (0..<concurrent).map { i in
                try Query.parse(Self.sql.replacingOccurrences(of: "expose > 0", with: "expose > \(i % 10)")
                    .replacingOccurrences(of: "'sports'", with: "'\(categories[i % categories.count])'"))
            }
            let shared = RowLayout(variants)
            let t4 = ThreadCPU.now
            let sharedBatches = decode(lines, shared)
            let manyDecode = (ThreadCPU.now - t4)
            // Each a separate engine (each does its own upsert bookkeeping: the baseline), then
            // one QuerySet (the bookkeeping once per row for all).
            let separate = try feed(variants.map { QueryEngine($0, layout: shared) }, sharedBatches) + manyDecode
            let set = QuerySet(layout: shared, events: false)
            for v in variants { set.add(v) }
            let t5 = ThreadCPU.now
            var setEmitted = 0
            for batch in sharedBatches { for r in set.ingest(batch) { setEmitted += r.count } }
            for r in set.finish() { setEmitted += r.count }
            blackHole(setEmitted)
            let many = (ThreadCPU.now - t5) + manyDecode
            let oneWithDecode = one + slotDecode
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
            let t1 = ThreadCPU.now
            var rawDecodedAll = 0
            for l in raw { if l.withUnsafeBytes({ Value.decodeRow($0) }) != nil { rawDecodedAll += 1 } }
            let rawDecodeRate = Double(rawDecodedAll) / (ThreadCPU.now - t1)
            let catalog = Catalog(topology: try Topology.load(path: Topology.defaultPath()))
            /// The query's time on decoded batches, and its slot decoding's.
            func eventQuery(_ sql: String) throws -> (query: Double, decode: Double) {
                let q = try Query.parse(sql, catalog: catalog)
                let l = RowLayout([q])
                let t = ThreadCPU.now
                let b = decode(raw, l)
                let decoding = (ThreadCPU.now - t)
                return (try feed([QueryEngine(q, layout: l)], b), decoding)
            }
            let sessions = try eventQuery(Self.sessionSQL)
            let funnel = try eventQuery(Self.funnelSQL)
            let rows = Double(lines.count)
            print("{\"bench\":\"query\",\"clock\":\"thread_cpu\",\"rows\":\(lines.count),\"dictionary_decode_rows_per_s\":\(Int(decodeRate)),"
                + "\"slot_decode_rows_per_s\":\(Int(rows / slotDecode)),"
                + "\"one_query_rows_per_s\":\(Int(rows / one)),\"bytes_to_results_rows_per_s\":\(Int(rows / endToEnd)),"
                + "\"concurrent\":\(concurrent),\"concurrent_separate_rows_per_s\":\(Int(rows / separate)),"
                + "\"concurrent_input_rows_per_s\":\(Int(rows / many)),"
                + "\"concurrent_rate_over_one\":\(String(format: "%.3f", oneWithDecode / many)),\"target_rows_per_s\":1000000,"
                // The same rates over slot decoding's (unchanged code in the same process): a yardstick
                // for comparing builds when the machine's speed drifts between runs.
                + "\"one_query_over_slot_decode\":\(String(format: "%.3f", slotDecode / one)),"
                + "\"concurrent_over_slot_decode\":\(String(format: "%.4f", manyDecode / many)),"
                + "\"events\":\(raw.count),\"event_dictionary_decode_per_s\":\(Int(rawDecodeRate)),"
                + "\"event_slot_decode_per_s\":\(Int(Double(raw.count) / sessions.decode)),"
                + "\"session_query_events_per_s\":\(Int(Double(raw.count) / sessions.query)),"
                + "\"funnel_query_events_per_s\":\(Int(Double(raw.count) / funnel.query))}")
        }
    }
}
