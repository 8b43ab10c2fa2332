import Foundation
import StrataCore
import StrataKafka
import StrataQuery
@testable import StrataServe
import StrataTestSupport
import Synchronization
import XCTest

/// Every endpoint of a real server over a real broker (the fixture in ServeFixture.swift).
final class ServeTests: ServeFixture {
    // MARK: endpoints

    func testHealthReadyMetricsAndFeedList() async throws {
        try produceBase()
        try await startServer()
        let health = try get("/healthz")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.text, "{\"status\":\"ok\"}")
        try waitReady()
        let ready = try XCTUnwrap(try get("/readyz").json() as? [String: Any])
        XCTAssertEqual(ready["ready"] as? Bool, true)
        let topics = try XCTUnwrap(ready["topics"] as? [[String: Any]])
        XCTAssertEqual(topics.map { $0["topic"] as? String }, [prefix + "dwm.content_user", prefix + "dws.content"],
                       "one shared consumer per topic")
        XCTAssertEqual(topics.map { Self.int($0["queries"]) }, [1, 6], "every feed over a topic evaluated by its one consumer")

        let list = try get("/api/feeds")
        XCTAssertEqual(list.status, 200)
        XCTAssertEqual(list.headers["content-type"], "application/json; charset=utf-8")
        let feeds = try XCTUnwrap(list.json() as? [[String: Any]])
        XCTAssertEqual(feeds.compactMap { $0["name"] as? String }, ["categories", "hour", "hour_uv", "top_clicks", "top_reports", "totals", "trend"])
        for feed in feeds {
            XCTAssertEqual(feed["topic"] as? String, prefix + (feed["name"] as? String == "hour_uv" ? "dwm.content_user" : "dws.content"))
            XCTAssertNil(feed["failure"] as? String)
            XCTAssertFalse((feed["columns"] as? [String] ?? []).isEmpty)
        }

        let metrics = try get("/metrics")
        XCTAssertEqual(metrics.status, 200)
        XCTAssertTrue(metrics.headers["content-type"]?.hasPrefix("text/plain") ?? false)
        XCTAssertTrue(metrics.text.contains("strata_serve_rows_consumed_total"), metrics.text)
        XCTAssertTrue(metrics.text.contains("# TYPE"), metrics.text)

        XCTAssertEqual(try get("/api/feeds/nope").status, 404)
        XCTAssertEqual(try get("/nothing-here").status, 404)

