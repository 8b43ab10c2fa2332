import Foundation
import StrataCore
import StrataKafka
import StrataQuery
@testable import StrataServe
import StrataTestSupport
import Synchronization
import XCTest

/// A real `strata serve` server (in process, ephemeral port) over a fresh DWS topic of the test
/// broker; rows are produced into `<prefix>dws.content` and read back through every endpoint.
class ServeFixture: XCTestCase {
    var brokers = ""
    var prefix = ""
    var server: StrataServer?
    var serverTask: Task<Void, any Error>?
    var port = 0
    var minute: Int64 = 0
    var emittedAt: Int64 = 0

    static let feedDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("sql/dashboard").path
    /// The repository's topology as sources, as `strata serve` plans every query.
    static let catalog = Catalog(topology: try! Topology.load(path: URL(fileURLWithPath: feedDirectory)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("topology/topology.yaml").path))

    override func setUp() async throws {
        brokers = try TestEnvironment.brokers
        prefix = "serve-\(UUID().uuidString.prefix(8).lowercased())."
        let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": brokers]))
        let results = try admin.createTopics([NewTopic(name: prefix + "dws.content", partitions: 2),
                                              NewTopic(name: prefix + "dwm.content_user", partitions: 2)])
        for (topic, error) in results { if let error { XCTFail("create \(topic): \(error)") } }
        minute = Int64(Date().timeIntervalSince1970 * 1000) / 60_000 * 60_000
        emittedAt = Int64(Date().timeIntervalSince1970 * 1000)
    }

    override func tearDown() async throws {
        // As SIGTERM does: the feeds end their viewers' streams, then the server stops. A server
        // that does not stop within 20 s fails the test (and is cancelled) instead of hanging the suite.
        if let server, let serverTask {
            await server.shutdown()
            if !(await Self.finishes(serverTask, within: .seconds(20))) {
                XCTFail("the server did not shut down gracefully within 20 s")
                serverTask.cancel()
                if !(await Self.finishes(serverTask, within: .seconds(20))) { XCTFail("nor when cancelled") }
            }
        }
        server = nil
        serverTask = nil
    }

    // MARK: helpers

    func row(_ content: String, rev: Int, expose: Int, click: Int, play: Int, playMs: Int, report: Int, uv: Int,
             category: String, emittedAt: Int64? = nil) -> String {
        """
        {"minute":\(minute),"content_id":"\(content)","expose":\(expose),"click":\(click),"play":\(play),"play_ms":\(playMs),\
        "like":0,"share":0,"comment":0,"report":\(report),"uv":\(uv),\
        "content":{"title":"Title \(content)","category":"\(category)","author_id":"a\(content.suffix(2))","region":"north"},\
        "final":false,"rev":\(rev),"emitted_at":\(emittedAt ?? self.emittedAt)}
        """
    }

    func produce(_ rows: [String]) throws {
        let producer = try KafkaProducer(config: .producer(bootstrapServers: brokers))
        for row in rows {
            let key = Array((Value.decodeRow(row)?["content_id"]?.string ?? "").utf8)
            try producer.produce(topic: prefix + "dws.content", key: key, value: Array(row.utf8))
        }
        try producer.flush()
    }

    /// Four rows of one minute (c1 twice: the later rev replaces the earlier).
    /// Totals: exposes 55, clicks 13, plays 5, play_ms 6500, uv 10.
    func produceBase() throws {
        try produce([
            row("c00000001", rev: 2, expose: 10, click: 2, play: 1, playMs: 1000, report: 0, uv: 3, category: "game"),
            row("c00000002", rev: 4, expose: 30, click: 7, play: 2, playMs: 2500, report: 2, uv: 5, category: "news"),
            row("c00000003", rev: 3, expose: 5, click: 1, play: 0, playMs: 0, report: 1, uv: 1, category: "game"),
            row("c00000001", rev: 6, expose: 20, click: 5, play: 3, playMs: 4000, report: 0, uv: 4, category: "game"),
        ])
    }

    /// DWM rows of the same minute: users u1 (two contents), u2 and u3, and a later rev of
    /// (c1, u1) that replaces the first. Distinct users: 3; user-minute rows: 4.
    func produceUsers() throws {
        let producer = try KafkaProducer(config: .producer(bootstrapServers: brokers))
        for (content, user, rev) in [("c00000001", "u1", 1), ("c00000002", "u1", 1), ("c00000001", "u2", 1), ("c00000003", "u3", 2), ("c00000001", "u1", 3)] {
            let row = #"{"minute":\#(minute),"content_id":"\#(content)","user_id":"\#(user)","expose":1,"click":0,"final":false,"rev":\#(rev),"emitted_at":\#(emittedAt)}"#
            try producer.produce(topic: prefix + "dwm.content_user", key: Array(content.utf8), value: Array(row.utf8))
        }
        try producer.flush()
    }

    final class PortBox: Sendable { let port = Mutex<Int?>(nil) }

    func startServer(token: String? = nil, viewerBuffer: Int = 64, feedDirectory: String = ServeFixture.feedDirectory,
                     configure: (inout ServeOptions) -> Void = { _ in }) async throws {
        var options = ServeOptions()
        options.port = 0
        options.token = token
        options.topicPrefix = prefix
        options.catalog = Self.catalog
        options.heartbeatMs = 500
        options.viewerBuffer = viewerBuffer
        options.feedDirectory = feedDirectory
        configure(&options)
        let feeds = try FeedDefinition.load(directory: feedDirectory, topicPrefix: prefix, catalog: Self.catalog)
        let server = StrataServer(options: options, feeds: feeds,
                                  consumerConfig: .consumer(bootstrapServers: brokers, groupId: nil, clientId: "strata-serve-test"))
        let box = PortBox()
        self.server = server
        serverTask = Task { try await server.run(handleSignals: false) { port in box.port.withLock { $0 = port } } }
        let deadline = ContinuousClock.now + .seconds(30)
        while box.port.withLock({ $0 }) == nil {
            guard ContinuousClock.now < deadline else { throw HTTPClientError(description: "the server did not start within 30 s") }
            try await Task.sleep(for: .milliseconds(20))
        }
        port = box.port.withLock { $0 }!
        XCTAssertGreaterThan(port, 0)
    }

    func get(_ path: String, headers: [String: String] = [:]) throws -> TestResponse {
        try HTTP.request(port: port, path: path, headers: headers)
    }

    func waitReady(timeout: Duration = .seconds(60)) throws {
        let deadline = ContinuousClock.now + timeout
        while try get("/readyz").status != 200 {
            guard ContinuousClock.now < deadline else { return XCTFail("not ready within \(timeout): \(try get("/readyz").text)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    static func int(_ v: Any?) -> Int? { (v as? NSNumber)?.intValue }

    static func finishes(_ task: Task<Void, any Error>, within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        let done = Atomic<Bool>(false)
        let watcher = Task { _ = await task.result; done.store(true, ordering: .relaxed) }
        while !done.load(ordering: .relaxed) {
            guard ContinuousClock.now < deadline else { watcher.cancel(); return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }
}
