import Foundation
import XCTest
@testable import StrataQuery

final class LimitTests: XCTestCase {
    func expectLimit(_ which: QueryLimit, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected \(which) to be exceeded")
        } catch let e as QueryError {
            guard case .limitExceeded(let got, _, let detail) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(got, which)
            XCTAssertFalse(detail.isEmpty)
            XCTAssertTrue(e.rendered.contains(which.rawValue), e.rendered)
        } catch {
            XCTFail("untyped error \(error)")
        }
    }

    func testMaxGroups() throws {
        let q = try Query.parse("SELECT content_id, count(*) AS n FROM dws.content GROUP BY content_id LIMIT 10")
        let e = QueryEngine(q, limits: QueryLimits(maxGroups: 100))
        expectLimit(.groups) { _ = try e.ingest((0..<101).map { record(minute: 0, content: "c\($0)", rev: 1) }) }
        // The failed query stays failed, without trapping.
        expectLimit(.groups) { _ = try e.ingest([record(minute: 0, content: "c1", rev: 2)]) }
        XCTAssertEqual(e.tick(nowMs: 0), [])
        XCTAssertEqual(e.finish(), [])
        XCTAssertNotNil(e.failure)
    }

    func testMaxWindowLength() throws {
        let q = try Query.parse("SELECT count(*) AS n FROM dws.content WINDOW TUMBLING 25 HOURS")
        let e = QueryEngine(q)
        expectLimit(.windowLength) { try e.validate() }
        expectLimit(.windowLength) { _ = try e.ingest([record(minute: 0, content: "c1", rev: 1)]) }
        XCTAssertNoThrow(try QueryEngine(try Query.parse("SELECT count(*) AS n FROM t WINDOW TUMBLING 24 HOURS")).validate())
    }

    func testMaxRowsOut() throws {
        let q = try Query.parse("SELECT content_id, count(*) AS n FROM dws.content GROUP BY content_id")
        let e = QueryEngine(q, limits: QueryLimits(maxRowsOut: 50))
        XCTAssertNoThrow(try e.ingest((0..<50).map { record(minute: 0, content: "c\($0)", rev: 1) }))
        expectLimit(.rowsOut) { _ = try e.ingest([record(minute: 0, content: "c-extra", rev: 1)]) }
        // With a LIMIT within bounds, many groups are fine.
        let limited = QueryEngine(try Query.parse("SELECT content_id, count(*) AS n FROM t GROUP BY content_id ORDER BY n DESC LIMIT 5"),
                                  limits: QueryLimits(maxRowsOut: 50))
        XCTAssertEqual(try limited.ingest((0..<500).map { record(minute: 0, content: "c\($0)", rev: 1) }).last?.rows.count, 5)
        // HAVING that keeps the table small is fine too.
        let having = QueryEngine(try Query.parse("SELECT content_id, count(*) AS n FROM t GROUP BY content_id HAVING content_id = 'c7'"),
                                 limits: QueryLimits(maxRowsOut: 50))
        XCTAssertEqual(try having.ingest((0..<500).map { record(minute: 0, content: "c\($0)", rev: 1) }).last?.rows.count, 1)
    }

    func testMaxOpenWindows() throws {
        let q = try Query.parse("SELECT count(*) AS n FROM dws.content WINDOW TUMBLING 1 MINUTE")
        let e = QueryEngine(q, limits: QueryLimits(maxOpenWindows: 10), options: QueryOptions(graceMs: 1 << 40))
        XCTAssertNoThrow(try e.ingest((0..<10).map { record(minute: Int64($0) * minuteMs, content: "c1", rev: 1) }))
        expectLimit(.openWindows) { _ = try e.ingest([record(minute: 10 * minuteMs, content: "c1", rev: 1)]) }
        // A SLIDING window that alone needs more windows per row than allowed fails up front.
        let sliding = QueryEngine(try Query.parse("SELECT count(*) AS n FROM t WINDOW SLIDING 24 HOURS EVERY 1 MINUTE"))
        expectLimit(.openWindows) { try sliding.validate() }
    }

    func testOneFailingQueryDoesNotAffectAnother() throws {
        let rows = (0..<200).map { record(minute: 0, content: "c\($0)", rev: 1) }
        let bad = QueryEngine(try Query.parse("SELECT content_id, count(*) AS n FROM t GROUP BY content_id"), limits: QueryLimits(maxGroups: 10))
        let good = QueryEngine(try Query.parse("SELECT count(*) AS n FROM t"))
        XCTAssertThrowsError(try bad.ingest(rows))
        XCTAssertEqual(try good.ingest(rows).last?.rows, [[.int(200)]])
    }

    func testSubscriptionEndsWithTheLimitError() async throws {
        let q = try Query.parse("SELECT content_id, count(*) AS n FROM t GROUP BY content_id LIMIT 3")
        let batches = [(0..<5).map { record(minute: 0, content: "c\($0)", rev: 1) }, (5..<50).map { record(minute: 0, content: "c\($0)", rev: 1) }]
        let stream = AsyncStream<[[String: Value]]> { c in for b in batches { c.yield(b) }; c.finish() }
        var n = 0
        var caught: QueryError?
        do {
            for try await _ in QuerySubscription(query: q, rows: stream, limits: QueryLimits(maxGroups: 20)) { n += 1 }
        } catch {
            caught = error
        }
        guard case .limitExceeded(.groups, 20, _)? = caught else { return XCTFail("\(String(describing: caught))") }
        XCTAssertEqual(n, 1)
    }
}
