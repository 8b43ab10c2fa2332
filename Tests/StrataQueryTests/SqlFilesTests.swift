import Foundation
import StrataCore
import XCTest
@testable import StrataQuery

/// Every query shipped in sql/queries/ and sql/dashboard/ parses, plans against the topology's
/// schemas, and round-trips through its canonical form.
final class SqlFilesTests: XCTestCase {
    static var queriesDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("sql/queries")
    }

    func testEveryShippedQueryParses() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.queriesDirectory.path)
            .filter { $0.hasSuffix(".sql") }.sorted()
        for required in ["seed1_strategy_by_crowd.sql", "seed2_guangdong_hot_content.sql", "seed3_reported_game_content.sql",
                         "seed4_active_users.sql", "seed5_funnel_by_strategy.sql", "seed6_sessions_by_app_version.sql",
                         "seed7_paths_from_home.sql", "seed8_settlement_per_content.sql", "where.sql", "tumbling.sql", "sliding.sql", "group_by_having.sql",
                         "order_by_limit.sql", "emit_final.sql", "emit_every.sql", "count_distinct.sql", "functions.sql"] {
            XCTAssertTrue(files.contains(required), "sql/queries/\(required) is missing")
        }
        // The dashboard's feeds too; every column checked against the repository's topology.
        let dashboard = Self.queriesDirectory.deletingLastPathComponent().appendingPathComponent("dashboard")
        let feeds = try FileManager.default.contentsOfDirectory(atPath: dashboard.path).filter { $0.hasSuffix(".sql") }.sorted()
        XCTAssertFalse(feeds.isEmpty)
        let catalog = Catalog(topology: try Topology.load(path: Self.queriesDirectory.deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("topology/topology.yaml").path))
        for url in files.map({ Self.queriesDirectory.appendingPathComponent($0) }) + feeds.map({ dashboard.appendingPathComponent($0) }) {
            let f = url.lastPathComponent
            let text = try String(contentsOf: url, encoding: .utf8)
            do throws(QueryError) {
                let q = try Query.parse(text, catalog: catalog)
                XCTAssertEqual(try Query.parse(q.canonical, catalog: catalog).canonical, q.canonical, f)
                XCTAssertNoThrow(try QueryEngine(q).validate(), f)
            } catch {
                XCTFail("\(f):\n\(error.rendered)")
            }
        }
    }
}
