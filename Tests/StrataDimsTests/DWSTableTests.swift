import Foundation
import StrataDims
import StrataTestSupport
import XCTest

/// The dws_minute contract, run against each backend.
enum DWSTableContract {
    static let m0: Int64 = 1_795_219_200_000

    static func row(_ minute: Int64, _ id: String, rev: Int64, click: Int64 = 0, final: Bool = false) -> DWSTableRow {
        DWSTableRow(minute: minute, contentId: id, expose: rev * 3, click: click, play: 1, playMs: 9_000 + rev,
                    like: 0, share: 2, comment: 0, report: 1, uv: rev, rev: rev, isFinal: final, emittedAt: 1_000 + rev)
    }

    static func run(_ table: any DWSTable, file: StaticString = #filePath, line: UInt = #line) throws {
        try table.migrate()
        try table.migrate() // idempotent

        // Insert, replace with a higher rev, then a replay and an older revision change nothing.
        XCTAssertEqual(try table.upsert([row(m0, "c00000001", rev: 4), row(m0, "c00000002", rev: 2)]), 2, file: file, line: line)
        XCTAssertEqual(try table.upsert([row(m0, "c00000001", rev: 7, click: 3, final: true)]), 1, file: file, line: line)
        XCTAssertEqual(try table.upsert([row(m0, "c00000001", rev: 7, click: 3, final: true)]), 0, "a replay changes nothing", file: file, line: line)
        XCTAssertEqual(try table.upsert([row(m0, "c00000001", rev: 6, click: 99)]), 0, "an older rev never replaces", file: file, line: line)
        XCTAssertEqual(try table.upsert([]), 0, file: file, line: line)
        // Several revisions of one identity in one batch: the highest wins, whatever the order.
        XCTAssertEqual(try table.upsert([row(m0, "c00000002", rev: 9), row(m0, "c00000002", rev: 12, click: 5), row(m0, "c00000002", rev: 10)]),
                       1, file: file, line: line)
        // Hostile ids are data.
        let hostile = "c'; DROP TABLE dws_minute; --"
        XCTAssertEqual(try table.upsert([row(m0 + 60_000, hostile, rev: 2)]), 1, file: file, line: line)

        let all = try table.allRows()
        XCTAssertEqual(all, [row(m0, "c00000001", rev: 7, click: 3, final: true), row(m0, "c00000002", rev: 12, click: 5),
                             row(m0 + 60_000, hostile, rev: 2)], file: file, line: line)
        // Ranges are [from, to).
        XCTAssertEqual(try table.allRows(from: m0 + 60_000, to: m0 + 120_000).map(\.contentId), [hostile], file: file, line: line)
        XCTAssertEqual(try table.allRows(from: m0, to: m0 + 60_000).count, 2, file: file, line: line)
        XCTAssertEqual(try table.allRows(from: m0 + 120_000, to: m0 + 180_000).count, 0, file: file, line: line)

        // Pages: more rows than one page, in (minute, content_id) order, each exactly once.
        var many: [DWSTableRow] = []
        for m in 0..<3 {
            for c in stride(from: 8_000, through: 1, by: -1) {
                many.append(row(m0 + Int64(10 + m) * 60_000, String(format: "c%08d", c), rev: 2))
            }
        }
        XCTAssertEqual(try table.upsert(many), many.count, file: file, line: line)
        var seen: [DWSTableRow] = []
        try table.rows(from: m0 + 10 * 60_000, to: m0 + 13 * 60_000) { seen.append($0) }
        XCTAssertEqual(seen.count, many.count, file: file, line: line)
        let sorted = many.sorted { ($0.minute, $0.contentId) < ($1.minute, $1.contentId) }
        XCTAssertEqual(seen, sorted, file: file, line: line)
    }
}

/// A random stream of revisions, replays and out-of-order older revisions, in batches.
enum DWSRevisionStream {
    static func batches(seed: UInt64, count: Int) -> [[DWSTableRow]] {
        var rng = SeededRandom(seed: seed)
        var batches: [[DWSTableRow]] = []
        var published: [DWSTableRow] = []
        for _ in 0..<count {
            var batch: [DWSTableRow] = []
            for _ in 0..<Int(rng.next() % 300 + 1) {
                let r = rng.next() % 10
                if r < 3, let old = published.randomElement(using: &rng) {
                    batch.append(old) // replay or out-of-order older revision
                } else {
                    let minute = DWSTableContract.m0 + Int64(rng.next() % 20) * 60_000
                    let id = String(format: "c%08d", Int(rng.next() % 200))
                    let rev = Int64(rng.next() % 40 + 1)
                    // Contents are a function of (identity, rev): equal revs never differ in content.
                    let row = DWSTableRow(minute: minute, contentId: id, expose: rev * 2, click: rev / 2,
                                          play: rev % 3, playMs: rev * 1_000, like: rev % 2, share: 0, comment: rev % 5,
                                          report: 0, uv: (rev + 1) / 2, rev: rev, isFinal: rev % 2 == 1, emittedAt: minute + rev)
                    batch.append(row)
                    published.append(row)
                }
            }
            batches.append(batch)
        }
        return batches
    }

    /// The expected table, computed without SQL: highest rev per identity.
    static func model(_ batches: [[DWSTableRow]]) -> [DWSTableRow] {
        struct Key: Hashable { let m: Int64; let c: String }
        var best: [Key: DWSTableRow] = [:]
        for r in batches.joined() {
            let k = Key(m: r.minute, c: r.contentId)
            if let b = best[k], b.rev >= r.rev { continue }
            best[k] = r
        }
        return best.values.sorted { ($0.minute, $0.contentId) < ($1.minute, $1.contentId) }
    }
}

