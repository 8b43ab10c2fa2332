import Foundation
import HummingbirdWSClient
import Logging
import StrataKafka
@testable import StrataServe
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// The live side of `strata serve`: WebSocket subscriptions (named and ad-hoc, shared), feed
/// files changed while it runs, and many viewers with one that never reads.
final class LiveQueryTests: ServeFixture {
    /// Frames a WebSocket session received, for the test to wait on.
    final class Frames: Sendable {
        let texts = Mutex<[String]>([])
        func append(_ text: String) { texts.withLock { $0.append(text) } }
        var all: [[String: Any]] {
            texts.withLock { $0 }.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        func first(_ predicate: ([String: Any]) -> Bool) -> [String: Any]? { all.first(where: predicate) }
        func wait(timeout: Duration = .seconds(30), _ predicate: ([String: Any]) -> Bool) async throws -> [String: Any] {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if let frame = first(predicate) { return frame }
                try await Task.sleep(for: .milliseconds(20))
            }
            throw HTTPClientError(description: "no matching WebSocket frame within \(timeout); got \(texts.withLock { $0 })")
        }
    }

    /// A WebSocket session: sends what `outbox` yields, records every frame, ends when the
    /// outbox finishes.
    func session(_ frames: Frames, outbox: AsyncStream<String>) -> Task<Void, any Error> {
        let url = "ws://127.0.0.1:\(port)/ws"
        return Task {
            try await WebSocketClient.connect(url: url, logger: Logger(label: "test.ws")) { inbound, outbound, _ in
                let reader = Task {
                    for try await message in inbound.messages(maxSize: 1 << 20) {
                        if case .text(let text) = message { frames.append(text) }
                    }
                }
                for await text in outbox { try await outbound.write(.text(text)) }
                reader.cancel()
            }
        }
    }

    static func rows(_ frame: [String: Any]) -> [[String: Any]] {
        ((frame["data"] as? [String: Any])?["rows"] as? [[String: Any]]) ?? []
    }

