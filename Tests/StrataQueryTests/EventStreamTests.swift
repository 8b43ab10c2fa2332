import Foundation
import StrataCore
import StrataTestSupport
import XCTest
@testable import StrataQuery

/// Queries over the micro-queues: raw events as an append stream in event time (`ts`), each
/// (event_id, ts) counted once, several topics read as one union; checked against a brute-force
/// computation over the same events.
final class EventStreamTests: XCTestCase {
    let catalog = Catalog(topology: CatalogTests.topology)

    struct Event { var id: String; var ts: Int64; var action: String; var content: String; var user: String; var page: String }

    /// Events over `minutes` minutes, delivered per (topic, partition) roughly in ts order with
    /// jitter below the grace, plus `duplicates` redeliveries of earlier events.
    static func workload(seed: UInt64, events: Int, minutes: Int64, duplicates: Int) -> (unique: [Event], deliveries: [(Event, Int)]) {
        var rng = SeededRandom(seed: seed)
        let start: Int64 = 1_800_000_000_000 / 60_000 * 60_000
        var unique: [Event] = []
        for i in 0..<events {
            let ts = start + Int64(i) * minutes * 60_000 / Int64(events) + Int64(rng.below(30_000))
            let action = ["expose", "click", "play"][rng.below(3)]
            unique.append(Event(id: "e\(i)", ts: ts, action: action, content: "c\(rng.below(20))", user: "u\(rng.below(50))",
                                page: ["home", "feed", "detail"][rng.below(3)]))
        }
        var deliveries = unique.map { e in (e, ["expose", "click", "play"].firstIndex(of: e.action)! * 4 + Int(e.content.dropFirst())! % 4) }
        for _ in 0..<duplicates {
            let i = rng.below(deliveries.count)
            // A redelivery shortly after the original (a producer retry, a replay).
            deliveries.insert(deliveries[i], at: min(deliveries.count, i + 1 + rng.below(50)))
        }
        return (unique, deliveries)
    }

    static func row(_ e: Event) -> [String: Value] {
        ["event_id": .string(e.id), "ts": .int(e.ts), "action": .string(e.action), "content_id": .string(e.content),
         "user_id": .string(e.user), "page": .string(e.page), "device": .object(["os": .string("ios"), "app_ver": .string("1.2")])]
    }

    func testUnionOfMicroQueuesCountsEachEventOnceInEventTimeWindows() throws {
        let (unique, deliveries) = Self.workload(seed: 7, events: 6_000, minutes: 12, duplicates: 900)
        let q = try Query.parse("""
            SELECT action, count(*) AS events, count_distinct(user_id) AS users, count_distinct(content_id) AS contents
            FROM ods.expose, ods.click, ods.play
            WHERE page <> 'detail'
            WINDOW TUMBLING 2 MINUTES
            GROUP BY action
            EMIT FINAL
            """, catalog: catalog)
        let engine = QueryEngine(q)
        engine.expectPartitions(Array(0..<12), nowMs: 0)
        var results: [QueryResult] = []
        for batch in stride(from: 0, to: deliveries.count, by: 500) {
            let slice = deliveries[batch..<min(batch + 500, deliveries.count)]
            results += try engine.ingest(slice.map { Self.row($0.0) }, partitions: slice.map(\.1))
        }
        results += engine.finish()

        // Brute force: per 2-minute window and action, the distinct events and their distinct users and contents.
        var want: [String: (events: Set<String>, users: Set<String>, contents: Set<String>)] = [:]
        for e in unique where e.page != "detail" {
            let key = "\(e.ts / 120_000 * 120_000)|\(e.action)"
            want[key, default: ([], [], [])].events.insert(e.id)
            want[key]!.users.insert(e.user)
            want[key]!.contents.insert(e.content)
        }
        var got: [String: [Int64]] = [:]
        for r in results where r.final {
            for o in r.objects {
                let key = "\(r.windowStart!)|\(o["action"]!.string!)"
                XCTAssertNil(got[key], "one final table per window")
                got[key] = [o["events"]!.exactInt!, o["users"]!.exactInt!, o["contents"]!.exactInt!]
            }
        }
        XCTAssertEqual(got, want.mapValues { [Int64($0.events.count), Int64($0.users.count), Int64($0.contents.count)] })
        XCTAssertEqual(engine.stats.duplicateEvents, 900)
        XCTAssertEqual(engine.stats.lateRows, 0)
    }

    func testAnEventPastTheGraceIsLateAndADuplicateAfterAWindowClosedIsNotCountedAgain() throws {
        let q = try Query.parse("SELECT count(*) AS n FROM ods.click WINDOW TUMBLING 1 MINUTE EMIT FINAL", catalog: catalog)
        let engine = QueryEngine(q, options: QueryOptions(graceMs: 60_000))
        let m: Int64 = 1_800_000_000_000 / 60_000 * 60_000
        func ev(_ id: String, _ ts: Int64) -> [String: Value] {
            ["event_id": .string(id), "ts": .int(ts), "action": .string("click"), "content_id": .string("c1"), "user_id": .string("u1")]
        }
        var out = try engine.ingest([ev("a", m + 1_000), ev("b", m + 2_000), ev("a", m + 1_000)])
        out += try engine.ingest([ev("c", m + 200_000)])          // watermark passes m + 60 s + grace
        out += try engine.ingest([ev("late", m + 3_000), ev("b", m + 2_000)])
        out += engine.finish()
        let first = try XCTUnwrap(out.first { $0.windowStart == m && $0.final })
        XCTAssertEqual(first.objects.first?["n"], .int(2))
        XCTAssertEqual(out.filter { $0.windowStart == m }.count, 1)
        XCTAssertEqual(engine.stats.lateRows, 2, "the late event and the duplicate of a closed window")
        XCTAssertEqual(engine.stats.duplicateEvents, 1)
    }

    func testProjectionOfEventsShowsEachEventOnce() throws {
        let q = try Query.parse("SELECT event_id, device.app_ver FROM ods.click WHERE user_id = 'u1'", catalog: catalog)
        let engine = QueryEngine(q)
        let e1: [String: Value] = ["event_id": .string("x"), "ts": .int(5), "user_id": .string("u1"), "device": .object(["app_ver": .string("2.0")])]
        let e2: [String: Value] = ["event_id": .string("y"), "ts": .int(5), "user_id": .string("u1")]
        let out = try engine.ingest([e1, e2, e1])
        XCTAssertEqual(out.last?.rows.count, 2)
        XCTAssertEqual(Set(out.last?.objects.compactMap { $0["device.app_ver"]?.string } ?? []), ["2.0"])
    }
}
