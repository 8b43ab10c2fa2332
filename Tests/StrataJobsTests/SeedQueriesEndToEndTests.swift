import Foundation
import StrataCore
import StrataDWM
import StrataDims
import StrataGen
import StrataJobs
import StrataKafka
import StrataQuery
import StrataRedis
import StrataSplit
import StrataTestSupport
import XCTest

/// The four seed questions (sql/queries/seed1…seed4) end to end on the local stack: generated
/// dimensions and events → ods.raw → split → dwm job → dwm.content_user / dws.content → the query
/// engine, checked window by window against answers computed here from the generated events.
final class SeedQueriesEndToEndTests: XCTestCase {
    var brokers = ""
    var redisURL = ""

    override func setUpWithError() throws {
        brokers = try TestEnvironment.brokers
        redisURL = try TestEnvironment.redisURL
    }
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let topology = try! Topology.load(path: root.appendingPathComponent("topology/topology.yaml").path)
    let contents = 300, users = 3_000
    let seed: UInt64 = 23

    // MARK: Pipeline (as in DWMEndToEndTests.prepare, with a slower event clock: several minutes)

    struct Env { let prefix: String; let lines: [[UInt8]] }

    func runPipeline(events: Int, eventsPerSecond: Double) throws -> Env {
        let prefix = "q\(UUID().uuidString.prefix(8).lowercased())."
        let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": brokers]))
        for (_, e) in try admin.createTopics(topology.topics.map { NewTopic(name: prefix + $0.name, partitions: $0.partitions) }) {
            if let e { throw e }
        }
        let storePath = NSTemporaryDirectory() + "strata-\(prefix)db"
        let store = try DimensionStoreFactory.open("sqlite:" + storePath)
        try store.migrate()
        let gen = DimensionGenerator(contents: contents, users: users, seed: seed)
        try DimensionWriter(store: store, brokers: brokers, kafka: [:], topicPrefix: prefix)
            .write(contents: gen.allContents(), users: gen.allUsers())
        var rc = try RedisConfig(url: redisURL)
        rc.maxAttempts = 2
        var cc = DimensionCacheConfig()
        cc.keyPrefix = "dim:\(prefix)"
        cc.filterFalsePositiveRate = 1e-6
        let cache = try DimensionCache(store: store, redis: try RedisClient(config: rc), config: cc)

        var w = EventWorkload()
        w.seed = seed; w.contents = contents; w.users = users
        w.eventsPerSecond = eventsPerSecond
        w.lateShare = 0
        w.duplicateShare = 0.03; w.unknownIdShare = 0.02; w.invalidIdShare = 0.01; w.malformedShare = 0.01
        var g = EventGenerator(w)
        var lines: [[UInt8]] = []
        var line: [UInt8] = []
        for _ in 0..<events { line.removeAll(keepingCapacity: true); _ = g.next(into: &line); lines.append(line) }

        let producer = try KafkaProducer(config: .producer(bootstrapServers: brokers))
        let raw = producer.topic(prefix + Topology.raw)
        for l in lines {
            let user = (try? JSONSerialization.jsonObject(with: Data(l)) as? [String: Any])?["user_id"] as? String ?? ""
            let key = Array(user.utf8)
            try key.withUnsafeBytes { k in try l.withUnsafeBytes { v in try producer.produce(to: raw, key: k, value: v) } }
        }
        try producer.flush()
        var so = SplitJob.Options(brokers: brokers)
        so.topicPrefix = prefix; so.groupId = prefix + "split"; so.instanceId = prefix + "split"; so.untilIdle = .seconds(2)
        try SplitJob(options: so, topology: topology).run()

        var o = DWMJob.Options(brokers: brokers)
        o.topicPrefix = prefix
        o.groupId = prefix + "dwm"
        o.instanceId = prefix + "0"
        o.untilIdle = .seconds(3)
        o.earlyIntervalMs = 500
        // The job starts against a backlog of several minutes of event time with the default
        // 2-minute allowed lateness: every assigned partition holds the watermark back until it
        // has delivered, so no on-time event may end in ods.late.
        let job = DWMJob(options: o, topology: topology, cache: cache)
        try job.run()
        XCTAssertTrue(job.stats.accounting.isBalanced, "\(job.stats.accounting)")
        print("dwm job: \(job.stats.accounting)")
        XCTAssertEqual(job.stats.accounting.late, 0, "no events past the allowed lateness (lateShare = 0)")
        print("topic prefix: \(prefix)")
        return Env(prefix: prefix, lines: lines)
    }

