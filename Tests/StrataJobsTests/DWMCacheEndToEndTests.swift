import Foundation
import StrataCore
import StrataDims
import StrataGen
import StrataJobs
import StrataKafka
import StrataRedis
import StrataSplit
import StrataTestSupport
import Synchronization
import XCTest
import StrataDWM

/// The dimension cache seen through the dwm job: a Redis outage in the middle of a run, and a
/// changelog update reaching the next window's rows. Each test owns a private `redis-server`.
extension DWMEndToEndTests {
    /// split and dwm run continuously while the input arrives in three phases: Redis up, Redis
    /// killed, Redis back (empty). The final rows are exact, rows published during the outage
    /// carry dimensions (from the store), and the Redis tier answers again after the restart.
    func testRedisStoppedInTheMiddleOfARunKeepsRowsExactAndIsUsedAgain() throws {
        let redis = try RedisServerProcess()
        // No in-process tier: every emission's lookups reach Redis (or the store when it is down).
        var env = try makeEnv(seed: 21, redisURL: "redis://127.0.0.1:\(redis.port)") { $0.localCapacity = 0 }
        env.lines = generate(events: 9_000, seed: 21)

        let run = try PhasedRun(self, env: env)
        defer { _ = run.finish() }   // a test that throws midway stops the jobs too
        func phase(_ range: Range<Int>) throws { try run.phase(range) }

        try phase(0..<3_000)
        env.cache.awaitWriteBack()
        let up = env.cache.stats
        XCTAssertGreaterThan(up.redisMisses + up.redisHits, 0, "Redis is consulted while it runs")
        XCTAssertGreaterThan(up.redisWrites, 0, "misses are written back to Redis")
        XCTAssertEqual(up.degradedLookups, 0)

        redis.stop()
        try phase(3_000..<6_000)
        let down = env.cache.stats
        XCTAssertGreaterThan(down.degradedLookups, up.degradedLookups, "lookups during the outage are answered by the store, counted")
        XCTAssertGreaterThan(down.storeQueries, up.storeQueries)
        // The breaker was closed when Redis died, so the outage's first lookup tried Redis and
        // failed; nothing can succeed while Redis is down, so the breaker is still open.
        XCTAssertGreaterThan(down.redisErrors, up.redisErrors, "the first lookup of the outage failed on Redis")
        XCTAssertTrue(env.cache.isDegraded, "no Redis call can have succeeded while Redis was down")

        try redis.start()
        // The breaker keeps lookups off Redis for `breakerOpenFor` (1 s) after a failure, then lets
        // one probe through. The job looks up nothing while no input arrives, so this test's own
        // lookups probe, until one closes the breaker.
        let known = DimensionGenerator.contentId(0)
        let reopenDeadline = Date().addingTimeInterval(30)
        while env.cache.isDegraded {
            guard Date() < reopenDeadline else { return XCTFail("the cache still routes around Redis 30 s after it came back") }
            XCTAssertNotNil(try env.cache.lookupContents([known])[known], "\(known) is answered, by the store meanwhile")
            if env.cache.isDegraded { Thread.sleep(forTimeInterval: 0.05) }
        }
        let probed = env.cache.stats
        try phase(6_000..<7_500)
        env.cache.awaitWriteBack()
        let refilled = env.cache.stats
        XCTAssertGreaterThan(refilled.redisWrites, probed.redisWrites, "the restarted (empty) Redis is filled again")
        // Read back from that Redis: the job's write-backs are there, under this run's key prefix.
        let reader = try RedisClient(config: try RedisConfig(url: "redis://127.0.0.1:\(redis.port)"))
        guard case .array(let keys) = try reader.command(["KEYS", "*"]) else { return XCTFail("KEYS did not answer an array") }
        let keyPrefix = Array(env.cache.config.keyPrefix.utf8)
        XCTAssertGreaterThan(keys.count, 1, "more than the probe's entry")
        for case .string(let k) in keys { XCTAssertEqual(Array(k.prefix(keyPrefix.count)), keyPrefix, String(decoding: k, as: UTF8.self)) }
        try phase(7_500..<9_000)
        let back = env.cache.stats
        XCTAssertGreaterThan(back.redisHits, refilled.redisHits, "and answers lookups again")
        XCTAssertEqual(back.degradedLookups, refilled.degradedLookups, "no degraded lookup once Redis is back")
        XCTAssertFalse(env.cache.isDegraded)
        XCTAssertEqual(run.finish(), [])

        let accounting = run.dwm.stats.accounting
        XCTAssertTrue(accounting.isBalanced, "\(accounting)")
        XCTAssertEqual(accounting.consumed, run.split.stats.routedTotal)
        XCTAssertEqual(run.dwm.stats.rowsWithoutContent, 0, "no row lost its dimensions during the outage")
        let failuresBefore = testRun?.totalFailureCount ?? 0
        try assertMatches(env)
        FaultReport.record(fault: "Redis killed, restarted empty", injected: 1, recordsIn: run.split.stats.routedTotal,
                           recordsOut: accounting.consumed, lost: max(0, run.split.stats.routedTotal - accounting.consumed),
                           duplicated: max(0, accounting.consumed - run.split.stats.routedTotal),
                           exact: (testRun?.totalFailureCount ?? 0) == failuresBefore)
    }

