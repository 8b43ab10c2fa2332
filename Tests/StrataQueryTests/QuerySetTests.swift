import Foundation
import StrataTestSupport
import XCTest
@testable import StrataQuery

/// A `QuerySet` shares one table of identities and one watermark among its queries; each query
/// must still emit exactly what it emits alone (the engine alone is checked against brute force in
/// EvaluatorTests, EventStreamTests and SequenceTests). Workloads close windows mid-stream, so
/// late rows, stale revisions, duplicates, forgotten identities and idle partitions all happen.
final class QuerySetTests: XCTestCase {
    let catalog = Catalog(topology: CatalogTests.topology)

    static let upsertQueries = [
        EvaluatorTests.q1,
        """
        SELECT content.region AS region, sum(click) AS clicks, sum(report) AS reports FROM dwm.content_user
        WINDOW SLIDING 3 MINUTES EVERY 1 MINUTE GROUP BY content.region HAVING clicks > 10 ORDER BY clicks DESC LIMIT 1
        """,
        "SELECT count(*) AS n, sum(play) AS plays FROM dwm.content_user WHERE content.category IN ('game', 'music')",
        "SELECT content_id, sum(expose) AS e FROM dwm.content_user WINDOW TUMBLING 2 MINUTES GROUP BY content_id ORDER BY e DESC LIMIT 5 EMIT FINAL",
        "SELECT content_id, user_id, click FROM dwm.content_user WHERE click > 6 WINDOW TUMBLING 1 MINUTE",
        "SELECT user_id, count(*) AS n FROM dwm.content_user WHERE expose > 12 WINDOW TUMBLING 10 MINUTES GROUP BY user_id EMIT EVERY 1 SECOND",
    ]

    /// Deliveries roughly in minute order (jitter of up to 3 minutes, so some rows come after
    /// their window closed), each with a partition.
    func upsertDeliveries(seed: UInt64) -> [(row: [String: Value], partition: Int)] {
        var rng = SeededRandom(seed: seed &* 977)
        let rows = Workload(seed: seed, identities: 1_500, minutes: 30, withUsers: true).deliveries
        let keyed = rows.map { ($0, int($0, "minute") + Int64(rng.below(3 * 60_000))) }
        return keyed.sorted { $0.1 < $1.1 }.map { r in
            (r.0, Int(String(describing: r.0["content_id"]!).utf8.reduce(0) { $0 &+ Int($1) }) % 3)
        }
    }

    /// Runs `queries` alone and as one set over the same batches, with the same clock; compares
    /// every emission and the final stats. Returns the engines run alone.
    @discardableResult
    func compare(_ queries: [Query], limits: [QueryLimits], options: QueryOptions,
                 batches: [(rows: [[String: Value]], partitions: [Int])], expect: [Int]) throws -> [QueryEngine] {
        let alone = zip(queries, limits).map { QueryEngine($0, limits: $1, options: options) }
        let set = QuerySet(layout: RowLayout(queries), events: queries[0].plan.events, options: options)
        let members = zip(queries, limits).map { set.add($0, limits: $1) }
        for e in alone { e.expectPartitions(expect, nowMs: 0) }
        set.expectPartitions(expect, nowMs: 0)
        var now: Int64 = 0
        for (b, batch) in batches.enumerated() {
            let shared = set.ingest(RowBatch(layout: set.layout, rows: batch.rows, partitions: batch.partitions))
            for (i, e) in alone.enumerated() {
                let own: [QueryResult]
                do { own = try e.ingest(batch.rows, partitions: batch.partitions) } catch { own = [] }
                XCTAssertEqual(shared[i], own, "batch \(b), query \(i)")
                XCTAssertEqual(members[i].failure, e.failure, "batch \(b), query \(i)")
            }
            now += 700
            let ticks = set.tick(nowMs: now)
            for (i, e) in alone.enumerated() { XCTAssertEqual(ticks[i], e.tick(nowMs: now), "tick after batch \(b), query \(i)") }
        }
        let finals = set.finish()
        for (i, e) in alone.enumerated() {
            XCTAssertEqual(finals[i], e.finish(), "finish, query \(i)")
            XCTAssertEqual(members[i].stats, e.stats, "stats, query \(i)")
        }
        return alone
    }

