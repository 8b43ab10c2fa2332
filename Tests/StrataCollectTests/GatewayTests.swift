import CompressNIO
import Foundation
import NIOCore
import StrataCollect
import StrataCore
import StrataTestSupport
import XCTest

/// Every endpoint and answer of the gateway, against the real test broker.
final class GatewayTests: XCTestCase {
    var brokers = ""
    var spoolDirs: [String] = []

    override func setUpWithError() throws { brokers = try TestEnvironment.brokers }

    override func tearDown() {
        for d in spoolDirs { try? FileManager.default.removeItem(atPath: d) }
    }

    func options(_ topic: RawTopic, _ change: (inout CollectOptions) -> Void = { _ in }) -> CollectOptions {
        var o = CollectOptions()
        o.rawTopic = topic.name
        o.spoolDirectory = temporaryDirectory("spool")
        spoolDirs.append(o.spoolDirectory)
        o.accessLogSample = 0
        change(&o)
        return o
    }

    func json(_ r: EventPoster.Response) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any], r.text)
    }

    func testGoodMixedAndBadBatchesGetTheirStatusesAndOnlyGoodEventsReachTheRawTopic() throws {
        let topic = try RawTopic(brokers: brokers)
        let gateway = try Gateway(options: options(topic), brokers: brokers)
        defer { gateway.stop() }
        let client = try gateway.poster()
        var events = EventFactory()
        var expected: [String] = []

        // A good array: all accepted, durable at the broker.
        let good = events.batch(20)
        var r = try client.post(good.body)
        XCTAssertEqual(r.status, 202, r.text)
        XCTAssertEqual(try json(r)["accepted"] as? Int, 20)
        XCTAssertEqual((try json(r)["rejected"] as? [Any])?.count, 0)
        XCTAssertEqual(try json(r)["durable"] as? String, "broker")
        expected += good.ids

        // NDJSON, gzip-compressed.
        let lines = (0..<5).map { _ in events.event() }
        var raw = ByteBuffer(string: lines.map(\.json).joined(separator: "\n") + "\n")
        let gz = try raw.compress(with: .gzip())
        r = try client.post(Array(buffer: gz), headers: [("Content-Encoding", "gzip")])
        XCTAssertEqual(r.status, 202, r.text)
        XCTAssertEqual(try json(r)["accepted"] as? Int, 5)
        expected += lines.map(\.id)

        // Mixed: the good ones are accepted, the bad ones listed by index and reason.
        let ok1 = events.event(), ok2 = events.event()
        let bad = events.event()
        let mixed = "[" + [ok1.json,
                           #"{"event_id":"x","ts":"yesterday","action":"click","content_id":"c00000001","user_id":"u"}"#,
                           bad.json.replacingOccurrences(of: "\"click\"", with: "\"teleport\""),
                           #"{"ts":1,"action":"click","content_id":"c00000001","user_id":"u"}"#,
                           ok2.json].joined(separator: ",") + "]"
        r = try client.post(Array(mixed.utf8))
        XCTAssertEqual(r.status, 202, r.text)
        XCTAssertEqual(try json(r)["accepted"] as? Int, 2)
        let rejected = try XCTUnwrap(try json(r)["rejected"] as? [[String: Any]])
        XCTAssertEqual(rejected.map { $0["index"] as? Int }, [1, 2, 3])
        XCTAssertEqual(rejected.map { $0["reason"] as? String }, ["wrong_type:ts", "unknown_action", "missing_field:event_id"])
        expected += [ok1.id, ok2.id]

        // Bad bodies: nothing of them may reach the topic.
        let cases: [(String, [UInt8], Int, String)] = [
            ("truncated array", Array(events.batch(3).body.dropLast(10)), 400, "malformed_body"),
            ("not JSON", Array("hello, world".utf8), 400, "malformed_json"),
            ("empty", [], 400, "empty_body"),
            ("invalid UTF-8", Array(#"[{"event_id":"bad-utf8","ts":1,"action":"click","content_id":"c00000001","user_id":""#.utf8) + [0xFF, 0xFE]
                + Array(#""}]"#.utf8), 400, "invalid_utf8"),
            ("wrong types", Array(#"[{"event_id":7,"ts":1,"action":"click","content_id":"c00000001","user_id":"u"}]"#.utf8), 400, "wrong_type:event_id"),
            ("not an object", Array("[1,\"two\",null]".utf8), 400, "not_an_object"),
            ("100 000 items", Array(("[" + Array(repeating: "{}", count: 100_000).joined(separator: ",") + "]").utf8), 413, "too_many_items"),
            ("10 MB", Array(repeating: UInt8(ascii: " "), count: 10 << 20), 413, "body_too_large"),
        ]
        for (name, body, status, reason) in cases {
            let c = try gateway.poster()
            let answer = try c.post(body)
            XCTAssertEqual(answer.status, status, "\(name): \(answer.text)")
            let j = try json(answer)
            let got = (j["error"] as? String) ?? ((j["rejected"] as? [[String: Any]])?.first?["reason"] as? String)
            XCTAssertEqual(got, reason, name)
            if status == 400, j["rejected"] != nil { XCTAssertEqual(j["accepted"] as? Int, 0, name) }
        }
        // A gzip body that is not gzip, one that inflates past the limit, an unknown encoding.
        r = try gateway.poster().post(Array("not gzip at all".utf8), headers: [("Content-Encoding", "gzip")])
        XCTAssertEqual(r.status, 400, r.text)
        XCTAssertEqual(try json(r)["error"] as? String, "bad_gzip")
        var zeros = ByteBuffer(bytes: [UInt8](repeating: UInt8(ascii: " "), count: 4 << 20))
        let bomb = try zeros.compress(with: .gzip())
        XCTAssertLessThan(bomb.readableBytes, 1 << 20)
        r = try gateway.poster().post(Array(buffer: bomb), headers: [("Content-Encoding", "gzip")])
        XCTAssertEqual(r.status, 413, r.text)
        r = try gateway.poster().post(good.body, headers: [("Content-Encoding", "br")])
        XCTAssertEqual(r.status, 415, r.text)

        let stored = try topic.read()
        XCTAssertEqual(stored.compactMap { $0.event["event_id"] as? String }.sorted(), expected.sorted(),
                       "exactly the accepted events, once each")
        for (key, event) in stored {
            XCTAssertEqual(key, event["content_id"] as? String, "keyed by content_id")
            XCTAssertEqual(event["client_ip"] as? String, "127.0.0.1")
            XCTAssertGreaterThan((event["server_ts"] as? Int) ?? 0, 1_700_000_000_000)
        }
        XCTAssertEqual(gateway.metric(#"strata_collect_events_accepted_total{durable="broker"}"#), Double(expected.count))
        XCTAssertEqual(gateway.metric(#"strata_collect_events_rejected_total{reason="unknown_action"}"#), 1)
        XCTAssertEqual(gateway.metric(#"strata_collect_events_rejected_total{reason="too_many_items"}"#), 1)
    }

    func testProbesSDKAndCORS() throws {
        let topic = try RawTopic(brokers: brokers)
        let gateway = try Gateway(options: options(topic) { $0.corsOrigins = ["https://shop.example"] }, brokers: brokers)
        defer { gateway.stop() }
        let client = try gateway.poster()

        var r = try client.get("/healthz")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(try json(r)["degraded"] as? Bool, false)

        r = try client.get("/sdk.js")
        XCTAssertEqual(r.status, 200)
        XCTAssertTrue(r.headers["content-type"]?.hasPrefix("text/javascript") ?? false)
        XCTAssertTrue(r.text.contains("sendBeacon"))
        XCTAssertTrue(r.text.contains("Retry-After"))

        r = try client.raw(Array(("OPTIONS /v1/events HTTP/1.1\r\nHost: x\r\nOrigin: https://shop.example\r\n"
                                  + "Access-Control-Request-Method: POST\r\n\r\n").utf8))
        XCTAssertEqual(r.status, 204)
        XCTAssertEqual(r.headers["access-control-allow-origin"], "https://shop.example")
        XCTAssertEqual(r.headers["access-control-allow-methods"], "POST, OPTIONS")
        XCTAssertTrue(r.headers["access-control-allow-headers"]?.contains("Content-Encoding") ?? false)

        var events = EventFactory()
        r = try client.post(events.batch(2).body, headers: [("Origin", "https://evil.example")])
        XCTAssertEqual(r.status, 202)
        XCTAssertNil(r.headers["access-control-allow-origin"], "an origin not on the list gets no CORS grant")

        r = try client.get("/metrics")
        XCTAssertEqual(r.status, 200)
        for name in ["strata_collect_events_accepted_total", "strata_collect_spool_bytes", "strata_collect_broker_outstanding",
                     "strata_collect_request_duration_seconds", "strata_collect_requests_total"] {
            XCTAssertTrue(r.text.contains(name), name)
        }
    }

    func testSiteKeysRateLimitAndForwardedFor() throws {
        let topic = try RawTopic(brokers: brokers)
        let gateway = try Gateway(options: options(topic) {
            $0.siteKeys = ["k-one", "k-two"]
            $0.rateLimit = 0.5
            $0.rateBurst = 2
            $0.rateKeyHeader = "X-Strata-Site"
            $0.trustedProxies = ["127.0.0.1"]
        }, brokers: brokers)
        defer { gateway.stop() }
        let client = try gateway.poster()
        var events = EventFactory()

        var r = try client.post(events.batch(1).body)
        XCTAssertEqual(r.status, 401, r.text)
        r = try client.post(events.batch(1).body, headers: [("X-Strata-Key", "wrong")])
        XCTAssertEqual(r.status, 401, r.text)

        let viaHeader = events.batch(1)
        r = try client.post(viaHeader.body, headers: [("X-Strata-Key", "k-one"), ("X-Strata-Site", "site-a"),
                                                      ("X-Forwarded-For", "198.51.100.1, 203.0.113.7")])
        XCTAssertEqual(r.status, 202, r.text)
        // sendBeacon cannot set headers: the key also works in the query string.
        let viaQuery = events.batch(1)
        let queryClient = try EventPoster(url: "http://127.0.0.1:\(gateway.port)/v1/events?key=k-two")
        r = try queryClient.post(viaQuery.body, headers: [("X-Strata-Site", "site-a")])
        XCTAssertEqual(r.status, 202, r.text)
        // The burst of 2 for site-a is spent: 429 with Retry-After; another site is not affected.
        r = try client.post(events.batch(1).body, headers: [("X-Strata-Key", "k-one"), ("X-Strata-Site", "site-a")])
        XCTAssertEqual(r.status, 429, r.text)
        XCTAssertGreaterThanOrEqual(r.retryAfter ?? 0, 1)
        let other = events.batch(1)
        r = try client.post(other.body, headers: [("X-Strata-Key", "k-one"), ("X-Strata-Site", "site-b")])
        XCTAssertEqual(r.status, 202, r.text)

        let stored = try topic.read()
        XCTAssertEqual(Set(stored.compactMap { $0.event["event_id"] as? String }), Set(viaHeader.ids + viaQuery.ids + other.ids))
        let ips = Dictionary(stored.map { (($0.event["event_id"] as? String) ?? "", ($0.event["client_ip"] as? String) ?? "") }) { a, _ in a }
        XCTAssertEqual(ips[viaHeader.ids[0]], "203.0.113.7", "the peer is a trusted proxy: its X-Forwarded-For counts")
        XCTAssertEqual(ips[viaQuery.ids[0]], "127.0.0.1")
        XCTAssertEqual(gateway.metric(#"strata_collect_events_rejected_total{reason="rate_limited"}"#), 1)
    }

    func testSlowBodyIsCutOffAndIdleConnectionsClosed() throws {
        let topic = try RawTopic(brokers: brokers)
        let gateway = try Gateway(options: options(topic) {
            $0.bodyTimeout = .milliseconds(500)
            $0.idleTimeout = .seconds(3)
        }, brokers: brokers)
        defer { gateway.stop() }
        var events = EventFactory()
        let body = events.batch(3).body
        let head = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n"
        // Half the body, a pause past the body deadline, then the rest.
        let slow = try RawSocket(port: gateway.port)
        try slow.send(Array(head.utf8) + body.prefix(body.count / 2))
        Thread.sleep(forTimeInterval: 1.0)
        try slow.send(Array(body.dropFirst(body.count / 2)))
        let response = slow.readStatus(timeout: .seconds(10))
        XCTAssertEqual(response, 408)

        // A connection that sends nothing is closed by the server.
        let idle = try RawSocket(port: gateway.port)
        XCTAssertTrue(idle.waitForClose(timeout: .seconds(15)), "the idle connection was closed")
        XCTAssertTrue(try topic.eventIds().isEmpty)
    }
}

/// `strata gen events --http`: the synthetic workload through the gateway, counted on both sides.
final class GenThroughGatewayTests: XCTestCase {
    func testGenEventsPostsTheWorkloadAndItsAccountingMatchesTheTopic() throws {
        let brokers = try TestEnvironment.brokers
        let topic = try RawTopic(brokers: brokers)
        var options = CollectOptions()
        options.rawTopic = topic.name
        options.spoolDirectory = temporaryDirectory("spool")
        options.accessLogSample = 0
        defer { try? FileManager.default.removeItem(atPath: options.spoolDirectory) }
        let gateway = try Gateway(options: options, brokers: brokers)
        defer { gateway.stop() }

        let stats = temporaryDirectory("gen") + ".json"
        defer { try? FileManager.default.removeItem(atPath: stats) }
        let gen = try launchStrata(strataBinary(packageRoot: packageRoot),
                                   ["gen", "events", "--count", "2000", "--malformed-share", "0.05", "--http", gateway.url,
                                    "--http-batch", "25", "--stats-file", stats, "--brokers", brokers,
                                    "--topology", packageRoot.appendingPathComponent("topology/topology.yaml").path])
        gen.waitUntilExit()
        XCTAssertEqual(gen.terminationStatus, 0)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stats))) as? [String: Any])
        let http = try XCTUnwrap(json["http"] as? [String: Any], "\(json)")
        let accepted = try XCTUnwrap(http["accepted"] as? Int)
        let rejected = try XCTUnwrap(http["rejected"] as? Int)
        XCTAssertEqual(accepted + rejected, 2000, "every generated event was answered for")
        XCTAssertEqual(http["requests"] as? Int, 80, "2000 events in batches of 25")
        XCTAssertGreaterThan(rejected, 0)
        XCTAssertEqual(rejected, json["malformed"] as? Int, "exactly the malformed lines are refused at the door")
        XCTAssertEqual(try topic.eventIds().count, accepted)
    }
}