    /// The real `strata job dwm` process (with its changelog follower): a content's category changed
    /// with `strata dims put` while the job runs is in Redis, and in every row of the next minute.
    func testChangelogUpdateReachesRedisAndTheNextWindowsRows() throws {
        let redis = try RedisServerProcess()
        let env = try makeEnv(seed: 23)
        let content = DimensionGenerator.contentId(7)
        let before = try XCTUnwrap(try env.cache.store.contents([content])[content])
        let renamed = before.category + "-renamed"
        let topologyPath = Self.root.appendingPathComponent("topology/topology.yaml").path
        let common = ["--topic-prefix", env.prefix, "--brokers", brokers, "--redis", "redis://127.0.0.1:\(redis.port)",
                      "--store", "sqlite:" + env.storePath, "--topology", topologyPath, "--log-format", "json"]

        let job = try launchStrata(strataBinary, ["job", "dwm", "--group", env.prefix + "dwm", "--instance-id", env.prefix + "0",
                                                  "--early-interval-ms", "300", "--idle-source-ms", "1000", "--until-idle", "15"] + common)
        defer { if job.isRunning { kill(job.processIdentifier, SIGKILL) } }

        // Minute m: five users click the content; its rows carry the stored category.
        let m = (Int64(Date().timeIntervalSince1970 * 1000) / 60_000 - 10) * 60_000
        let producer = try KafkaProducer(config: .producer(bootstrapServers: brokers))
        func clicks(minute: Int64, tag: String) throws {
            for u in 1...5 {
                let line = "{\"event_id\":\"\(tag)-\(u)\",\"ts\":\(minute + Int64(u) * 1_000),\"action\":\"click\","
                    + "\"content_id\":\"\(content)\",\"user_id\":\"\(DimensionGenerator.userId(u))\"}"
                try producer.produce(topic: env.prefix + "ods.click", key: Array(content.utf8), value: Array(line.utf8))
            }
            try producer.flush()
        }
        try clicks(minute: m, tag: "m0")
        let first = try waitForRow(env, minute: m, content: content, timeout: 60)
        XCTAssertEqual((first["content"] as? [String: Any])?["category"] as? String, before.category)

        let put = try launchStrata(strataBinary, ["dims", "put", "content", content, "category=\(renamed)"] + common,
                                   standardOutput: nil, standardError: nil)
        put.waitUntilExit()
        XCTAssertEqual(put.terminationStatus, 0, "strata dims put")

        // The job's follower applies the changelog record to Redis (and its own in-process tier).
        let client = try RedisClient(config: try RedisConfig(url: "redis://127.0.0.1:\(redis.port)"))
        // A prefixed run keeps its cache entries under dim:<prefix>.
        let key = DimensionCacheConfig().keyPrefix + env.prefix + "c:" + content
        var cached = ""
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !cached.contains(renamed) {
            cached = (try? client.get(key)).flatMap { $0.map { String(decoding: $0, as: UTF8.self) } } ?? ""
            if !cached.contains(renamed) { Thread.sleep(forTimeInterval: 0.1) }
        }
        XCTAssertTrue(cached.contains(renamed), "Redis \(key) = \(cached)")

        try clicks(minute: m + 60_000, tag: "m1")
        job.waitUntilExit()
        XCTAssertEqual(job.terminationStatus, 0)

        let rows = try readAll(env, topic: Topology.dws).filter { $0["content_id"] as? String == content }
        let next = rows.filter { ($0["minute"] as? Int).map(Int64.init) == m + 60_000 }
        XCTAssertFalse(next.isEmpty, "rows of the next minute")
        for r in next { XCTAssertEqual((r["content"] as? [String: Any])?["category"] as? String, renamed, "\(r)") }
        XCTAssertTrue(next.contains { $0["final"] as? Bool == true && $0["click"] as? Int == 5 })
    }