    func testASetEmitsWhatEachQueryEmitsAloneOverAnUpsertStream() throws {
        let queries = try Self.upsertQueries.map { try Query.parse($0) }
        for seed: UInt64 in 1...3 {
            var batches: [(rows: [[String: Value]], partitions: [Int])] = []
            for chunk in splitIntoBatches(upsertDeliveries(seed: seed), seed: seed, maxBatch: 120) {
                batches.append((chunk.map(\.row), chunk.map(\.partition)))
            }
            let alone = try compare(queries, limits: queries.map { _ in QueryLimits() }, options: QueryOptions(graceMs: 60_000),
                                    batches: batches, expect: [0, 1, 2])
            XCTAssertGreaterThan(alone[0].stats.lateRows, 0, "seed \(seed): the workload must make rows late")
            XCTAssertGreaterThan(alone[0].stats.staleRevisions, 0, "seed \(seed): and revisions stale")
        }
    }

    func testASetEmitsWhatEachQueryEmitsAloneOverEvents() throws {
        let (_, deliveries) = EventStreamTests.workload(seed: 11, events: 5_000, minutes: 20, duplicates: 700)
        let queries = try [
            "SELECT action, count(*) AS n, count_distinct(user_id) AS users FROM ods.expose, ods.click, ods.play WINDOW TUMBLING 2 MINUTES GROUP BY action EMIT FINAL",
            "SELECT page, sessions(user_id, 3 MINUTES) AS s, bounce_rate(user_id, 3 MINUTES) AS b FROM ods.expose, ods.click, ods.play WINDOW TUMBLING 10 MINUTES GROUP BY page",
            "SELECT funnel(user_id, 5 MINUTES, action = 'expose', action = 'click', action = 'play') AS f FROM ods.expose, ods.click, ods.play WINDOW TUMBLING 10 MINUTES",
            "SELECT event_id, content_id FROM ods.click WHERE user_id = 'u7' WINDOW TUMBLING 1 MINUTE",
        ].map { try Query.parse($0, catalog: catalog) }
        var batches: [(rows: [[String: Value]], partitions: [Int])] = []
        for chunk in splitIntoBatches(deliveries, seed: 5, maxBatch: 300) {
            batches.append((chunk.map { EventStreamTests.row($0.0) }, chunk.map(\.1)))
        }
        let alone = try compare(queries, limits: queries.map { _ in QueryLimits() }, options: QueryOptions(graceMs: 30_000),
                                batches: batches, expect: Array(0..<12))
        XCTAssertEqual(alone[0].stats.duplicateEvents + alone[0].stats.lateRows + alone[0].stats.rowsApplied, deliveries.count)
        XCTAssertGreaterThan(alone[0].stats.duplicateEvents, 0)
    }

    func testAQueryThatFailsALimitStopsAloneAndTheOthersGoOn() throws {
        let queries = try Self.upsertQueries.prefix(4).map { try Query.parse($0) }
        var limits = queries.map { _ in QueryLimits() }
        limits[3] = QueryLimits(maxGroups: 10)  // GROUP BY content_id: 40 contents
        var batches: [(rows: [[String: Value]], partitions: [Int])] = []
        for chunk in splitIntoBatches(upsertDeliveries(seed: 9), seed: 9, maxBatch: 80) {
            batches.append((chunk.map(\.row), chunk.map(\.partition)))
        }
        let alone = try compare(Array(queries), limits: limits, options: QueryOptions(graceMs: 60_000), batches: batches, expect: [0, 1, 2])
        guard case .limitExceeded(.groups, _, _)? = alone[3].failure else { return XCTFail("query 3 must fail on max groups") }
        XCTAssertNil(alone[0].failure)
    }

