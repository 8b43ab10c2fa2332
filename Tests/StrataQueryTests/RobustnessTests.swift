import StrataTestSupport
import Foundation
import XCTest
@testable import StrataQuery

/// Hostile queries and rows: every outcome is a result or a QueryError, never a trap.
final class RobustnessTests: XCTestCase {
    func testRandomTokenSoupNeverTraps() {
        let vocabulary = ["SELECT", "FROM", "WHERE", "WINDOW", "TUMBLING", "SLIDING", "EVERY", "GROUP", "BY", "HAVING",
                          "ORDER", "LIMIT", "EMIT", "CHANGES", "FINAL", "AND", "OR", "NOT", "IN", "BETWEEN", "LIKE", "IS",
                          "NULL", "AS", "DESC", "count", "sum", "count_distinct", "window_start", "round", "(", ")", "(*)",
                          ",", ".", "=", "<", "<>", "+", "-", "*", "/", "'x'", "'", "\"", "1", "0", "-1", "1.5",
                          "99999999999999", "MINUTES", "HOURS", "content", "click", "t", "minute", "like", "--", "/*", "\n"]
        var rng = SeededRandom(seed: 5)
        var parsed = 0
        for _ in 0..<20_000 {
            let n = Int.random(in: 1...14, using: &rng)
            var words = ["SELECT"]
            for _ in 0..<n { words.append(vocabulary.randomElement(using: &rng) ?? "") }
            if Bool.random(using: &rng) { words.insert(contentsOf: ["FROM", "t"], at: min(words.count, 3)) }
            do throws(QueryError) {
                let q = try Query.parse(words.joined(separator: " "))
                _ = q.explain()
                parsed += 1
            } catch {
                XCTAssertNotNil(error.line)
                _ = error.rendered
            }
        }
        XCTAssertGreaterThan(parsed, 0)
    }