    /// Every row of a topic under the env's prefix, in partition order: read until the consumer
    /// reports the end of every partition (librdkafka's partition EOF, at the last stable offset
    /// for this read_committed reader), so call it once the writers have finished. Fails after
    /// `timeout` seconds.
    func readAll(_ env: Env, topic: String, timeout: TimeInterval = 60) throws -> [[String: Any]] {
        var cfg = KafkaConfig.consumer(bootstrapServers: brokers, groupId: nil)
        cfg["enable.partition.eof"] = "true"
        let consumer = try KafkaConsumer(config: cfg)
        let n = try consumer.partitionCount(topic: env.prefix + topic)
        try consumer.assign((0..<n).map { TopicPartitionOffset(topic: env.prefix + topic, partition: Int32($0), offset: TopicPartitionOffset.first) })
        var rows: [[String: Any]] = []
        var atEnd = Set<Int32>()
        let deadline = Date().addingTimeInterval(timeout)
        while atEnd.count < n {
            guard Date() < deadline else {
                throw Timeout(description: "\(env.prefix + topic): only partitions \(atEnd.sorted()) of \(n) reached their end within \(timeout) s (\(rows.count) rows)")
            }
            for m in try consumer.poll(maxMessages: 5_000, timeoutMs: 100) {
                if let e = m.error {
                    if e.code == .partitionEOF { atEnd.insert(m.partition) }
                    continue
                }
                atEnd.remove(m.partition)
                rows.append(try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(m.value)) as? [String: Any]))
            }
        }
        return rows
    }

    /// The first DWS row of (minute, content) to appear, or a failure after `timeout` seconds.
    func waitForRow(_ env: Env, minute: Int64, content: String, timeout: TimeInterval) throws -> [String: Any] {
        let consumer = try KafkaConsumer(config: .consumer(bootstrapServers: brokers, groupId: nil))
        let topic = env.prefix + Topology.dws
        let n = try consumer.partitionCount(topic: topic)
        try consumer.assign((0..<n).map { TopicPartitionOffset(topic: topic, partition: Int32($0), offset: TopicPartitionOffset.first) })
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            for m in try consumer.poll(maxMessages: 1_000, timeoutMs: 100) where m.error == nil {
                let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(m.value)) as? [String: Any])
                if (o["minute"] as? Int).map(Int64.init) == minute, o["content_id"] as? String == content { return o }
            }
        }
        throw Timeout(description: "no DWS row for (\(minute), \(content)) within \(timeout) s")
    }
}

struct Timeout: Error, CustomStringConvertible { let description: String }

/// A stop request shared by the test's threads.
final class StopSignal: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}
