import XCTest
@testable import StrataQuery

/// The worked examples in docs/queries.md, replayed: the tables there are what the engine emits.
final class DocExamplesTests: XCTestCase {
    static let base: Int64 = 1_777_636_800_000  // 2026-05-01 12:00 UTC

    func row(_ minute: Int64, _ content: String, rev: Int64 = 1, click: Int64) -> [String: Value] {
        Self.row(minute, content, rev: rev, click: click)
    }

    static func row(_ minute: Int64, _ content: String, rev: Int64 = 1, click: Int64) -> [String: Value] {
        ["minute": .int(Self.base + minute * 60_000), "content_id": .string(content), "rev": .int(rev), "click": .int(click)]
    }

    /// "window start minute (relative to 12:00), final, rows" per emission.
    func run(_ sql: String, _ batches: [[[String: Value]]], ticks: [Int64?] = []) throws -> [[String]] {
        let e = QueryEngine(try Query.parse(sql))
        var out: [[String]] = []
        func note(_ rs: [QueryResult]) {
            out.append(rs.map { r in
                let start = r.windowStart.map { String(($0 - Self.base) / 60_000) } ?? "all"
                return "\(start)\(r.final ? " final" : ""): " + r.rows.map { "(" + $0.map(\.jsonText).joined(separator: ", ") + ")" }.joined(separator: " ")
            })
        }
        for (i, b) in batches.enumerated() {
            var rs = try e.ingest(b)
            if i < ticks.count, let t = ticks[i] { rs += e.tick(nowMs: t) }
            note(rs)
        }
        note(e.finish())
        return out
    }

    func testUpsertExample() throws {
        let got = try run("SELECT content_id, sum(click) AS clicks FROM dws.content GROUP BY content_id ORDER BY content_id", [
            [row(0, "c1", click: 3), row(0, "c2", click: 2)],
            [row(0, "c1", rev: 2, click: 5)],
            [row(0, "c1", click: 3)],
            [row(0, "c2", rev: 2, click: 1)],
        ])
        XCTAssertEqual(got, [["all: (\"c1\", 3) (\"c2\", 2)"], ["all: (\"c1\", 5) (\"c2\", 2)"], [],
                             ["all: (\"c1\", 5) (\"c2\", 1)"], ["all final: (\"c1\", 5) (\"c2\", 1)"]])
    }

    static let tumblingInput: [[[String: Value]]] = [
        [row(1, "c1", click: 3), row(3, "c2", click: 1)],
        [row(1, "c1", rev: 2, click: 4), row(5, "c1", click: 2)],
        [row(6, "c2", click: 6)],
        [row(7, "c1", click: 1)],
        [row(3, "c2", rev: 2, click: 9)],
    ]

    func testTumblingEmitChangesExample() throws {
        let got = try run("SELECT sum(click) AS clicks, count(*) AS rows FROM dws.content WINDOW TUMBLING 5 MINUTES", Self.tumblingInput)
        XCTAssertEqual(got, [["0: (4, 2)"], ["0: (5, 2)", "5: (2, 1)"], ["5: (8, 2)"], ["0 final: (5, 2)", "5: (9, 3)"], [],
                             ["5 final: (9, 3)"]])
    }

    func testTumblingEmitFinalExample() throws {
        let got = try run("SELECT sum(click) AS clicks, count(*) AS rows FROM dws.content WINDOW TUMBLING 5 MINUTES EMIT FINAL", Self.tumblingInput)
        XCTAssertEqual(got, [[], [], [], ["0 final: (5, 2)"], [], ["5 final: (9, 3)"]])
    }

    func testSlidingExample() throws {
        let got = try run("SELECT sum(click) AS clicks, count(*) AS rows FROM dws.content WINDOW SLIDING 10 MINUTES EVERY 5 MINUTES EMIT FINAL", [
            [row(2, "c1", click: 1), row(7, "c1", click: 10)],
            [row(12, "c1", click: 100)],
            [row(19, "c1", click: 1000)],
        ])
        XCTAssertEqual(got, [["-5 final: (1, 1)"], ["0 final: (11, 2)"], ["5 final: (110, 2)"],
                             ["10 final: (1100, 2)", "15 final: (1000, 1)"]])
    }

    func testEmitEveryExample() throws {
        let got = try run("SELECT sum(click) AS clicks FROM dws.content WINDOW TUMBLING 5 MINUTES EMIT EVERY 10 SECONDS", [
            [row(1, "c1", click: 3)], [row(1, "c1", rev: 2, click: 5)], [row(2, "c2", click: 1)], [row(8, "c1", click: 7)],
        ], ticks: [1_000, 4_000, 12_000, 25_000])
        XCTAssertEqual(got, [["0: (3)"], [], ["0: (6)"], ["0 final: (6)", "5: (7)"], ["5 final: (7)"]])
    }
}