    /// Every shipped query, mutated 300 times (a character removed, a stray `(,')*"-.` inserted, a
    /// run of up to 20 characters cut): each mutant either parses and explains itself, or is
    /// rejected with a syntax or semantic error that points at a line of the mutant's text.
    func testMutatedShippedQueriesNeverTrap() throws {
        let dir = SqlFilesTests.queriesDirectory
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".sql") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 10, "the shipped queries in \(dir.path)")
        var rng = SeededRandom(seed: 6)
        var parsed = 0, rejected = 0
        // Planned as users' queries are, against the topology's schemas.
        let catalog = Catalog(topology: CatalogTests.topology)
        for f in files {
            let original = try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)
            XCTAssertNoThrow(try Query.parse(original, catalog: catalog), "\(f) parses unmutated")
            let text = Array(original.unicodeScalars)
            for _ in 0..<300 {
                var t = text
                let i = Int.random(in: 0..<t.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: t.remove(at: i)
                case 1: t.insert("(,')*\"-.".unicodeScalars.randomElement(using: &rng) ?? "(", at: i)
                default: t.removeSubrange(i..<min(t.count, i + Int.random(in: 1...20, using: &rng)))
                }
                var s = ""
                s.unicodeScalars.append(contentsOf: t)
                do throws(QueryError) {
                    let q = try Query.parse(s, catalog: catalog)
                    XCTAssertFalse(q.explain().isEmpty, "\(f) mutant explains itself:\n\(s)")
                    parsed += 1
                } catch {
                    rejected += 1
                    let lines = s.split(separator: "\n", omittingEmptySubsequences: false).count
                    switch error {
                    case .syntax, .semantic:
                        let line = error.line ?? 0
                        XCTAssertTrue(1...lines ~= line, "\(f) mutant: error line \(line) outside 1...\(lines): \(error.message)\n\(s)")
                        XCTAssertFalse(error.message.isEmpty, "\(f) mutant: an error without a message")
                    default:
                        XCTFail("\(f) mutant: parsing reported \(error), not a syntax or semantic error\n\(s)")
                    }
                }
            }
        }
        // Both outcomes occur (the mutations are neither all harmless nor all fatal).
        XCTAssertEqual(parsed + rejected, files.count * 300)
        XCTAssertGreaterThan(parsed, 0, "some mutants still parse")
        XCTAssertGreaterThan(rejected, 0, "some mutants are rejected")
    }

    /// Found with the query fuzz target's help (Fuzz/corpus/FuzzQuery/deep_*.sql): a few thousand
    /// nested parentheses, NOTs or signs, or a long chain of AND/OR/+ (a left-deep tree), overflowed
    /// the stack in the parser, the planner or the canonical text, so one ad-hoc query from a
    /// client (POST /api/query, a WebSocket subscribe) could crash `strata serve`. Expressions
    /// deeper than Parser.maxExpressionDepth are now a syntax error.
    func testDeeplyNestedExpressionsAreRefusedNotACrash() {
        let n = 20_000
        let hostile = [
            "SELECT " + String(repeating: "(", count: n) + "1" + String(repeating: ")", count: n) + " FROM t",
            "SELECT count(*) FROM t WHERE " + String(repeating: "NOT ", count: n) + "TRUE",
            "SELECT " + String(repeating: "- ", count: n) + "x FROM t",
            "SELECT " + String(repeating: "+", count: n) + "x FROM t",
            "SELECT count(*) FROM t WHERE " + Array(repeating: "x = 1", count: n).joined(separator: " AND "),
            "SELECT count(*) FROM t WHERE " + Array(repeating: "x = 1", count: n).joined(separator: " OR "),
            "SELECT " + Array(repeating: "1", count: n).joined(separator: " + ") + " FROM t",
            "SELECT " + Array(repeating: "x", count: n).joined(separator: " * ") + " FROM t",
            "SELECT " + String(repeating: "round(", count: n) + "1" + String(repeating: ")", count: n) + " FROM t",
            "SELECT count(*) FROM t WHERE x IN (" + String(repeating: "(", count: n) + "1" + String(repeating: ")", count: n) + ")",
        ]
        for text in hostile {
            XCTAssertThrowsError(try Query.parse(text), String(text.prefix(60))) { e in
                guard case .syntax(let d)? = e as? QueryError else { return XCTFail("\(e)") }
                XCTAssertTrue(d.message.contains("nested too deeply"), d.message)
            }
        }
        // At the limit: accepted, and so is its canonical text (which adds parentheses: -(-(…))).
        let depth = Parser.maxExpressionDepth
        for text in ["SELECT count(*) FROM t WHERE " + (0..<(depth - 1)).map { "x = \($0)" }.joined(separator: " OR "),
                     "SELECT " + String(repeating: "- ", count: depth - 1) + "x FROM t",
                     "SELECT count(*) FROM t WHERE " + String(repeating: "NOT ", count: depth - 1) + "TRUE",
                     "SELECT " + String(repeating: "(", count: depth) + "1" + String(repeating: ")", count: depth) + " FROM t"] {
            XCTAssertNoThrow(try {
                let q = try Query.parse(text)
                XCTAssertEqual(try Query.parse(q.canonical).canonical, q.canonical)
                _ = QueryEngine(q)
            }(), String(text.prefix(60)))
        }
        XCTAssertThrowsError(try Query.parse("SELECT count(*) FROM t WHERE " + (0..<depth).map { "x = \($0)" }.joined(separator: " OR ")))
    }

    func testExtremeRowsAndDurations() throws {
        for text in ["SELECT count(*) AS n, sum(click) AS s, min(click) AS lo, max(content) AS hi, avg(click) AS a FROM t WINDOW SLIDING 10 MINUTES EVERY 1 MINUTE GROUP BY content_id",
                     "SELECT content_id, click * 9223372036854775807 AS x, -click AS y, round(click, 18) AS r FROM t",
                     "SELECT count_distinct(content) AS d FROM t WINDOW TUMBLING 1 SECOND EMIT EVERY 1 SECOND"] {
            let q = try Query.parse(text)
            let e = QueryEngine(q)
            let rows: [[String: Value]] = [
                ["minute": .int(Int64.max), "content_id": "c1", "rev": .int(Int64.max), "click": .int(Int64.max)],
                ["minute": .int(Int64.min), "content_id": "c1", "rev": .int(Int64.min), "click": .int(Int64.min)],
                ["minute": .double(1e300), "content_id": "c2", "click": .double(.infinity)],
                ["minute": .double(-0.0), "content_id": .object(["x": 1]), "user_id": 5, "rev": "x", "click": "many", "content": .object([:])],
                ["minute": 60_000, "content_id": "c3", "rev": 1, "click": .double(.nan)],
                ["minute": 60_000, "content_id": "c3", "rev": 2, "click": .int(Int64.min)],
                [:],
            ]
            do throws(QueryError) {
                _ = try e.ingest(rows)
                _ = e.tick(nowMs: Int64.max)
                _ = e.tick(nowMs: Int64.min)
                for r in e.finish() { _ = r.ndjson }
            } catch {
                XCTFail("\(text): \(error)")
            }
        }
        let huge = try Query.parse("SELECT count(*) FROM t WINDOW SLIDING 99999999999999 HOURS EVERY 1 SECOND EMIT EVERY 99999999999999 HOURS")
        XCTAssertFalse(huge.explain().isEmpty)
        XCTAssertThrowsError(try QueryEngine(huge).ingest([["minute": 0]]))
    }
}
