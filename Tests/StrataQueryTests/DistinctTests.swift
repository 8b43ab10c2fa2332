import Foundation
import XCTest
@testable import StrataQuery

final class DistinctTests: XCTestCase {
    func testExactForSmallSets() {
        var d = DistinctCounter(exactThreshold: 1024)
        for i in 0..<1000 { d.add(ValueHash.hash(.string("u\(i % 700)"))) }
        XCTAssertEqual(d.count, 700)
        XCTAssertTrue(d.isExact)
        for i in 0..<100 { d.remove(ValueHash.hash(.string("u\(i)"))) }
        XCTAssertEqual(d.count, 700, "values 0..<100 were added twice: one removal keeps them")
        for i in 0..<100 { d.remove(ValueHash.hash(.string("u\(i)"))) }
        XCTAssertEqual(d.count, 600)
    }

    func testWithinTwoPercentOnOneHundredThousandDistinctValues() {
        var d = DistinctCounter(exactThreshold: 1024)
        for i in 0..<100_000 { d.add(ValueHash.hash(.string("u\(i)"))) }
        XCTAssertFalse(d.isExact)
        let estimate = Double(d.count)
        XCTAssertEqual(estimate, 100_000, accuracy: 2_000, "estimate \(estimate)")
        // Duplicates do not change the estimate.
        for i in 0..<50_000 { d.add(ValueHash.hash(.string("u\(i)"))) }
        XCTAssertEqual(Double(d.count), estimate, accuracy: 0.5)
    }

    func testRetractionInTheSketchIsExact() {
        // The counting sketch after adding A ∪ B and removing B equals the sketch of A alone.
        var both = CountingHyperLogLog(), onlyA = CountingHyperLogLog()
        for i in 0..<60_000 { both.add(ValueHash.hash(.int(Int64(i)))) }
        for i in 0..<30_000 { onlyA.add(ValueHash.hash(.int(Int64(i)))) }
        for i in 30_000..<60_000 { both.remove(ValueHash.hash(.int(Int64(i)))) }
        XCTAssertEqual(both.registers, onlyA.registers)
        XCTAssertEqual(both.estimate, onlyA.estimate)
        XCTAssertEqual(both.estimate, 30_000, accuracy: 600)
    }

    func testAccuracyAcrossCardinalities() {
        for n in [2_000, 10_000, 50_000, 200_000] {
            var d = DistinctCounter(exactThreshold: 1024)
            for i in 0..<n { d.add(ValueHash.hash(.string("content-\(i)-x"))) }
            XCTAssertEqual(Double(d.count), Double(n), accuracy: Double(n) * 0.02, "n = \(n)")
        }
    }

    func testCountDistinctThroughTheEngineWithRevisions() throws {
        let q = try Query.parse("SELECT count_distinct(user_id) AS users FROM dwm.content_user WHERE play > 0")
        let e = QueryEngine(q)
        var rows: [[String: Value]] = []
        for i in 0..<100_000 { rows.append(record(minute: 0, content: "c1", user: "u\(i)", rev: 1, play: 1)) }
        _ = try e.ingest(rows)
        // Rev 2 of half the users has play = 0: they leave the count.
        let r = try e.ingest((0..<50_000).map { record(minute: 0, content: "c1", user: "u\($0)", rev: 2, play: 0) })
        guard case .int(let users)? = r.last?.rows.first?.first else { return XCTFail("no result") }
        XCTAssertEqual(Double(users), 50_000, accuracy: 1_000)
        // Small sets are exact.
        let small = QueryEngine(q)
        let s = try small.ingest((0..<500).map { record(minute: 0, content: "c\($0 % 7)", user: "u\($0 % 123)", rev: 1, play: 1) })
        XCTAssertEqual(s.last?.rows, [[.int(123)]])
    }