    /// Every row of a topic (all revisions), read_committed from the beginning to each
    /// partition's end, in read order.
    func readRows(_ topic: String) throws -> (rows: [[String: Value]], partitions: [Int]) {
        var rows: [[String: Value]] = [], parts: [Int] = []
        for m in try readToEndMarkers(brokers: brokers, topic: topic, timeout: .seconds(120)) {
            rows.append(try XCTUnwrap(Value.decodeRow(Data(m.value)), "undecodable row on \(topic)"))
            parts.append(Int(m.partition))
        }
        return (rows, parts)
    }

    /// Runs a seed query over the rows as one batch, then `finish()`; the final table of each
    /// window, by window end.
    ///
    /// It also runs them streamed in read order (batches of 500 with their partitions, as
    /// `strata query --from-beginning` feeds them): a manual assignment from the beginning reads
    /// one partition after another, so the first partition alone must not close windows the
    /// others still feed (the engine holds its watermark until every declared partition has
    /// delivered). Both runs must give the same final tables, with the default 2-minute grace:
    /// the dwm job wrote these topics catching up on minutes of input, publishing some minutes'
    /// final rows after later minutes' early rows; only final rows move the subscriber's
    /// watermark, so that does not close windows early.
    func run(_ file: String, text: String? = nil, rows: [[String: Value]], partitions: [Int],
             options: QueryOptions = QueryOptions()) throws -> (Query, [Int64: QueryResult]) {
        let text = try text ?? String(contentsOf: Self.root.appendingPathComponent("sql/queries/\(file)"), encoding: .utf8)
        let query = try Query.parse(text)
        func finals(batch: Int) throws -> [Int64: QueryResult] {
            let engine = QueryEngine(query, options: options)
            // As `strata query` does: declare the partitions before reading any of them.
            engine.expectPartitions(Array(Set(partitions)).sorted(), nowMs: 0)
            var out: [QueryResult] = []
            for i in stride(from: 0, to: rows.count, by: batch) {
                let j = min(i + batch, rows.count)
                out += try engine.ingest(Array(rows[i..<j]), partitions: Array(partitions[i..<j]))
            }
            out += engine.finish()
            if batch >= rows.count { XCTAssertEqual(engine.stats.lateRows, 0, "\(file): late rows") }
            XCTAssertNil(engine.failure, file)
            var finals: [Int64: QueryResult] = [:]
            for r in out where r.final {
                let end = try XCTUnwrap(r.windowEnd)
                XCTAssertEqual(r.windowStart.map { end - $0 }, 600_000 / (file.hasPrefix("seed3") ? 2 : 1), file)
                XCTAssertNil(finals[end], "\(file): window ending \(end) emitted final twice")
                finals[end] = r
            }
            return finals
        }
        let whole = try finals(batch: max(rows.count, 1))
        let streamed = try finals(batch: 500)
        let differing = Set(whole.keys).union(streamed.keys).filter { whole[$0] != streamed[$0] }.sorted()
        for end in differing {
            XCTFail("\(file) window ending \(end): one batch \(whole[end]?.rows ?? []) vs streamed \(streamed[end]?.rows ?? [])")
        }
        return (query, whole)
    }

    // MARK: Independent computation from the generated events

    struct Cell {
        var counts: [String: Int64] = [:]
        var playMs: Int64 = 0
        var winTs: Int64 = .min
        var winId = ""
        var strategy: String?
        subscript(_ a: String) -> Int64 { counts[a] ?? 0 }
    }
    struct CellKey: Hashable { let minute: Int64; let content: String; let user: String }

