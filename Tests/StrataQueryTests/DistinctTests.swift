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

    func testHashTreatsEqualNumbersAlike() {
        XCTAssertEqual(ValueHash.hash(.int(5)), ValueHash.hash(.double(5.0)))
        XCTAssertNotEqual(ValueHash.hash(.int(5)), ValueHash.hash(.string("5")))
    }
}