    /// exact_count_distinct over 30 000 users in 6 strategies, with half of them retracted by a
    /// later rev, equals a count kept here with sets; count_distinct over the same rows is only
    /// within its error (and differs from the exact count, as a sketch does at this size).
    func testExactCountDistinctThroughTheEngineEqualsSetsWithRevisions() throws {
        let exact = QueryEngine(try Query.parse("""
            SELECT strategy, exact_count_distinct(user_id) AS users FROM dwm.content_user WHERE play > 0 GROUP BY strategy
            """))
        let sketch = QueryEngine(try Query.parse("""
            SELECT strategy, count_distinct(user_id) AS users FROM dwm.content_user WHERE play > 0 GROUP BY strategy
            """))
        var live: [String: [String: Int]] = [:]   // strategy → user → rows with play > 0
        func rows(rev: Int64, _ users: Range<Int>, play: (Int) -> Int64) -> [[String: Value]] {
            users.map { i in
                let strategy = "s\(i % 6)", user = "u\(i * 7 % 30_000)", content = "c\(i % 5)"
                let p = play(i)
                let key = "\(content)|\(user)"
                if rev > 1 { live[strategy]?[key] = nil }
                if p > 0 { live[strategy, default: [:]][key, default: 0] += 1 }
                return record(minute: 0, content: content, user: user, rev: rev, play: p, strategy: strategy)
            }
        }
        let first = rows(rev: 1, 0..<30_000) { _ in 1 }
        let second = rows(rev: 2, 0..<15_000) { Int64($0 % 2) }   // every other one of them stops playing
        var got: [String: Int64] = [:], approx: [String: Int64] = [:]
        for r in try exact.ingest(first) + (try exact.ingest(second)) {
            for row in r.rows { if case .string(let s) = row[0], case .int(let n) = row[1] { got[s] = n } }
        }
        for r in try sketch.ingest(first) + (try sketch.ingest(second)) {
            for row in r.rows { if case .string(let s) = row[0], case .int(let n) = row[1] { approx[s] = n } }
        }
        var want: [String: Int64] = [:]
        for (s, cells) in live { want[s] = Int64(Set(cells.keys.map { $0.split(separator: "|")[1] }).count) }
        XCTAssertEqual(got, want)
        XCTAssertEqual(want.count, 6)
        for (s, n) in want { XCTAssertEqual(Double(approx[s] ?? 0), Double(n), accuracy: Double(n) * 0.03, s) }
        XCTAssertNotEqual(approx, want, "a sketch past 1024 values per group estimates")
    }

    func testExactCountDistinctHasALimitAndSaysSoInExplain() throws {
        XCTAssertThrowsError(try Query.parse("SELECT count_distinct_exact(user_id) FROM t")) {
            XCTAssertTrue("\($0)".contains("did you mean exact_count_distinct?"), "\($0)")
        }
        let q = try Query.parse("SELECT exact_count_distinct(user_id) AS users FROM dwm.content_user")
        XCTAssertTrue(q.explain(limits: QueryLimits(), options: QueryOptions()).contains("exact: a refcount per distinct value"))
        let e = QueryEngine(q, limits: QueryLimits(maxExactDistinctValues: 1_000))
        XCTAssertNoThrow(try e.ingest((0..<1_000).map { record(minute: 0, content: "c1", user: "u\($0)", rev: 1) }))
        do {
            _ = try e.ingest([record(minute: 0, content: "c1", user: "u-one-more", rev: 1)])
            XCTFail("the 1 001st distinct value exceeds the limit")
        } catch {
            guard case .limitExceeded(.exactDistinctValues, 1_000, let detail) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(detail.contains("1001 distinct values"), detail)
        }
    }

    func testHashTreatsEqualNumbersAlike() {
        XCTAssertEqual(ValueHash.hash(.int(5)), ValueHash.hash(.double(5.0)))
        XCTAssertNotEqual(ValueHash.hash(.int(5)), ValueHash.hash(.string("5")))
    }
}