    /// DWM cells: known contents only, valid lines only, duplicates (same event_id in a cell) once;
    /// the strategy is that of the cell's greatest (ts, event_id) event.
    func cells(_ lines: [[UInt8]]) -> [CellKey: Cell] {
        var seen = Set<String>()
        var out: [CellKey: Cell] = [:]
        for l in lines {
            guard let o = try? JSONSerialization.jsonObject(with: Data(l)) as? [String: Any],
                  let id = o["event_id"] as? String, let ts = o["ts"] as? Int64, let action = o["action"] as? String,
                  let c = o["content_id"] as? String, let u = o["user_id"] as? String,
                  (1...64).contains(id.utf8.count), topology.actions.contains(action), c.count == 9, c.hasPrefix("c"), c.dropFirst().allSatisfy(\.isNumber),
                  let n = Int(c.dropFirst()), n < contents
            else { continue }
            let minute = ts - ts % 60_000
            guard seen.insert("\(minute)|\(c)|\(u)|\(id)").inserted else { continue }
            let key = CellKey(minute: minute, content: c, user: u)
            var cell = out[key] ?? Cell()
            cell.counts[action, default: 0] += 1
            if action == "play" { cell.playMs += o["duration_ms"] as? Int64 ?? 0 }
            if ts > cell.winTs || (ts == cell.winTs && cell.winId.utf8.lexicographicallyPrecedes(id.utf8)) {
                cell.winTs = ts; cell.winId = id; cell.strategy = o["strategy"] as? String
            }
            out[key] = cell
        }
        return out
    }

    /// Window ends (multiples of a minute) of the sliding windows of `length` containing `minute`.
    func windowEnds(_ minute: Int64, length: Int64) -> [Int64] {
        stride(from: minute + 60_000, through: minute + length, by: 60_000).map { $0 }
    }

    func round(_ x: Double, _ n: Int) -> Double {
        let p = pow(10.0, Double(n))
        return (x * p).rounded(.toNearestOrAwayFromZero) / p
    }

    // MARK: Comparison

    enum Cmp { case exact, approx, distinct }

    func compare(_ name: String, _ got: [Int64: QueryResult], _ exp: [Int64: [[Value]]], columns: [(String, Cmp)],
                 file: StaticString = #filePath, line: UInt = #line) {
        let ends = Set(got.keys).union(exp.keys).sorted()
        var compared = 0
        for end in ends {
            let g = got[end]?.rows ?? []
            let e = exp[end] ?? []
            if let r = got[end] { XCTAssertEqual(r.columns, columns.map(\.0), name, file: file, line: line) }
            guard g.count == e.count else {
                XCTFail("\(name) window ending \(end): \(g.count) rows, expected \(e.count)\n got \(g)\n exp \(e)", file: file, line: line)
                continue
            }
            for (i, (gr, er)) in zip(g, e).enumerated() {
                for (j, (col, cmp)) in columns.enumerated() {
                    let a = gr[j], b = er[j]
                    let ok: Bool
                    switch cmp {
                    case .exact: ok = a == b
                    case .approx:
                        if let x = a.number, let y = b.number { ok = abs(x - y) <= 1e-9 } else { ok = a.isNull && b.isNull }
                    case .distinct:
                        // Exact below the threshold (1024 distinct values per group), HyperLogLog beyond (within 2 %).
                        if let x = a.number, let y = b.number { ok = y <= 1024 ? x == y : abs(x - y) <= 0.02 * y } else { ok = false }
                    }
                    if !ok { XCTFail("\(name) window ending \(end) row \(i) column \(col): got \(a), expected \(b)\n got \(gr)\n exp \(er)", file: file, line: line) }
                }
                compared += 1
            }
        }
        XCTAssertGreaterThan(compared, 0, "\(name): no rows compared", file: file, line: line)
        print("\(name): \(got.count) final windows, \(compared) rows compared")
    }

    // MARK: Test