    func testWebSocketNamedAndSharedAdHocQueries() async throws {
        try produceBase()
        try await startServer()
        try waitReady()

        let frames = Frames()
        let (outbox, send) = AsyncStream.makeStream(of: String.self)
        let ws = session(frames, outbox: outbox)
        defer { send.finish(); ws.cancel() }
        send.yield(#"{"subscribe":"totals"}"#)
        let named = try await frames.wait { $0["type"] as? String == "result" && $0["id"] as? String == "totals"
            && Self.int(Self.rows($0).first?["clicks"]) == 13 }
        XCTAssertEqual((named["data"] as? [String: Any])?["feed"] as? String, "totals")

        // An ad-hoc query that starts now still sees the rows produced before: it reads the
        // topic's history, then the live rows.
        let sql = "SELECT content_id, sum(click) AS clicks FROM dws.content GROUP BY content_id ORDER BY content_id"
        let subscribe = String(decoding: try JSONSerialization.data(withJSONObject: ["subscribe": "mine", "sql": sql]), as: UTF8.self)
        send.yield(subscribe)
        let subscribed = try await frames.wait { $0["type"] as? String == "subscribed" && $0["id"] as? String == "mine" }
        XCTAssertEqual(subscribed["columns"] as? [String], ["content_id", "clicks"])
        let feedName = try XCTUnwrap(subscribed["feed"] as? String)
        let primed = try await frames.wait { $0["type"] as? String == "result" && $0["id"] as? String == "mine" && Self.rows($0).count == 3 }
        XCTAssertEqual(Self.rows(primed).map { $0["content_id"] as? String }, ["c00000001", "c00000002", "c00000003"])
        XCTAssertEqual(Self.rows(primed).map { Self.int($0["clicks"]) }, [5, 7, 1], "the later rev of c00000001 replaced the earlier")

        // Errors: a query that does not parse (with its position), an unknown feed, a duplicate id.
        send.yield(#"{"subscribe":"bad","sql":"SELECT cnt(*) FROM dws.content"}"#)
        let bad = try await frames.wait { $0["type"] as? String == "error" && $0["id"] as? String == "bad" }
        XCTAssertEqual(Self.int(bad["line"]), 1)
        XCTAssertEqual(Self.int(bad["column"]), 8)
        send.yield(#"{"subscribe":"nope"}"#)
        let unknown = try await frames.wait { $0["type"] as? String == "error" && $0["id"] as? String == "nope" }
        XCTAssertTrue((unknown["error"] as? String ?? "").contains("no feed named nope"))
        send.yield("not json")
        _ = try await frames.wait { $0["type"] as? String == "error" && $0["id"] is NSNull }

        // A second connection asking the same query (spelled differently) shares the evaluation.
        let other = Frames()
        let (outbox2, send2) = AsyncStream.makeStream(of: String.self)
        let ws2 = session(other, outbox: outbox2)
        defer { send2.finish(); ws2.cancel() }
        let respelled = "select content_id, SUM(click) as clicks from dws.content group by content_id order by content_id"
        send2.yield(String(decoding: try JSONSerialization.data(withJSONObject: ["subscribe": "q", "sql": respelled]), as: UTF8.self))
        let shared = try await other.wait { $0["type"] as? String == "subscribed" }
        XCTAssertEqual(shared["feed"] as? String, feedName, "one evaluation for both viewers")
        _ = try await other.wait { $0["type"] as? String == "result" && Self.rows($0).count == 3 }
        let status = try XCTUnwrap(try get("/api/status").json() as? [String: Any])
        XCTAssertEqual(Self.int(status["ad_hoc_queries"]), 1)

        // A new row reaches both viewers of the ad-hoc query and the named feed's viewer.
        try produce([row("c00000004", rev: 1, expose: 9, click: 4, play: 0, playMs: 0, report: 0, uv: 1, category: "music")])
        for f in [frames, other] {
            let update = try await f.wait { $0["type"] as? String == "result" && Self.rows($0).count == 4 }
            XCTAssertEqual(Self.int(Self.rows(update).last?["clicks"]), 4)
        }
        _ = try await frames.wait { $0["id"] as? String == "totals" && Self.int(Self.rows($0).first?["clicks"]) == 17 }

        send.yield(#"{"unsubscribe":"mine"}"#)
        _ = try await frames.wait { $0["type"] as? String == "unsubscribed" && $0["id"] as? String == "mine" }
    }

    func testChangedFeedFilesReplaceRunningFeeds() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("serve-reload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let totals = dir.appendingPathComponent("totals.sql")
        try "SELECT sum(click) AS clicks FROM dws.content WINDOW TUMBLING 1 MINUTE".write(to: totals, atomically: true, encoding: .utf8)
        try produceBase()
        try await startServer(feedDirectory: dir.path) { $0.reloadIntervalMs = 200 }
        try waitReady()
        let viewer = try SSEClient(port: port, path: "/api/feeds/totals")
        XCTAssertNotNil(try viewer.waitFor(timeout: .seconds(30)) { Self.int(($0["rows"] as? [[String: Any]])?.first?["clicks"]) == 13 })

        // Edited: the same viewer, still connected, gets the new query's result, computed over
        // the history it had not seen.
        try "SELECT sum(expose) AS exposes_now FROM dws.content WINDOW TUMBLING 1 MINUTE".write(to: totals, atomically: true, encoding: .utf8)
        let changed = try viewer.waitFor(timeout: .seconds(30)) { ($0["columns"] as? [String]) == ["exposes_now"] }
        XCTAssertEqual(Self.int((changed?["rows"] as? [[String: Any]])?.first?["exposes_now"]), 55)

        // Added, then broken (the running feeds stay, the error is reported), then removed.
        try "SELECT count(*) AS n FROM dws.content".write(to: dir.appendingPathComponent("extra.sql"), atomically: true, encoding: .utf8)
        try await waitUntil { (try? self.feedNames()) == ["extra", "totals"] }
        try "SELECT nope( FROM".write(to: dir.appendingPathComponent("broken.sql"), atomically: true, encoding: .utf8)
        try await waitUntil { ((try? self.get("/api/status").json()) as? [String: Any])?["reload_error"] is String }
        XCTAssertEqual(try feedNames(), ["extra", "totals"])
        try FileManager.default.removeItem(at: dir.appendingPathComponent("broken.sql"))
        try FileManager.default.removeItem(at: dir.appendingPathComponent("extra.sql"))
        try await waitUntil { (try? self.feedNames()) == ["totals"] }
        let status = try XCTUnwrap(try get("/api/status").json() as? [String: Any])
        XCTAssertTrue(status["reload_error"] is NSNull)
    }

    func feedNames() throws -> [String] {
        ((try get("/api/feeds").json() as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }
    }

    func waitUntil(timeout: Duration = .seconds(30), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            guard ContinuousClock.now < deadline else { throw HTTPClientError(description: "condition not met within \(timeout)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// 200 SSE viewers of a large feed (≈ 130 KB per result) and one connection that never
    /// reads: every reading viewer gets each new result within seconds, the silent one loses
    /// its own oldest messages (or is disconnected), and the process's memory stays bounded.
    func testTwoHundredViewersAndOneThatNeverReads() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("serve-fanout-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "SELECT content_id, sum(click) AS clicks, content.title AS title FROM dws.content GROUP BY content_id, content.title ORDER BY content_id"
            .write(to: dir.appendingPathComponent("big.sql"), atomically: true, encoding: .utf8)
        try produce((0..<2000).map { row(String(format: "c%08d", $0), rev: 1, expose: 1, click: 1, play: 0, playMs: 0, report: 0, uv: 1, category: "x") })
        try await startServer(viewerBuffer: 8, feedDirectory: dir.path)
        try waitReady()
        try await waitUntil { self.server?.hub("big")?.currentJSON?.contains("c00001999") ?? false }

        // The silent one: a tiny receive buffer, a request, and never a read.
        let silent = try TestSocket(port: port, receiveBuffer: 4096)
        try silent.send("GET /api/feeds/big HTTP/1.1\r\nHost: x\r\n\r\n")
        var viewers: [TestSocket] = []
        for _ in 0..<200 {
            let socket = try TestSocket(port: port)
            try socket.send("GET /api/feeds/big HTTP/1.1\r\nHost: x\r\n\r\n")
            viewers.append(socket)
        }
        try await waitUntil { self.server?.hub("big")?.viewerCount == 201 }
        let rssBefore = Self.residentBytes()
        var slowest = Duration.zero
        let rounds = 50
        for round in 1...rounds {
            try produce([row("c99999999", rev: round, expose: 1, click: round, play: 0, playMs: 0, report: 0, uv: 1, category: "x")])
            let marker = Array(#""content_id":"c99999999","clicks":\#(round),"#.utf8)
            let started = ContinuousClock.now
            for viewer in viewers {
                XCTAssertTrue(viewer.drain(until: marker, deadline: started + .seconds(20)), "a reading viewer missed round \(round)")
            }
            slowest = max(slowest, ContinuousClock.now - started)
        }
        let rssAfter = Self.residentBytes()
        let hub = try XCTUnwrap(server?.hub("big"))
        XCTAssertGreaterThan(hub.droppedCount, 0, "the silent viewer's buffer filled: it lost its own oldest messages")
        XCTAssertLessThan(rssAfter - rssBefore, 200 << 20, "memory stays bounded: \(rssBefore >> 20) → \(rssAfter >> 20) MiB")
        print("fan-out test: 200 viewers × \(rounds) results of \(hub.currentJSON?.utf8.count ?? 0) bytes; slowest round \(slowest); dropped \(hub.droppedCount), disconnected \(hub.disconnectedCount); RSS \(rssBefore >> 20) → \(rssAfter >> 20) MiB")
        _ = silent
    }

    static func residentBytes() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = statm.split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
    }
}
