import Foundation
import XCTest
@testable import StrataQuery

/// Every query shipped in sql/queries/ parses, plans, and round-trips through its canonical form.
final class SqlFilesTests: XCTestCase {
    static var queriesDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("sql/queries")
    }

    func testEveryShippedQueryParses() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.queriesDirectory.path)
            .filter { $0.hasSuffix(".sql") }.sorted()
        for required in ["seed1_strategy_by_crowd.sql", "seed2_guangdong_hot_content.sql", "seed3_reported_game_content.sql",
                         "seed4_active_users.sql", "where.sql", "tumbling.sql", "sliding.sql", "group_by_having.sql",
                         "order_by_limit.sql", "emit_final.sql", "emit_every.sql", "count_distinct.sql", "functions.sql"] {
            XCTAssertTrue(files.contains(required), "sql/queries/\(required) is missing")
        }
        for f in files {
            let text = try String(contentsOf: Self.queriesDirectory.appendingPathComponent(f), encoding: .utf8)
            do throws(QueryError) {
                let q = try Query.parse(text)
                XCTAssertEqual(try Query.parse(q.canonical).canonical, q.canonical, f)
                XCTAssertNoThrow(try QueryEngine(q).validate(), f)
            } catch {
                XCTFail("\(f):\n\(error.rendered)")
            }
        }
    }
}