        let openapi = try get("/openapi.yaml")
        XCTAssertEqual(openapi.status, 200)
        for path in ["/api/feeds/{name}:", "/ws:", "/api/query:", "/api/status:", "/readyz:", "/metrics:"] {
            XCTAssertTrue(openapi.text.contains(path), "the OpenAPI document lacks \(path)")
        }
        let status = try XCTUnwrap(try get("/api/status").json() as? [String: Any])
        XCTAssertEqual((status["topics"] as? [Any])?.count, 2)
        XCTAssertEqual(Self.int(status["ad_hoc_queries"]), 0)
    }

    func testPageIsSelfContained() async throws {
        try await startServer()
        let page = try get("/")
        XCTAssertEqual(page.status, 200)
        XCTAssertEqual(page.headers["content-type"], "text/html; charset=utf-8")
        let html = page.text
        for needle in ["<svg", "EventSource", "/api/feeds", "id=\"v-clicks\"", "id=\"freshness\"", "<style>", "<script>"] {
            XCTAssertTrue(html.contains(needle), "page lacks \(needle)")
        }
        for external in ["http://", "https://", "src=", "<link", "@import"] {
            XCTAssertFalse(html.contains(external), "page refers to something outside itself: \(external)")
        }
    }

    func testOneShotQuery() async throws {
        try produceBase()
        try await startServer()
        let sql = "SELECT sum(expose) AS exposes, sum(click) AS clicks, sum(play_ms) AS play_ms, count(*) AS contents FROM dws.content"
        let body = String(decoding: try JSONSerialization.data(withJSONObject: ["sql": sql]), as: UTF8.self)
        // The produced rows are flushed; poll (with a deadline) in case the broker shows them late.
        var answer: [String: Any] = [:]
        let deadline = ContinuousClock.now + .seconds(60)
        repeat {
            let response = try HTTP.request(port: port, method: "POST", path: "/api/query", body: body)
            XCTAssertEqual(response.status, 200, response.text)
            answer = try XCTUnwrap(response.json() as? [String: Any])
            if Self.int((answer["rows"] as? [[String: Any]])?.first?["contents"]) == 3 { break }
        } while ContinuousClock.now < deadline
        XCTAssertEqual(answer["columns"] as? [String], ["exposes", "clicks", "play_ms", "contents"])
        XCTAssertEqual(answer["windowed"] as? Bool, false)
        let rows = try XCTUnwrap(answer["rows"] as? [[String: Any]])
        XCTAssertEqual(rows.count, 1)
        XCTAssertEqual(Self.int(rows[0]["exposes"]), 55)
        XCTAssertEqual(Self.int(rows[0]["clicks"]), 13)
        XCTAssertEqual(Self.int(rows[0]["play_ms"]), 6500)

        // Windowed: window bounds lead each row, groups in ORDER BY order.
        let windowed = "SELECT content_id, sum(click) AS clicks FROM dws.content WINDOW TUMBLING 1 MINUTE GROUP BY content_id ORDER BY clicks DESC"
        let response = try HTTP.request(port: port, method: "POST", path: "/api/query",
                                        body: String(decoding: try JSONSerialization.data(withJSONObject: ["sql": windowed, "timeout_ms": 20_000]), as: UTF8.self))
        XCTAssertEqual(response.status, 200, response.text)
        let table = try XCTUnwrap(response.json() as? [String: Any])
        XCTAssertEqual(table["columns"] as? [String], ["window_start", "window_end", "content_id", "clicks"])
        let wrows = try XCTUnwrap(table["rows"] as? [[String: Any]])
        XCTAssertEqual(wrows.map { $0["content_id"] as? String }, ["c00000002", "c00000001", "c00000003"])
        XCTAssertEqual(wrows.map { Self.int($0["clicks"]) }, [7, 5, 1])
        XCTAssertEqual(wrows.map { Self.int($0["window_start"]) }, [Int(minute), Int(minute), Int(minute)])
    }

    func testOneShotErrors() async throws {
        try await startServer()
        let bad = try HTTP.request(port: port, method: "POST", path: "/api/query", body: #"{"sql": "SELECT cnt(*) FROM dws.content"}"#)
        XCTAssertEqual(bad.status, 400)
        let error = try XCTUnwrap(bad.json() as? [String: Any])
        let expected: String
        do { _ = try Query.parse("SELECT cnt(*) FROM dws.content"); expected = "" } catch { expected = error.message }
        XCTAssertEqual(error["error"] as? String, expected, "the parser's own message")
        XCTAssertEqual(Self.int(error["line"]), 1)
        XCTAssertEqual(Self.int(error["column"]), 8)

        // Planned against the topology's schemas: a typo in a column is refused, not summed as nulls.
        let typo = try HTTP.request(port: port, method: "POST", path: "/api/query", body: #"{"sql": "SELECT sum(clicks) FROM dws"}"#)
        XCTAssertEqual(typo.status, 400)
        let typoError = try XCTUnwrap(typo.json() as? [String: Any])
        XCTAssertEqual(typoError["error"] as? String, "unknown column 'clicks' in dws — did you mean click? (DESCRIBE dws lists every column)")
        XCTAssertEqual(Self.int(typoError["column"]), 12)

        let notJSON = try HTTP.request(port: port, method: "POST", path: "/api/query", body: "SELECT 1")
        XCTAssertEqual(notJSON.status, 400)
        XCTAssertTrue(notJSON.text.contains("sql"), notJSON.text)
        let limit = try HTTP.request(port: port, method: "POST", path: "/api/query",
                                     body: #"{"sql": "SELECT count(*) FROM dws.content WINDOW TUMBLING 48 HOURS"}"#)
        XCTAssertEqual(limit.status, 400, limit.text)
        XCTAssertTrue(limit.text.contains("max window length"), limit.text)
    }

    func testFeedStreamsCurrentResultThenUpdates() async throws {
        try produceBase()
        try await startServer()
        try waitReady()
        let sse = try SSEClient(port: port, path: "/api/feeds/totals")
        XCTAssertEqual(sse.status, 200)
        XCTAssertEqual(sse.headers["content-type"], "text/event-stream")
        let first = try sse.waitFor(timeout: .seconds(30)) { Self.int(($0["rows"] as? [[String: Any]])?.first?["clicks"]) == 13 }
        let table = try XCTUnwrap(first, "the totals feed never showed the produced rows")
        XCTAssertEqual(table["feed"] as? String, "totals")
        XCTAssertEqual(Self.int(table["window_start"]), Int(minute))
        XCTAssertEqual(table["columns"] as? [String], ["exposes", "clicks", "ctr", "plays", "play_ms", "uv", "contents", "newest_emitted_at"])
        let totals = try XCTUnwrap((table["rows"] as? [[String: Any]])?.first)
        XCTAssertEqual(Self.int(totals["exposes"]), 55)
        XCTAssertEqual(Self.int(totals["plays"]), 5)
        XCTAssertEqual(Self.int(totals["play_ms"]), 6500)
        XCTAssertEqual(Self.int(totals["uv"]), 10)
        XCTAssertEqual((totals["ctr"] as? NSNumber)?.doubleValue, 0.2364)
        XCTAssertEqual((totals["newest_emitted_at"] as? NSNumber)?.int64Value, emittedAt)

        // A second viewer gets the current result at once; both get the next emission.
        let second = try SSEClient(port: port, path: "/api/feeds/totals")
        XCTAssertNotNil(try second.waitFor(timeout: .seconds(10)) { Self.int(($0["rows"] as? [[String: Any]])?.first?["clicks"]) == 13 })
        try produce([row("c00000004", rev: 2, expose: 45, click: 7, play: 1, playMs: 500, report: 0, uv: 2, category: "music",
                         emittedAt: emittedAt + 1)])
        for client in [sse, second] {
            let update = try client.waitFor(timeout: .seconds(30)) { Self.int(($0["rows"] as? [[String: Any]])?.first?["clicks"]) == 20 }
            let updated = try XCTUnwrap((update?["rows"] as? [[String: Any]])?.first, "no update reached a viewer")
            XCTAssertEqual(Self.int(updated["exposes"]), 100)
            XCTAssertEqual((updated["newest_emitted_at"] as? NSNumber)?.int64Value, emittedAt + 1)
        }
        XCTAssertEqual(server?.hub("totals")?.viewerCount, 2)

        // The top list: ordered by clicks, with title, category and author.
        let top = try SSEClient(port: port, path: "/api/feeds/top_clicks")
        let topTable = try top.waitFor(timeout: .seconds(10)) { ($0["rows"] as? [[String: Any]])?.count == 4 }
        let topRows = try XCTUnwrap(topTable?["rows"] as? [[String: Any]])
        XCTAssertEqual(topRows.map { $0["content_id"] as? String }, ["c00000002", "c00000004", "c00000001", "c00000003"])
        XCTAssertEqual(topRows.first?["title"] as? String, "Title c00000002")
        XCTAssertEqual(topRows.first?["category"] as? String, "news")
    }

    // MARK: safety

    func testTokenRule() async throws {
        XCTAssertTrue(ServeOptions.isLoopback("127.0.0.1"))
        XCTAssertTrue(ServeOptions.isLoopback("127.1.2.3"))
        XCTAssertTrue(ServeOptions.isLoopback("::1"))
        XCTAssertTrue(ServeOptions.isLoopback("localhost"))
        XCTAssertFalse(ServeOptions.isLoopback("0.0.0.0"))
        XCTAssertFalse(ServeOptions.isLoopback("10.0.0.7"))
        XCTAssertFalse(ServeOptions.isLoopback("::"))
        var open = ServeOptions()
        open.host = "0.0.0.0"
        XCTAssertThrowsError(try open.validate(), "a non-loopback address without a token")
        open.token = ""
        XCTAssertThrowsError(try open.validate(), "an empty token is no token")
        open.token = "s3cret"
        XCTAssertNoThrow(try open.validate())
        XCTAssertNoThrow(try ServeOptions().validate(), "loopback without a token")

        // A server with a token: every endpoint but the probes needs it.
        try await startServer(token: "s3cret-token")
        XCTAssertEqual(try get("/healthz").status, 200)
        XCTAssertNotEqual(try get("/readyz").status, 401)
        for path in ["/", "/api/feeds", "/api/feeds/totals", "/metrics"] {
            XCTAssertEqual(try get(path).status, 401, path)
            XCTAssertEqual(try get(path, headers: ["Authorization": "Bearer wrong"]).status, 401, path)
            XCTAssertEqual(try get(path + "?token=s3cret-toke").status, 401, path)
        }
        XCTAssertEqual(try HTTP.request(port: port, method: "POST", path: "/api/query", body: #"{"sql":"x"}"#).status, 401)
        XCTAssertEqual(try get("/api/feeds", headers: ["Authorization": "Bearer s3cret-token"]).status, 200)
        XCTAssertEqual(try get("/?token=s3cret-token").status, 200)
        XCTAssertEqual(try get("/metrics?token=s3cret-token").status, 200)
        let sse = try SSEClient(port: port, path: "/api/feeds/totals?token=s3cret-token")
        XCTAssertEqual(sse.status, 200)
        let unauthorized = try get("/api/feeds")
        XCTAssertFalse(unauthorized.text.contains("s3cret"), "the token is never echoed")
    }

    /// A viewer that never reads: publishing does not wait for it, its buffer keeps the newest
    /// messages and the dropped ones are counted; another viewer receives everything; past the
    /// drop limit the slow viewer is disconnected.
    func testSlowViewerDropsOldestAndNeverBlocks() async throws {
        let hub = FeedHub(name: "slow-test-\(UUID().uuidString.prefix(6))", bufferCapacity: 8, dropLimit: 150)
        let slow = hub.subscribe()
        let fast = hub.subscribe()
        // The fast viewer reads until the newest message: with drop-oldest buffering the newest is
        // always delivered, whatever it missed while it was not scheduled.
        let reader = Task {
            var seen: [FeedMessage] = []
            for await message in fast {
                seen.append(message)
                if message == .result("m99") { break }
            }
            return seen
        }
        let started = ContinuousClock.now
        for i in 0..<100 {
            hub.publishResult(json: "m\(i)")
            if i % 10 == 9 { await Task.yield() }
        }
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(5), "publishing never waits for a viewer")
        let fastSeen = await reader.value
        XCTAssertEqual(fastSeen.last, .result("m99"))
        XCTAssertEqual(hub.current, .result("m99"))
        XCTAssertGreaterThanOrEqual(hub.droppedCount, 92)
        XCTAssertEqual(hub.disconnectedCount, 0, "under the drop limit the slow viewer stays")
        // 60 more: m158 is the slow viewer's 151st drop, over the limit: it is disconnected, and
        // its stream ends after the 8 newest messages it held (m151…m158).
        for i in 100..<160 { hub.publishResult(json: "m\(i)") }
        XCTAssertEqual(hub.disconnectedCount, 1)
        var slowSeen: [FeedMessage] = []
        for await message in slow { slowSeen.append(message) }
        XCTAssertEqual(slowSeen, (151...158).map { .result("m\($0)") })
        XCTAssertEqual(hub.viewerCount, 1, "a disconnected viewer frees its place; the fast one stays")
        // A new viewer starts with the current result.
        let late = FeedHub(name: "late-\(UUID().uuidString.prefix(6))")
        late.publishResult(json: "now")
        var it = late.subscribe().makeAsyncIterator()
        let firstMessage = await it.next()
        XCTAssertEqual(firstMessage, .result("now"))
    }

    // MARK: a real browser

    /// Headless Chromium loads the page: the DOM holds the totals of the produced rows, the top
    /// list holds their titles, and a screenshot is not blank. Needs Debian's `chromium`
    /// (or STRATA_TEST_CHROMIUM); without it the test is skipped and says so.
    func testBrowserShowsTheTotals() async throws {
        let chromium = ProcessInfo.processInfo.environment["STRATA_TEST_CHROMIUM"] ?? "/usr/bin/chromium"
        guard FileManager.default.isExecutableFile(atPath: chromium) else {
            throw XCTSkip("no browser at \(chromium): apt-get install -y chromium (or set STRATA_TEST_CHROMIUM)")
        }
        try produceBase()
        try produceUsers()
        try await startServer()
        try waitReady()
        let deadline = ContinuousClock.now + .seconds(30)
        while !(server?.hub("totals")?.currentJSON?.contains("\"clicks\":13,") ?? false)
            || !(server?.hub("top_clicks")?.currentJSON?.contains("c00000003") ?? false)
            || !(server?.hub("hour_uv")?.currentJSON?.contains("\"uv\":3,") ?? false) {
            guard ContinuousClock.now < deadline else { return XCTFail("the feeds never showed the produced rows") }
            try await Task.sleep(for: .milliseconds(20))
        }
        let url = "http://127.0.0.1:\(port)/"
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1600,900", "--timeout=3000"]
        let dom = String(decoding: try Self.run(chromium, flags + ["--dump-dom", url]), as: UTF8.self)
        for (id, value) in [("exposes", "55"), ("clicks", "13"), ("plays", "5"), ("play_ms", "6500"), ("uv", "10"), ("ctr", "0.2364")] {
            XCTAssertTrue(dom.contains("id=\"v-\(id)\" data-value=\"\(value)\""), "the DOM lacks \(id) = \(value)")
        }
        XCTAssertTrue(dom.contains(">55<") && dom.contains(">13<"), "the numbers are shown")
        // The last hour holds only this minute here: the same sums; UV counted from DWM users.
        for (id, value) in [("exposes", "55"), ("clicks", "13"), ("plays", "5"), ("play_ms", "6500"), ("uv", "3")] {
            XCTAssertTrue(dom.contains("id=\"h-\(id)\" data-value=\"\(value)\""), "the DOM lacks last-hour \(id) = \(value)")
        }
        XCTAssertTrue(dom.contains("data-emitted-at=\"\(emittedAt)\""), "the freshness indicator uses the newest emitted_at")
        for title in ["Title c00000001", "Title c00000002", "Title c00000003"] {
            XCTAssertTrue(dom.contains(title), "the top list lacks \(title)")
        }
        let png = FileManager.default.temporaryDirectory.appendingPathComponent("strata-serve-\(UUID().uuidString).png")
        defer { try? FileManager.default.removeItem(at: png) }
        _ = try Self.run(chromium, flags + ["--hide-scrollbars", "--screenshot=\(png.path)", url])
        let image = try Data(contentsOf: png)
        XCTAssertEqual(Array(image.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "a PNG")
        // A blank 1600×900 page compresses to a few KB; text and charts do not.
        XCTAssertGreaterThan(image.count, 30_000, "the screenshot looks blank")
    }

    /// Runs a program with a 90 s bound and returns its standard output.
    static func run(_ path: String, _ arguments: [String]) throws -> Data {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("strata-serve-out-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + .seconds(90)
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                process.terminate()
                throw HTTPClientError(description: "\(path) did not finish within 90 s")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return try Data(contentsOf: out)
    }

    func testFeedFilesLoad() throws {
        let feeds = try FeedDefinition.load(directory: Self.feedDirectory)
        XCTAssertEqual(feeds.map(\.name), ["categories", "hour", "hour_uv", "top_clicks", "top_reports", "totals", "trend"])
        XCTAssertEqual(Set(feeds.map(\.topic)), ["dws.content", "dwm.content_user"])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("serve-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "SELECT nope( FROM dws.content".write(to: dir.appendingPathComponent("bad.sql"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try FeedDefinition.load(directory: dir.path)) { error in
            XCTAssertTrue(String(describing: error).contains("bad.sql"), String(describing: error))
        }
    }
}