final class SQLiteDWSTableTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-dws-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testContract() throws {
        try DWSTableContract.run(try DWSTableFactory.open("sqlite:" + dir.appendingPathComponent("w.db").path))
    }

    func testReplaysAndOlderRevisionsNeverReplaceAHigherRev() throws {
        let table = try SQLiteDWSTable(path: dir.appendingPathComponent("r.db").path)
        try table.migrate()
        let batches = DWSRevisionStream.batches(seed: 11, count: 40)
        for b in batches { _ = try table.upsert(b) }
        XCTAssertEqual(try table.allRows(), DWSRevisionStream.model(batches))
    }

    func testWALModeAndIndex() throws {
        let path = dir.appendingPathComponent("wal.db").path
        let table = try SQLiteDWSTable(path: path)
        try table.migrate()
        let mode = try PostgresServerProcess.run("/usr/bin/sqlite3", [path, "PRAGMA journal_mode"])
        XCTAssertEqual(mode.trimmingCharacters(in: .whitespacesAndNewlines), "wal")
        let plan = try PostgresServerProcess.run("/usr/bin/sqlite3", [path,
            "EXPLAIN QUERY PLAN SELECT * FROM dws_minute WHERE content_id = 'c00000001' AND minute >= 0 AND minute < 100"])
        XCTAssertTrue(plan.contains("dws_minute_content_minute"), plan)
        let versions = try PostgresServerProcess.run("/usr/bin/sqlite3", [path, "SELECT group_concat(version) FROM schema_version"])
        XCTAssertTrue(versions.contains("2"), versions)
    }

    func testPricingLoadAndCSV() throws {
        let prices = try PricingCSV.parse("category,price_per_click,price_per_mille\ngame,0.05,2\n*,0.01,0.5\n")
        XCTAssertEqual(prices, [CategoryPrice(category: "game", pricePerClickMicro: 50_000, pricePerMilleMicro: 2_000_000),
                                CategoryPrice(category: "*", pricePerClickMicro: 10_000, pricePerMilleMicro: 500_000)])
        for bad in ["category,price\ngame,1\n", "category,price_per_click,price_per_mille\ngame,-1,2\n",
                    "category,price_per_click,price_per_mille\ngame,0.0000001,2\n",
                    "category,price_per_click,price_per_mille\ngame,1,2\ngame,1,2\n"] {
            XCTAssertThrowsError(try PricingCSV.parse(bad), bad)
        }
        XCTAssertEqual(PricingCSV.format(micro: 12_500_001), "12.500001")
        let table = try PricingTableFactory.open("sqlite:" + dir.appendingPathComponent("p.db").path)
        try table.migrate()
        try table.replaceAll(prices)
        try table.replaceAll(prices) // a reload replaces, never duplicates
        XCTAssertEqual(try table.all().sorted { $0.category < $1.category }, prices.sorted { $0.category < $1.category })
    }
}

final class PostgresDWSTableTests: XCTestCase {
    nonisolated(unsafe) private static var server: PostgresServerProcess?

    override func setUpWithError() throws {
        if Self.server == nil { Self.server = try PostgresServerProcess() }
    }

    override class func tearDown() {
        server?.stop()
        server = nil
        super.tearDown()
    }

    private func freshDatabase() throws -> String {
        let server = try XCTUnwrap(Self.server)
        let name = "dws_\(UUID().uuidString.prefix(8).lowercased())"
        _ = try server.psql("CREATE DATABASE \(name)")
        return "postgres://postgres@127.0.0.1:\(server.port)/\(name)"
    }

    func testContract() throws {
        try DWSTableContract.run(try DWSTableFactory.open(try freshDatabase()))
    }

    func testSQLiteAndPostgresGiveIdenticalTables() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-dws-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let sqlite = try SQLiteDWSTable(path: dir.appendingPathComponent("same.db").path)
        let postgres = try PostgresDWSTable(url: try freshDatabase())
        try sqlite.migrate()
        try postgres.migrate()
        let batches = DWSRevisionStream.batches(seed: 5, count: 60)
        var changedSQLite = 0, changedPostgres = 0
        for b in batches {
            changedSQLite += try sqlite.upsert(b)
            changedPostgres += try postgres.upsert(b)
        }
        let a = try sqlite.allRows(), b = try postgres.allRows()
        XCTAssertEqual(a.count, b.count)
        XCTAssertEqual(a, b)
        XCTAssertEqual(a, DWSRevisionStream.model(batches))
        XCTAssertGreaterThan(a.count, 100)
        // Both count each identity at most once per batch, so the changed counts agree too.
        XCTAssertEqual(changedSQLite, changedPostgres)
        XCTAssertGreaterThanOrEqual(changedSQLite, a.count)
    }

    func testPricingRoundTrip() throws {
        let table = try PricingTableFactory.open(try freshDatabase())
        try table.migrate()
        let prices = [CategoryPrice(category: "game", pricePerClickMicro: 50_000, pricePerMilleMicro: 2_000_000, currency: "CNY"),
                      CategoryPrice(category: "*", pricePerClickMicro: 1, pricePerMilleMicro: 0, currency: "USD")]
        try table.replaceAll(prices)
        try table.replaceAll(prices)
        XCTAssertEqual(try table.all().sorted { $0.category < $1.category }, prices.sorted { $0.category < $1.category })
    }
}