    func testIdentitiesAreForgottenOnceNoQueryCanUseThem() throws {
        // A 1-minute and a 10-minute window: identities live as long as the longer one needs them.
        let queries = try [
            "SELECT sum(click) AS c FROM dwm.content_user WINDOW TUMBLING 1 MINUTE",
            "SELECT sum(click) AS c FROM dwm.content_user WINDOW TUMBLING 10 MINUTES",
        ].map { try Query.parse($0) }
        let set = QuerySet(queries, options: QueryOptions(graceMs: 0))
        var rows: [[String: Value]] = []
        for minute in 0..<60 {
            for c in 0..<50 {
                let m = (28_000_000 + Int64(minute)) * minuteMs
                rows.append(record(minute: m, content: "c\(c)", user: "u1", rev: 1, click: 1))
            }
        }
        var finals = 0
        for chunk in stride(from: 0, to: rows.count, by: 50) {
            for r in set.ingest(RowBatch(layout: set.layout, rows: Array(rows[chunk..<(chunk + 50)]))) { finals += r.filter(\.final).count }
        }
        XCTAssertGreaterThan(finals, 50, "windows closed while rows came")
        // 3 000 identities went by; the table holds at most the 10-minute window's (plus the minute
        // being read), reusing the indexes of forgotten ones.
        XCTAssertLessThanOrEqual(set.table.capacity, 12 * 50)
        XCTAssertGreaterThan(set.table.capacity, 9 * 50)
        // A late revision of a forgotten identity is late for both queries, not a new row.
        _ = set.ingest(RowBatch(layout: set.layout, rows: [record(minute: 28_000_000 * minuteMs, content: "c1", user: "u1", rev: 2, click: 5)]))
        XCTAssertEqual(set.engines.map(\.stats.lateRows), [1, 1])
    }

    // MARK: - Shared row terms

    /// 70 filtered queries: about 100 distinct WHERE conjuncts (so the later queries' conditions
    /// go past the 64 shared bits into their residual), each passing a fair share of rows, GROUP BY
    /// lists shared by some and not others, argument expressions alike but for their literals'
    /// types (`click + 1` sums integers, `click + 1.0` floats: sharing them would change the
    /// results), and every query filtered, so revisions no query takes are skipped by the terms.
    /// Each must emit what it emits alone.
    static var manyQueries: [String] {
        (0..<70).map { i in
            let key = ["content.category", "content_id", "content.region"][i % 3]
            let argument = i % 2 == 0 ? "click + 1" : "click + 1.0"
            return """
                SELECT \(key) AS k, sum(\(argument)) AS s, count(*) AS n, max(play) AS p FROM dwm.content_user
                WHERE expose > \(i % 13) AND click >= \(i % 7) AND play_ms > \(i * 600)\(i % 5 == 0 ? " AND content.category <> 'news'" : "")
                WINDOW TUMBLING \(i % 4 == 0 ? "5 MINUTES" : "2 MINUTES") GROUP BY \(key)
                """
        }
    }

    func testManyQueriesSharingTermsEmitWhatEachEmitsAlone() throws {
        let queries = try Self.manyQueries.map { try Query.parse($0) }
        let set = QuerySet(queries)
        XCTAssertGreaterThan(set.terms.conjunctCount, 64, "the workload must use the residual path")
        var batches: [(rows: [[String: Value]], partitions: [Int])] = []
        for chunk in splitIntoBatches(upsertDeliveries(seed: 21), seed: 21, maxBatch: 150) {
            batches.append((chunk.map(\.row), chunk.map(\.partition)))
        }
        let alone = try compare(queries, limits: queries.map { _ in QueryLimits() }, options: QueryOptions(graceMs: 60_000),
                                batches: batches, expect: [0, 1, 2])
        XCTAssertGreaterThan(alone.map(\.stats.emissions).reduce(0, +), 500)
        XCTAssertGreaterThan(alone[0].stats.rowsApplied, 1_000)
        // The last query's conditions are residual; it must still take rows.
        let passing = upsertDeliveries(seed: 21).filter {
            int($0.row, "expose") > 69 % 13 && int($0.row, "click") >= 69 % 7 && int($0.row, "play_ms") > 69 * 600
        }
        XCTAssertGreaterThan(passing.count, 20)
    }