    func testSeedQueriesMatchIndependentAnswers() throws {
        let started = Date()
        // 30 000 events at 100/s: 5 minutes of event time.
        let env = try runPipeline(events: 30_000, eventsPerSecond: 100)
        let dwm = try readRows(env.prefix + Topology.dwm)
        let dws = try readRows(env.prefix + Topology.dws)
        do {  // read order: runs of one partition
            var runs: [(Int, Int)] = []
            for p in dwm.partitions { if runs.last?.0 == p { runs[runs.count - 1].1 += 1 } else { runs.append((p, 1)) } }
            print("dwm read order (partition, rows): \(runs.prefix(40))")
        }
        XCTAssertGreaterThan(dwm.rows.count, 0)
        XCTAssertGreaterThan(dws.rows.count, 0)

        let gen = DimensionGenerator(contents: contents, users: users, seed: seed)
        let contentDims = Dictionary(uniqueKeysWithValues: gen.allContents().map { ($0.contentId, $0) })
        let userDims = Dictionary(uniqueKeysWithValues: gen.allUsers().map { ($0.userId, $0) })
        let cells = cells(env.lines)
        let minutes = Set(cells.keys.map(\.minute))
        XCTAssertGreaterThanOrEqual(minutes.count, 4, "several minutes of event time")
        func str(_ s: String?) -> Value { s.map(Value.string) ?? .null }
        print("reports: \(cells.values.map { $0["report"] }.reduce(0, +)), on game content: \(cells.filter { contentDims[$0.key.content]?.category == "game" }.map { $0.value["report"] }.reduce(0, +))")

        // The DWM rows themselves (highest rev per identity) against the independent cells, so a
        // disagreement below can be told apart: pipeline or query engine.
        do {
            var best: [CellKey: [String: Value]] = [:]
            for r in dwm.rows {
                guard let m = r["minute"]?.exactInt, let c = r["content_id"]?.string, let u = r["user_id"]?.string else {
                    XCTFail("DWM row without identity: \(r)"); continue
                }
                let k = CellKey(minute: m, content: c, user: u)
                if (best[k]?["rev"]?.exactInt ?? -1) < (r["rev"]?.exactInt ?? 0) { best[k] = r }
            }
            XCTAssertEqual(Set(best.keys), Set(cells.keys), "DWM identities")
            var bad = 0
            for (k, r) in best {
                guard let c = cells[k] else { continue }
                var diffs: [String] = []
                for a in topology.actions where (r[a]?.exactInt ?? -1) != c[a] { diffs.append("\(a) \(r[a] ?? .null) vs \(c[a])") }
                if (r["play_ms"]?.exactInt ?? -1) != c.playMs { diffs.append("play_ms") }
                if (r["strategy"] ?? .null) != str(c.strategy) { diffs.append("strategy \(r["strategy"] ?? .null) vs \(c.strategy ?? "nil")") }
                if r["user"]?["gender"].string != userDims[k.user]?.gender { diffs.append("gender") }
                if r["content"]?["region"].string != contentDims[k.content]?.region { diffs.append("region") }
                if !diffs.isEmpty {
                    bad += 1
                    if bad <= 5 { XCTFail("DWM row \(k): \(diffs)") }
                }
            }
            XCTAssertEqual(bad, 0, "DWM rows differing from the independent cells")
        }

        // Seed 1: strategy × (gender, age band), last 10 minutes.
        do {
            struct G { var users = Set<String>(); var exposes: Int64 = 0, clicks: Int64 = 0, plays: Int64 = 0, playMs: Int64 = 0 }
            struct K: Hashable { let strategy: String?; let gender: String?; let age: String? }
            var acc: [Int64: [K: G]] = [:]
            for (k, c) in cells {
                let u = userDims[k.user]
                let key = K(strategy: c.strategy, gender: u?.gender, age: u?.ageBand)
                for end in windowEnds(k.minute, length: 600_000) {
                    var g = acc[end, default: [:]][key] ?? G()
                    g.users.insert(k.user); g.exposes += c["expose"]; g.clicks += c["click"]; g.plays += c["play"]; g.playMs += c.playMs
                    acc[end, default: [:]][key] = g
                }
            }
            func lt(_ a: String?, _ b: String?) -> Bool? {   // ascending, NULLs last; nil when equal
                if a == b { return nil }
                guard let a else { return false }
                guard let b else { return true }
                return a.utf8.lexicographicallyPrecedes(b.utf8)
            }
            var exp: [Int64: [[Value]]] = [:]
            for (end, groups) in acc {
                let rows = groups.filter { $0.value.exposes > 0 }.map { (k, g) in
                    (k, g, round(Double(g.clicks) / Double(g.exposes), 4))
                }.sorted { a, b in
                    if let r = lt(a.0.strategy, b.0.strategy) { return r }
                    if a.2 != b.2 { return a.2 > b.2 }
                    if let r = lt(a.0.gender, b.0.gender) { return r }
                    return lt(a.0.age, b.0.age) ?? false
                }
                exp[end] = rows.map { (k, g, ctr) in
                    [str(k.strategy), str(k.gender), str(k.age), .int(Int64(g.users.count)), .int(g.exposes), .int(g.clicks),
                     .double(ctr), .int(g.plays), .double(round(Double(g.playMs) / 1000.0 / Double(g.users.count), 1))]
                }
            }
            let (q, got) = try run("seed1_strategy_by_crowd.sql", rows: dwm.rows, partitions: dwm.partitions)
            XCTAssertEqual(q.source, Topology.dwm)
            XCTAssertTrue(exp.values.contains { rows in rows.contains { $0[0].isNull == false } }, "rows with a strategy")
            compare("seed1", got, exp, columns: [("strategy", .exact), ("gender", .exact), ("age_band", .exact), ("users", .distinct),
                                                 ("exposes", .exact), ("clicks", .exact), ("ctr", .approx), ("plays", .exact),
                                                 ("play_s_per_user", .approx)])
        }

        // Seed 2: Guangdong users × Guangdong content, heat, top 20.
        do {
            struct G { var heat: Int64 = 0, plays: Int64 = 0; var users = Set<String>() }
            var acc: [Int64: [String: G]] = [:]
            for (k, c) in cells {
                guard userDims[k.user]?.province == "Guangdong", contentDims[k.content]?.region == "Guangdong" else { continue }
                for end in windowEnds(k.minute, length: 600_000) {
                    var g = acc[end, default: [:]][k.content] ?? G()
                    g.heat += c["click"] + c["play"] + c["like"] + c["share"] + c["comment"]
                    g.plays += c["play"]; g.users.insert(k.user)
                    acc[end, default: [:]][k.content] = g
                }
            }
            var exp: [Int64: [[Value]]] = [:]
            for (end, groups) in acc {
                let rows = groups.filter { $0.value.heat > 0 }
                    .sorted { $0.value.heat != $1.value.heat ? $0.value.heat > $1.value.heat : $0.key < $1.key }.prefix(20)
                if rows.isEmpty { continue }
                exp[end] = rows.map { (id, g) in
                    let d = contentDims[id]!
                    return [.string(id), .string(d.title), .string(d.category), .int(g.heat), .int(g.plays), .int(Int64(g.users.count))]
                }
            }
            XCTAssertFalse(exp.isEmpty, "some Guangdong heat")
            let (_, got) = try run("seed2_guangdong_hot_content.sql", rows: dwm.rows, partitions: dwm.partitions)
            compare("seed2", got, exp, columns: [("content_id", .exact), ("title", .exact), ("category", .exact), ("heat", .exact),
                                                 ("plays", .exact), ("users", .distinct)])
        }

        // Seed 3: reported game content (DWS), last 5 minutes, top 20. Reports are rare (~0.1 % of
        // events) and few land on game content, so the same query is also run over every category
        // with LIMIT 3, where the ranking (reports DESC, author_id, then the key) and LIMIT bite.
        for (category, limit) in [("game" as String?, 20), (nil, 3)] {
            struct G { var reports: Int64 = 0, exposes: Int64 = 0 }
            var acc: [Int64: [String: G]] = [:]
            for (k, c) in cells where category == nil || contentDims[k.content]?.category == category {
                for end in windowEnds(k.minute, length: 300_000) {
                    var g = acc[end, default: [:]][k.content] ?? G()
                    g.reports += c["report"]; g.exposes += c["expose"]
                    acc[end, default: [:]][k.content] = g
                }
            }
            var exp: [Int64: [[Value]]] = [:]
            for (end, groups) in acc {
                let rows = groups.filter { $0.value.reports > 0 }.sorted { a, b in
                    if a.value.reports != b.value.reports { return a.value.reports > b.value.reports }
                    let aa = contentDims[a.key]!.authorId, ba = contentDims[b.key]!.authorId
                    if aa != ba { return aa < ba }
                    return a.key < b.key
                }.prefix(limit)
                if rows.isEmpty { continue }
                exp[end] = rows.map { (id, g) in
                    let d = contentDims[id]!
                    return [.string(id), .string(d.title), .string(d.authorId), .int(g.reports), .int(g.exposes)]
                }
            }
            XCTAssertFalse(exp.isEmpty, "some reported content (\(category ?? "any"))")
            var text = try String(contentsOf: Self.root.appendingPathComponent("sql/queries/seed3_reported_game_content.sql"), encoding: .utf8)
            if category == nil {
                XCTAssertNotNil(text.range(of: "WHERE content.category = 'game'\n"))
                text = text.replacingOccurrences(of: "WHERE content.category = 'game'\n", with: "")
                    .replacingOccurrences(of: "LIMIT 20", with: "LIMIT \(limit)")
                XCTAssertTrue(exp.values.contains { $0.count == limit } && acc.values.contains { $0.values.filter { $0.reports > 0 }.count > limit },
                              "LIMIT cuts some window")
            }
            let (q, got) = try run("seed3_reported_game_content.sql", text: text, rows: dws.rows, partitions: dws.partitions)
            XCTAssertEqual(q.source, Topology.dws)
            compare(category == nil ? "seed3 (all categories, LIMIT \(limit))" : "seed3", got, exp,
                    columns: [("content_id", .exact), ("title", .exact), ("author_id", .exact), ("reports", .exact), ("exposes", .exact)])
        }

        // Seed 4: distinct consuming users, last 10 minutes.
        do {
            struct G { var users = Set<String>(); var plays: Int64 = 0, clicks: Int64 = 0 }
            var acc: [Int64: G] = [:]
            for (k, c) in cells where c["play"] > 0 || c["click"] > 0 {
                for end in windowEnds(k.minute, length: 600_000) {
                    acc[end, default: G()].users.insert(k.user)
                    acc[end, default: G()].plays += c["play"]
                    acc[end, default: G()].clicks += c["click"]
                }
            }
            let exp = acc.mapValues { g -> [[Value]] in [[.int(Int64(g.users.count)), .int(g.plays), .int(g.clicks)]] }
            let (_, got) = try run("seed4_active_users.sql", rows: dwm.rows, partitions: dwm.partitions)
            print("seed4 users per window: \(acc.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.users.count)" })")
            compare("seed4", got, exp, columns: [("users", .distinct), ("plays", .exact), ("clicks", .exact)])
            XCTAssertTrue(acc.values.contains { $0.users.count > 1024 }, "some window past the exact threshold (HyperLogLog)")
            for (end, r) in got.sorted(by: { $0.key < $1.key }) where (acc[end]?.users.count ?? 0) > 1024 {
                let e = Double(acc[end]!.users.count), x = r.rows.first?[0].number ?? .nan
                print("seed4 HyperLogLog window ending \(end): \(x) for \(Int(e)) (\(String(format: "%+.2f", 100 * (x - e) / e)) %)")
            }
            // With the exact threshold above every window's count, users must match exactly.
            let (_, exact) = try run("seed4_active_users.sql", rows: dwm.rows, partitions: dwm.partitions,
                                     options: QueryOptions(distinctExactThreshold: 1 << 20))
            compare("seed4 (exact distinct)", exact, exp, columns: [("users", .exact), ("plays", .exact), ("clicks", .exact)])
        }
        print("SeedQueriesEndToEndTests: \(dwm.rows.count) DWM rows, \(dws.rows.count) DWS rows, \(minutes.count) minutes, \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }
}
