import Foundation
import StrataDims
import XCTest

final class SchemaTests: XCTestCase {
    private var sqlDir: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("sql")
    }

    /// sql/ is the source of truth and the build embeds it: the embedded DDL is those very bytes
    /// (a link in Sources/StrataDims/Store/SQL pointing elsewhere would fail here).
    func testEmbeddedDDLEqualsTheFilesInSql() throws {
        let sqlite = try String(contentsOf: sqlDir.appendingPathComponent("sqlite/001_dimensions.sql"), encoding: .utf8)
        let postgres = try String(contentsOf: sqlDir.appendingPathComponent("postgres/001_dimensions.sql"), encoding: .utf8)
        XCTAssertEqual(DimensionSchema.sqlite, sqlite, "Sources/StrataDims/Store/SQL/sqlite_001_dimensions.sql must link to sql/sqlite/001_dimensions.sql")
        XCTAssertEqual(DimensionSchema.postgres, postgres, "Sources/StrataDims/Store/SQL/postgres_001_dimensions.sql must link to sql/postgres/001_dimensions.sql")
    }

    func testStatementSplitting() {
        let statements = DimensionSchema.statements(DimensionSchema.postgres)
        XCTAssertEqual(statements.count, 5)
        XCTAssertTrue(statements.allSatisfy { !$0.contains(";") && !$0.hasPrefix("--") })
        XCTAssertEqual(DimensionSchema.statements("SELECT 'a;b'; -- x; y\n/* ; */ SELECT \"c;\";;"),
                       ["SELECT 'a;b'", "SELECT \"c;\""])
    }

    func testBothDialectsDeclareTheSameTablesAndColumns() {
        func columns(_ ddl: String) -> [String] {
            DimensionSchema.statements(ddl).filter { $0.hasPrefix("CREATE TABLE") }.map { s in
                s.split(separator: "\n").compactMap { line -> String? in
                    let t = line.trimmingCharacters(in: .whitespaces)
                    if t.hasPrefix("CREATE") { return String(t.split(separator: " ")[5]) }
                    let word = t.split(separator: " ").first.map(String.init) ?? ""
                    return word.isEmpty || word.hasPrefix(")") ? nil : word
                }.joined(separator: " ")
            }
        }
        XCTAssertEqual(columns(DimensionSchema.sqlite), columns(DimensionSchema.postgres))
        XCTAssertEqual(columns(DimensionSchema.sqlite).count, 4)
    }
}