    /// A query reading a field the set's layout lacks, then a layout with every slot moved, rebind
    /// every term mid-stream (the residual conditions past the 64 shared bits included); the
    /// queries already running go on emitting what they emit alone.
    func testANewFieldMidStreamRebindsTheSharedTerms() throws {
        let queries = try Self.manyQueries.map { try Query.parse($0) }
        let set = QuerySet(queries)
        let alone = queries.map { QueryEngine($0) }
        let chunks = splitIntoBatches(upsertDeliveries(seed: 8), seed: 8, maxBatch: 150).map { $0.map(\.row) }
        let widthBefore = set.layout.width
        for (b, rows) in chunks.enumerated() {
            if b == chunks.count / 2 {
                set.add(try Query.parse("SELECT content.author_id AS a, count(*) AS n FROM dwm.content_user WHERE click > 3 GROUP BY content.author_id"))
                XCTAssertGreaterThan(set.layout.width, widthBefore, "the new field must change the layout")
                // And a layout with every slot moved (as a reader decoding in its own order would have).
                set.rebind(RowLayout(paths: set.layout.paths.reversed()))
            }
            let out = set.ingest(RowBatch(layout: set.layout, rows: rows))
            for (i, e) in alone.enumerated() { XCTAssertEqual(out[i], try e.ingest(rows), "batch \(b), query \(i)") }
        }
        XCTAssertGreaterThan(alone[69].stats.rowsApplied, 1_000)
    }

    /// A query removed from a set gives its terms back; one added mid-stream reads from then on,
    /// exactly as an engine started at that batch, whatever the terms held for identities before
    /// (identities go on getting revisions, in other groups, across the join). Rows come in minute
    /// order without re-deliveries, so the set's earlier watermark and revisions make no row late
    /// or stale that the engine started later would take.
    func testQueriesRemovedAndAddedMidStream() throws {
        let queries = try Self.manyQueries.prefix(6).map { try Query.parse($0) }
        var seen = Set<String>()
        let rows = Workload(seed: 4, identities: 1_500, minutes: 30, withUsers: true).deliveries
            .filter { seen.insert("\(int($0, "minute"))|\($0["content_id"]!)|\($0["user_id"]!)|\(int($0, "rev"))").inserted }
            .sorted { (int($0, "minute"), int($0, "rev")) < (int($1, "minute"), int($1, "rev")) }
        let chunks = stride(from: 0, to: rows.count, by: 100).map { Array(rows[$0..<min($0 + 100, rows.count)]) }
        let options = QueryOptions(graceMs: 0)
        let set = QuerySet(layout: RowLayout(queries), events: false, options: options)
        var members = queries.map { set.add($0) }
        // Query 0 stays throughout: compared with an engine alone from the start.
        var late: [QueryEngine?] = [QueryEngine(queries[0], options: options)] + Array(repeating: nil, count: queries.count - 1)
        for (b, rows) in chunks.enumerated() {
            if b == chunks.count / 3 {
                // Take out queries 1 and 2 (query 2's terms go unused), then put query 2 back.
                set.remove(members[1])
                set.remove(members[2])
                members[2] = set.add(queries[2])
                late[2] = QueryEngine(queries[2], options: options)
            }
            if b == chunks.count / 2 {
                // Query 1's terms come back after going unused for a while.
                members[1] = set.add(queries[1])
                late[1] = QueryEngine(queries[1], options: options)
            }
            let out = set.ingest(RowBatch(layout: set.layout, rows: rows))
            for (i, e) in late.enumerated() {
                guard let e else { continue }
                let position = set.engines.firstIndex { $0 === members[i] }!
                XCTAssertEqual(out[position], try e.ingest(rows), "batch \(b), query \(i)")
            }
        }
        XCTAssertEqual(set.engines.count, 6)
        XCTAssertEqual(late[0]!.stats.lateRows + late[0]!.stats.staleRevisions, 0)
        XCTAssertGreaterThan(late[1]!.stats.rowsApplied, 1_000)
    }

