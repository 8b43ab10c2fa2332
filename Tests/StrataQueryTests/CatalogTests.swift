import Foundation
import StrataCore
import XCTest
@testable import StrataQuery

/// Sources by name and their schemas: FROM resolves through the topology, and a typo in a column,
/// a source or a type is an error with a position and a hint instead of a column of nulls.
final class CatalogTests: XCTestCase {
    static let topology = try! Topology.load(path: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("topology/topology.yaml").path)
    let catalog = Catalog(topology: CatalogTests.topology)

    /// The error's message without its hint.
    private func message(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> String? {
        failure(text, file: file, line: line).map { $0.message.components(separatedBy: " — ")[0] }
    }

    private func failure(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> QueryError? {
        do throws(QueryError) {
            _ = try Query.parse(text, catalog: catalog)
            XCTFail("planned: \(text)", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    func testSourcesResolveByShortNameAndTopicWithThePrefixApplied() throws {
        XCTAssertEqual(try Query.parse("SELECT sum(click) FROM dws", catalog: catalog).source, "dws.content")
        XCTAssertEqual(try Query.parse("SELECT sum(click) FROM dws.content", catalog: catalog).source, "dws.content")
        XCTAssertEqual(try Query.parse("SELECT count(*) FROM dwm", catalog: catalog).source, "dwm.content_user")
        let prefixed = Catalog(topology: Self.topology, topicPrefix: "p1.")
        XCTAssertEqual(try Query.parse("SELECT sum(click) FROM dws", catalog: prefixed).source, "p1.dws.content")
        XCTAssertEqual(try Query.parse("SELECT count(*) FROM ods.click", catalog: prefixed).source, "p1.ods.click")
        // Topics without a schema (checkpoints, the changelog) are not sources.
        XCTAssertNil(catalog.source(named: "dwm.checkpoint"))
        XCTAssertEqual(Set(catalog.names), Set(["dws", "dwm", "ods.raw"] + Self.topology.actions.map { "ods.\($0)" }))
    }

    func testUnknownColumnsAndSourcesAreErrorsWithHints() throws {
        var e = failure("SELECT sum(clicks) FROM dws")
        XCTAssertEqual(e?.message.components(separatedBy: " — ")[0], "unknown column 'clicks' in dws")
        XCTAssertEqual(e?.line, 1); XCTAssertEqual(e?.column, 12)
        XCTAssertTrue(e?.rendered.contains("did you mean click?") == true, e?.rendered ?? "")

        e = failure("SELECT content_id FROM dws WHERE content.categroy = 'game'")
        XCTAssertEqual(e?.message.components(separatedBy: " — ")[0], "unknown column 'content.categroy' in dws")
        XCTAssertTrue(e?.rendered.contains("did you mean content.category?") == true, e?.rendered ?? "")

        e = failure("SELECT sum(title) FROM dwm")
        XCTAssertTrue(e?.rendered.contains("did you mean content.title?") == true, e?.rendered ?? "")
        // dws rows have no user.
        e = failure("SELECT count(*) FROM dws WHERE user.gender = 'm'")
        XCTAssertEqual(e?.message.components(separatedBy: " — ")[0], "unknown column 'user.gender' in dws")

        e = failure("SELECT sum(click) FROM dwn")
        XCTAssertEqual(e?.message.components(separatedBy: " — ")[0], "unknown source 'dwn'")
        XCTAssertEqual(e?.column, 24)
        XCTAssertTrue(e?.rendered.contains("did you mean dwm?") == true, e?.rendered ?? "")
        XCTAssertTrue(e?.rendered.contains("dws") == true)
    }

    func testTypesAreChecked() {
        XCTAssertEqual(message("SELECT content_id FROM dwm WHERE user.province = 3"), "cannot compare a string with a number")
        XCTAssertEqual(message("SELECT content_id FROM dwm WHERE click = 'x'"), "cannot compare a number with a string")
        XCTAssertEqual(message("SELECT sum(content_id) FROM dws"), "sum needs a number, found a string")
        XCTAssertEqual(message("SELECT content_id FROM dws WHERE final + 1 > 0"), "cannot apply + to a condition")
        XCTAssertEqual(message("SELECT content_id FROM dws WHERE content = 'x'"), "cannot compare an object with a string")
        XCTAssertEqual(message("SELECT content_id FROM dws WHERE click"), "WHERE needs a condition, found a number")
        XCTAssertEqual(failure("SELECT content_id FROM dws WHERE click.x = 1")?.message,
                       "unknown column 'click.x' in dws — click is an integer, not an object (DESCRIBE dws lists every column)")
        // What is right still plans: booleans, comparisons of like types, aliases in HAVING/ORDER BY.
        XCTAssertNoThrow(try Query.parse("""
            SELECT content.category AS cat, sum(click) AS clicks FROM dws WHERE final AND content.region = 'Guangdong'
            GROUP BY cat HAVING clicks > 0 ORDER BY clicks DESC
            """, catalog: catalog))
        XCTAssertNoThrow(try Query.parse("SELECT min(content_id), max(user.city_tier) FROM dwm", catalog: catalog))
    }

    func testSelectStarAndDescribe() throws {
        let q = try Query.parse("SELECT * FROM dws", catalog: catalog)
        XCTAssertEqual(q.columns, RecordContracts.dws(actions: Self.topology.actions).map(\.name))
        XCTAssertEqual(q.canonical, "SELECT * FROM dws EMIT CHANGES")
        let engine = QueryEngine(q)
        let out = try engine.ingest([["minute": .int(60_000), "content_id": .string("c1"), "click": .int(2), "rev": .int(1)]])
        XCTAssertEqual(out.last?.objects.first?["click"], .int(2))
        XCTAssertEqual(out.last?.objects.first?["uv"], .null)

        let d = try XCTUnwrap(try Query.describe("DESCRIBE dwm", catalog: catalog))
        XCTAssertEqual(d.topic, "dwm.content_user")
        XCTAssertTrue(d.description.contains("user.city_tier"), d.description)
        XCTAssertNil(try Query.describe("SELECT 1 FROM dws", catalog: catalog))
        XCTAssertThrowsError(try Query.describe("DESCRIBE nothing", catalog: catalog))
    }

    func testATopicOfTheUsersOwnCarriesItsSchema() throws {
        var t = Self.topology
        t.topics.append(TopicSpec(name: "app.orders", partitions: 1, key: "order_id",
                                  source: "orders", schema: .fields(["minute": "integer", "amount": "number", "shop": "string"])))
        try t.validate()
        let c = Catalog(topology: t)
        XCTAssertEqual(try Query.parse("SELECT shop, sum(amount) FROM orders GROUP BY shop", catalog: c).source, "app.orders")
        XCTAssertThrowsError(try Query.parse("SELECT sum(amout) FROM orders", catalog: c))

        func invalid(_ spec: TopicSpec) -> String? {
            var bad = Self.topology
            bad.topics.append(spec)
            do { try bad.validate(); return nil } catch { return String(describing: error) }
        }
        XCTAssertTrue(invalid(TopicSpec(name: "x", partitions: 1, key: "k", schema: .fields(["a": "float"])))?.contains("field 'a' has type 'float'") == true)
        XCTAssertTrue(invalid(TopicSpec(name: "x", partitions: 1, key: "k", schema: .contract("dwz")))?.contains("schema 'dwz'") == true)
        XCTAssertTrue(invalid(TopicSpec(name: "x", partitions: 1, key: "k", source: "x2"))?.contains("needs a schema") == true)
        XCTAssertTrue(invalid(TopicSpec(name: "x", partitions: 1, key: "k", source: "dws", schema: .contract("dws")))?.contains("already") == true)
        // And from YAML.
        let yaml = """
            actions: [click]
            topics:
              - {name: ods.raw, partitions: 1, key: content_id, schema: event}
              - {name: ods.click, partitions: 1, key: content_id, schema: event}
              - {name: app.orders, partitions: 1, key: id, source: orders, schema: {amount: number, shop: string}}
            """
        let parsed = try Topology.parse(yaml: yaml)
        XCTAssertEqual(parsed.topics.last?.schema, .fields(["amount": "number", "shop": "string"]))
        XCTAssertEqual(Catalog(topology: parsed).source(named: "orders")?.fields.map(\.name), ["amount", "shop"])
    }

    func testUnionsAreForEventStreamsOfOneSchema() throws {
        let q = try Query.parse("SELECT action, count(*) FROM ods.expose, ods.click GROUP BY action", catalog: catalog)
        XCTAssertEqual(q.sources, ["ods.expose", "ods.click"])
        XCTAssertTrue(q.readsEvents)
        XCTAssertEqual(q.canonical, "SELECT action, count(*) FROM ods.expose, ods.click GROUP BY action EMIT CHANGES")
        XCTAssertEqual(message("SELECT count(*) FROM dws, dwm"), "only event streams with the same schema can be combined in FROM")
        XCTAssertEqual(message("SELECT count(*) FROM ods.click, dws"), "only event streams with the same schema can be combined in FROM")
        XCTAssertThrowsError(try q.requireSingleSource())
    }
}