    /// Queries with the same window and GROUP BY share group numbers; others have their own.
    func testQueriesWithTheSameWindowAndKeysShareGroupNumbers() throws {
        let sql = "SELECT content_id, sum(click) AS c FROM dwm.content_user WHERE expose > %d WINDOW TUMBLING 2 MINUTES GROUP BY content_id"
        let set = QuerySet(try [1, 5, 9].map { try Query.parse(String(format: sql, $0)) }
            + [try Query.parse("SELECT content_id, sum(click) AS c FROM dwm.content_user WINDOW TUMBLING 3 MINUTES GROUP BY content_id"),
               try Query.parse("SELECT content_id, user_id, click FROM dwm.content_user WINDOW TUMBLING 2 MINUTES")])
        let indexes = set.engines.map { set.terms.groupIndex($0.binding) }
        XCTAssertTrue(indexes[0] === indexes[1] && indexes[1] === indexes[2])
        XCTAssertFalse(indexes[3] === indexes[0], "another window length")
        XCTAssertFalse(indexes[4] === indexes[0], "a projection numbers its own rows")
        XCTAssertFalse(indexes[4].sharesRows)
    }

    /// A number keeps its key for the whole batch, even once no query holds it (another query may
    /// still find it for the same row); it is freed between batches and handed out again.
    func testGroupNumbersAreFreedBetweenBatchesOnly() {
        let index = GroupIndex(sharesRows: true)
        let w = index.window(0)
        let a: [Value] = [.string("a")], b: [Value] = [.string("b")]
        let ia = w.id(a, hash: GroupKey.hash(a))
        w.hold(ia)
        w.release(ia)
        XCTAssertEqual(w.id(a, hash: GroupKey.hash(a)), ia, "still a's within the batch")
        let ib = w.id(b, hash: GroupKey.hash(b))
        XCTAssertNotEqual(ib, ia, "not reused within the batch")
        w.hold(ib)
        index.prepare(count: 1)
        XCTAssertEqual(w.keys[Int(ia)], [], "freed at the next batch")
        let ic = w.id([.string("c")], hash: GroupKey.hash([Value.string("c")]))
        XCTAssertEqual(ic, ia, "and handed out again")
        XCTAssertEqual(w.id(b, hash: GroupKey.hash(b)), ib, "a held number stays")
        XCTAssertEqual(w.capacity, 2)
        // Held again before the batch ended: kept.
        w.hold(ic)
        w.release(ic)
        w.hold(ic)
        index.prepare(count: 1)
        XCTAssertEqual(w.keys[Int(ic)], [.string("c")])
    }

    /// `Value` equates 6 and 6.0, so the comparisons above cannot see a type mixed up by sharing.
    func testArgumentsAlikeButForTheirTypesAreNotShared() throws {
        let set = QuerySet(try [
            "SELECT sum(click + 1) AS s FROM dwm.content_user",
            "SELECT sum(click + 1.0) AS s FROM dwm.content_user",
        ].map { try Query.parse($0) })
        let out = set.ingest(RowBatch(layout: set.layout, rows: [record(minute: 28_000_000 * minuteMs, content: "c1", rev: 1, click: 5)]))
        guard case .int(6)? = out[0].first?.rows.first?.first else { return XCTFail("\(out[0])") }
        guard case .double(6)? = out[1].first?.rows.first?.first else { return XCTFail("\(out[1])") }
    }

    func testSharingKeysTellApartWhatComputesDifferently() throws {
        func key(_ where: String) throws -> String? {
            try Query.parse("SELECT count(*) AS n FROM dws.content WHERE \(`where`)").plan.filter?.sharingKey
        }
        XCTAssertEqual(try key("click + 1 > 2"), try key("click + 1 > 2"))
        XCTAssertEqual(try key("content.category IN ('a', 'b')"), try key("content.category IN ('b', 'a')"))
        XCTAssertNotEqual(try key("click + 1 > 2"), try key("click + 1.0 > 2"))
        XCTAssertNotEqual(try key("click > 2"), try key("click >= 2"))
        XCTAssertNotEqual(try key("click > 2"), try key("expose > 2"))
        XCTAssertNotEqual(try key("content.category = '1'"), try key("content.category = 1"))
        XCTAssertNotEqual(try key("content.category LIKE 'a%'"), try key("content.category LIKE '%a'"))
        XCTAssertNotEqual(try key("content.category IN ('a', 'b')"), try key("content.category NOT IN ('a', 'b')"))
        // Field paths cannot run together: ["ab", "c"] is not ["a", "bc"].
        XCTAssertNotEqual(CExpr.field(["ab", "c"]).sharingKey, CExpr.field(["a", "bc"]).sharingKey)
    }
}
