import Foundation
import StrataCore
import StrataDWM
import StrataDims
import StrataGen
@testable import StrataJobs
import StrataKafka
import StrataRedis
import StrataSplit
import StrataTestSupport
import XCTest

/// ods.raw → split → micro-queues → dwm → dwm.content_user / dws.content on the real broker, Redis
/// and a SQLite store, checked against a brute-force computation written here.
final class DWMEndToEndTests: XCTestCase {
    var brokers = ""
    var redisURL = ""

    override func setUpWithError() throws {
        brokers = try TestEnvironment.brokers
        redisURL = try TestEnvironment.redisURL
    }
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let topology = try! Topology.load(path: root.appendingPathComponent("topology/topology.yaml").path)
    let contents = 300, users = 3_000

    struct Env {
        let prefix: String
        let storePath: String
        let cache: DimensionCache
        var lines: [[UInt8]]
    }

    /// Topics under a fresh prefix, dimensions loaded, events generated, produced and split.
    func prepare(events: Int, seed: UInt64) throws -> Env {
        var env = try makeEnv(seed: seed)
        env.lines = generate(events: events, seed: seed)
        try produceRaw(env.lines, env: env)
        var splitOptions = SplitJob.Options(brokers: brokers)
        splitOptions.topicPrefix = env.prefix; splitOptions.groupId = env.prefix + "split"; splitOptions.instanceId = env.prefix + "split"; splitOptions.untilIdle = .seconds(2)
        try SplitJob(options: splitOptions, topology: topology).run()
        return env
    }

    /// Topics under a fresh prefix and dimensions in a fresh SQLite store, or the one at
    /// `storeAddress` (and `dim.changelog`);
    /// a cache over them on `redisURL` (default: the test stack's Redis, keys under the prefix).
    func makeEnv(seed: UInt64, redisURL: String? = nil, storeAddress: String? = nil,
                 tune: (inout DimensionCacheConfig) -> Void = { _ in }) throws -> Env {
        let prefix = "e\(UUID().uuidString.prefix(8).lowercased())."
        let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": brokers]))
        for (_, error) in try admin.createTopics(topology.topics.map { NewTopic(name: prefix + $0.name, partitions: $0.partitions) }) {
            if let error { throw error }
        }
        let storePath = NSTemporaryDirectory() + "strata-\(prefix)db"
        let store = try DimensionStoreFactory.open(storeAddress ?? "sqlite:" + storePath)
        try store.migrate()
        let dims = DimensionGenerator(contents: contents, users: users, seed: seed)
        try DimensionWriter(store: store, brokers: brokers, kafka: [:], topicPrefix: prefix)
            .write(contents: dims.allContents(), users: dims.allUsers())
        var redisConfig = try RedisConfig(url: redisURL ?? self.redisURL)
        redisConfig.maxAttempts = 2
        redisConfig.commandTimeout = .milliseconds(500)
        var cacheConfig = DimensionCacheConfig()
        cacheConfig.keyPrefix = "dim:\(prefix)"
        cacheConfig.filterFalsePositiveRate = 1e-6
        tune(&cacheConfig)
        let cache = try DimensionCache(store: store, redisConfig: redisConfig, config: cacheConfig)
        return Env(prefix: prefix, storePath: storePath, cache: cache, lines: [])
    }

    /// Generated events over several minutes of event time, with duplicates and bad ids.
    func generate(events: Int, seed: UInt64) -> [[UInt8]] {
        var workload = EventWorkload()
        workload.seed = seed; workload.contents = contents; workload.users = users
        workload.eventsPerSecond = 300          // 12 000 events ≈ 40 s of event time: one or two minutes.
        workload.lateShare = 0                  // backlogs spanning many minutes, with late events: CatchUpEndToEndTests
        workload.duplicateShare = 0.03; workload.unknownIdShare = 0.02; workload.invalidIdShare = 0.01; workload.malformedShare = 0.01
        var generator = EventGenerator(workload)
        var lines: [[UInt8]] = []
        var line: [UInt8] = []
        for _ in 0..<events { line.removeAll(keepingCapacity: true); _ = generator.next(into: &line); lines.append(line) }
        return lines
    }

    /// Produces raw events to the env's `ods.raw`, keyed by user: each user's events stay in order through the split.
    func produceRaw(_ lines: some Collection<[UInt8]>, env: Env) throws {
        let producer = try KafkaProducer(config: .producer(bootstrapServers: brokers))
        let raw = producer.topic(env.prefix + Topology.raw)
        for line in lines {
            let user = (try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])?["user_id"] as? String ?? ""
            let key = Array(user.utf8)
            try key.withUnsafeBytes { keyBytes in try line.withUnsafeBytes { valueBytes in try producer.produce(to: raw, key: keyBytes, value: valueBytes) } }
        }
        try producer.flush()
    }

    func dwmOptions(_ env: Env, instance: String = "0") -> DWMJob.Options {
        var options = DWMJob.Options(brokers: brokers)
        options.topicPrefix = env.prefix
        options.groupId = env.prefix + "dwm"
        options.instanceId = env.prefix + instance
        options.untilIdle = .seconds(3)
        options.earlyIntervalMs = 500
        // A minute here has a few thousand cells: spread its DWM finals over several transactions,
        // as a busy minute is in production.
        options.dwmFinalsPerTransaction = 1_000
        // Rows in passes of 64 KB: a transaction's rows go out over several, each delivered
        // before the next reuses its memory.
        options.rowPassBytes = 64 << 10
        return options
    }

    struct Expected { var dws: [String: [String: Int64]] = [:]; var dwm: [String: [String: Int64]] = [:] }

    /// Independent computation: known contents only, duplicates by event_id counted once per cell.
    func expected(_ lines: [[UInt8]]) -> Expected {
        var seen = Set<String>()
        var result = Expected()
        for line in lines {
            guard let event = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let id = event["event_id"] as? String, let ts = event["ts"] as? Int64, let action = event["action"] as? String,
                  let contentId = event["content_id"] as? String, let userId = event["user_id"] as? String,
                  (1...64).contains(id.utf8.count), topology.actions.contains(action), contentId.count == 9, contentId.hasPrefix("c"), contentId.dropFirst().allSatisfy(\.isNumber),
                  let index = Int(contentId.dropFirst()), index < contents
            else { continue }
            let minute = ts - ts % 60_000
            let cell = "\(minute)|\(contentId)|\(userId)"
            guard seen.insert(cell + "|" + id).inserted else { continue }
            let playMs = action == "play" ? (event["duration_ms"] as? Int64 ?? 0) : 0
            result.dwm[cell, default: [:]][action, default: 0] += 1
            result.dwm[cell, default: [:]]["play_ms", default: 0] += playMs
            let content = "\(minute)|\(contentId)"
            result.dws[content, default: [:]][action, default: 0] += 1
            result.dws[content, default: [:]]["play_ms", default: 0] += playMs
        }
        for (cell, _) in result.dwm {
            let parts = cell.split(separator: "|")
            result.dws["\(parts[0])|\(parts[1])", default: [:]]["uv", default: 0] += 1
        }
        return result
    }

    /// Highest rev per identity, as a subscriber keeps it; and every (identity, rev) seen, to catch
    /// a revision published twice with different numbers.
    func readUpserts(_ env: Env, topic: String, checkRevisions: Bool = true, identity: ([String: Any]) -> String) throws -> [String: [String: Any]] {
        var best: [String: [String: Any]] = [:]
        var byRev: [String: [String: Any]] = [:]
        for m in try readToEndMarkers(brokers: brokers, topic: env.prefix + topic, timeout: .seconds(120)) {
            let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(m.value)) as? [String: Any])
            let id = identity(o)
            let rev = try XCTUnwrap(o["rev"] as? Int)
            var row = o; row["emitted_at"] = nil
            if let prior = byRev["\(id)#\(rev)"], checkRevisions {
                XCTAssertEqual(NSDictionary(dictionary: prior), NSDictionary(dictionary: row), "\(id) rev \(rev) published twice with different content")
            }
            byRev["\(id)#\(rev)"] = row
            if (best[id]?["rev"] as? Int ?? -1) < rev { best[id] = o }
        }
        return best
    }

    /// `revisionsExact: false` where transactions were cut by kills: the local broker shows
    /// aborted transactions' rows (docs/exactly-once.md), a second timeline in which records of
    /// different partitions arrived interleaved otherwise, so a revision (even a final correction)
    /// may share its rev with different numbers there; the kept rows are always checked. The
    /// strict check needs a broker that hides aborted transactions.
    func assertMatches(_ env: Env, revisionsExact: Bool = true, file: StaticString = #filePath, line: UInt = #line) throws {
        let exp = expected(env.lines)
        let dws = try readUpserts(env, topic: Topology.dws, checkRevisions: revisionsExact) { "\($0["minute"]!)|\($0["content_id"]!)" }
        let dwm = try readUpserts(env, topic: Topology.dwm, checkRevisions: revisionsExact) { "\($0["minute"]!)|\($0["content_id"]!)|\($0["user_id"]!)" }
        XCTAssertEqual(Set(exp.dws.keys).subtracting(dws.keys).sorted(), [], "DWS identities missing", file: file, line: line)
        XCTAssertEqual(Set(dws.keys).subtracting(exp.dws.keys).sorted(), [], "DWS identities not expected", file: file, line: line)
        XCTAssertEqual(Set(exp.dwm.keys).subtracting(dwm.keys).sorted(), [], "DWM identities missing", file: file, line: line)
        XCTAssertEqual(Set(dwm.keys).subtracting(exp.dwm.keys).sorted(), [], "DWM identities not expected", file: file, line: line)
        for (id, row) in dws {
            XCTAssertEqual(row["final"] as? Bool, true, id, file: file, line: line)
            for col in topology.actions + ["play_ms", "uv"] {
                XCTAssertEqual((row[col] as? Int).map(Int64.init) ?? -1, exp.dws[id]?[col] ?? 0, "\(id) \(col)", file: file, line: line)
            }
            XCTAssertNotNil(row["content"] as? [String: Any], "DWS rows carry content dimensions")
        }
        for (id, row) in dwm {
            for col in topology.actions + ["play_ms"] {
                XCTAssertEqual((row[col] as? Int).map(Int64.init) ?? -1, exp.dwm[id]?[col] ?? 0, "\(id) \(col)", file: file, line: line)
            }
            XCTAssertNotNil(row["user"] as? [String: Any], "DWM rows carry the user profile")
        }
    }

    func testGoldenEndToEnd() throws {
        let env = try prepare(events: 12_000, seed: 5)
        let job = DWMJob(options: dwmOptions(env), topology: topology, cache: env.cache)
        try job.run()
        let a = job.stats.accounting

        XCTAssertTrue(a.isBalanced, "\(a)")
        XCTAssertGreaterThan(a.duplicates, 0)
        XCTAssertGreaterThan(a.filtered["unknown_content_id"] ?? 0, 0, "unknown contents are filtered")
        XCTAssertEqual(job.stats.rowsWithoutContent, 0)
        XCTAssertGreaterThan(job.stats.rowPassWaits, 0, "transactions with more rows than one pass")
        try assertMatches(env)
    }

    /// A finished run, started again over the same input, publishes nothing: its last
    /// transaction (finals only, no new input) is trusted on restart on either broker, sealed
    /// where the broker shows aborted transactions. The checkpoint topic says which kind it is.
    func testARestartAfterAFinishedRunRepublishesNothing() throws {
        let env = try prepare(events: 6_000, seed: 21)
        let first = DWMJob(options: dwmOptions(env), topology: topology, cache: env.cache)
        try first.run()
        XCTAssertTrue(first.stats.accounting.isBalanced, "\(first.stats.accounting)")
        XCTAssertGreaterThan(first.stats.dwsRows, 0)

        let log = try CheckpointRecord.load(topic: env.prefix + Topology.dwmCheckpoint, group: env.prefix + "dwm",
                                            instance: "reader", brokers: brokers, kafka: [:])
        let showsAborted = !TestEnvironment.brokerHidesAbortedTransactions
        XCTAssertEqual(log.probes.count, showsAborted ? 1 : 0, "the aborted probe is visible only where aborted transactions are")
        XCTAssertEqual(log.seals.count, showsAborted ? 1 : 0, "sealed only where it matters")
        let all = log.records.values.flatMap { $0 }
        XCTAssertFalse(all.isEmpty)
        XCTAssertTrue(all.allSatisfy { $0.tag != nil }, "every checkpoint names its transaction")

        let again = DWMJob(options: dwmOptions(env, instance: "1"), topology: topology, cache: env.cache)
        try again.run()
        XCTAssertEqual(again.stats.dwsRows, 0, "DWS rows published again")
        XCTAssertEqual(again.stats.dwmRows, 0, "DWM rows published again")
        try assertMatches(env)   // once: it leaves end markers in the output topics
    }

    /// The checkpoint topic held by a peer's open transaction (a peer that died mid-transaction
    /// holds it until the broker times the transaction out, 60 s by default) for longer than the
    /// job's max.poll.interval.ms: the restore waits for it with the partitions paused and the
    /// loop polling, so the member keeps its place (one rebuild, not one per rejoin) and the rows
    /// are right.
    func testARestoreWaitingLongForTheCheckpointsKeepsTheGroupMembership() throws {
        let env = try prepare(events: 6_000, seed: 31)
        var cfg = KafkaConfig.producer(bootstrapServers: brokers)
        cfg.transactionalId = env.prefix + "peer"
        let peer = try KafkaProducer(config: cfg)
        try peer.initTransactions()
        try peer.beginTransaction()
        try peer.produce(topic: env.prefix + Topology.dwmCheckpoint, key: Array("peer|x|0".utf8), value: Array("open".utf8))
        try peer.flush()
        let held = Duration.seconds(15)
        let box = UncheckedSendable(peer)
        let release = Thread {
            Thread.sleep(forTimeInterval: Double(held.components.seconds))
            try? box.value.abortTransaction()
        }
        release.start()

        var options = dwmOptions(env)
        options.kafka = ["consumer.session.timeout.ms": "6000", "consumer.max.poll.interval.ms": "7000"]
        let job = DWMJob(options: options, topology: topology, cache: env.cache)
        let started = ContinuousClock.now
        try job.run()
        XCTAssertGreaterThan(ContinuousClock.now - started, held - .seconds(1), "the restore waited for the open transaction")
        XCTAssertEqual(job.stats.rebuilds, 1, "the member kept its place while the checkpoints were read")
        XCTAssertTrue(job.stats.accounting.isBalanced, "\(job.stats.accounting)")
        try assertMatches(env)
    }

    /// SIGKILL the real `strata job dwm` process three times, each after it committed in that life
    /// plus a seeded random delay, while input remains; the final rows equal the independent
    /// computation (i.e. an uninterrupted run), and no final revision was published twice with
    /// different numbers.
    func testKilledDWMJobPublishesTheSameFinalRows() throws {
        let env = try prepare(events: 20_000, seed: 9)
        func launch(untilIdle: Int?) throws -> Process {
            var arguments = ["job", "dwm", "--topic-prefix", env.prefix, "--group", env.prefix + "dwm", "--instance-id", env.prefix + "0",
                             "--brokers", brokers, "--redis", redisURL, "--store", "sqlite:" + env.storePath,
                             "--topology", Self.root.appendingPathComponent("topology/topology.yaml").path,
                             "--early-interval-ms", "300", "--dwm-finals-per-transaction", "300", "--log-format", "json"]
            if let untilIdle { arguments += ["--until-idle", "\(untilIdle)"] }
            // noida never expires a killed dynamic member: the restarted job must take its place.
            if TestEnvironment.brokerHidesAbortedTransactions { arguments.append("--static-membership") }
            return try launchStrata(strataBinary, arguments, standardOutput: Pipe())
        }
        let queues = topology.actions.map { env.prefix + Topology.microQueue(for: $0) }
        let seed = UInt64.random(in: 1...UInt64.max)
        print("kill moments seed: \(seed)")
        var rng = SeededRandom(seed: seed)
        var committed = 0
        var killedAfterCommitting = 0
        for round in 0..<3 {
            let p = try launch(untilIdle: nil)
            // A restarted job that finds nothing new commits nothing: then the input is done.
            let progressed = try waitForCommitted(brokers: brokers, group: env.prefix + "dwm", topics: queues, partitions: 4,
                                                  above: committed, process: p, timeout: .seconds(round == 0 ? 120 : 15))
            if round == 0 { XCTAssertNotNil(progressed, "the first life committed before it was killed") }
            Thread.sleep(forTimeInterval: Double(rng.below(400)) / 1_000)
            if progressed != nil && p.isRunning { killedAfterCommitting += 1 }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationReason, .uncaughtSignal)
            committed = try committedTotal(brokers: brokers, group: env.prefix + "dwm", topics: queues, partitions: 4)
            if progressed == nil { break }
        }
        XCTAssertGreaterThanOrEqual(killedAfterCommitting, 1, "a kill cut a running job between commits")
        let final = try launch(untilIdle: 3)
        // Bounded: a final run that never goes idle fails the test instead of hanging the suite.
        let deadline = Date().addingTimeInterval(300)
        while final.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }
        if final.isRunning {
            kill(final.processIdentifier, SIGKILL)
            XCTFail("the final run did not go idle within 300 s")
        }
        final.waitUntilExit()
        XCTAssertEqual(final.terminationStatus, 0)
        let summary = try JSONSerialization.jsonObject(with: (final.standardOutput as! Pipe).fileHandleForReading.readDataToEndOfFile()) as? [String: Any]
        print("kills after a commit: \(killedAfterCommitting); final run: \(summary ?? [:])")
        try assertMatches(env, revisionsExact: TestEnvironment.brokerHidesAbortedTransactions)
    }

    /// A job that has drained its backlog publishes the numbers of the minutes it caught up at
    /// once, not at its next early tick: with an early interval longer than the whole run, a
    /// subscriber holds every DWS row's right numbers long before the job's end (whose shutdown
    /// flush marks the last minute final).
    func testADrainedBacklogPublishesItsNumbersWithoutWaitingForTheEarlyTick() throws {
        let env = try prepare(events: 6_000, seed: 33)
        var options = dwmOptions(env)
        options.earlyIntervalMs = 600_000
        options.untilIdle = .seconds(15)
        let job = UncheckedSendable(DWMJob(options: options, topology: topology, cache: env.cache))
        let done = DispatchSemaphore(value: 0)
        let failure = UncheckedSendable(NSMutableArray())
        Thread { do { try job.value.run() } catch { failure.value.add("\(error)") }; done.signal() }.start()

        let exp = expected(env.lines).dws
        let topic = env.prefix + Topology.dws
        let consumer = try KafkaConsumer(config: .consumer(bootstrapServers: brokers, groupId: nil))
        defer { consumer.close() }
        try consumer.assign((0..<consumer.partitionCount(topic: topic)).map {
            TopicPartitionOffset(topic: topic, partition: Int32($0), offset: TopicPartitionOffset.first)
        })
        // The highest revision per (minute, content), as a subscriber keeps it.
        var best: [String: (rev: Int, counts: [String: Int64])] = [:]
        func holdsTheTruth() -> Bool {
            best.count == exp.count && exp.allSatisfy { id, want in
                guard let got = best[id] else { return false }
                return (topology.actions + ["play_ms", "uv"]).allSatisfy { got.counts[$0] ?? 0 == want[$0] ?? 0 }
            }
        }
        var matchedAt: ContinuousClock.Instant?
        let deadline = ContinuousClock.now + .seconds(120)
        while matchedAt == nil, ContinuousClock.now < deadline {
            for m in try consumer.poll(maxMessages: 5_000, timeoutMs: 100) where m.error == nil {
                let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(m.value)) as? [String: Any])
                let id = "\(o["minute"]!)|\(o["content_id"]!)", rev = try XCTUnwrap(o["rev"] as? Int)
                guard rev > best[id]?.rev ?? -1 else { continue }
                var counts: [String: Int64] = [:]
                for col in topology.actions + ["play_ms", "uv"] { counts[col] = (o[col] as? Int).map(Int64.init) ?? 0 }
                best[id] = (rev, counts)
            }
            if holdsTheTruth() { matchedAt = .now }
        }
        XCTAssertEqual(done.wait(timeout: .now() + 180), .success, "the job went idle")
        let finishedAt = ContinuousClock.now
        XCTAssertEqual(failure.value.count, 0, "\(failure.value)")
        let matched = try XCTUnwrap(matchedAt, "the DWS rows never held the right numbers")
        // The job idles 15 s after its last record; its flush comes after that.
        XCTAssertLessThan(matched, finishedAt - .seconds(10),
                          "the right numbers came only \(finishedAt - matched) before the job's end: they waited for its flush")
        try assertMatches(env)
    }

    func testTwoInstancesInOneGroupGiveTheSameRows() throws {
        let env = try prepare(events: 12_000, seed: 13)
        let a = DWMJob(options: dwmOptions(env, instance: "a"), topology: topology, cache: env.cache)
        let b = DWMJob(options: dwmOptions(env, instance: "b"), topology: topology, cache: env.cache)
        let box = (UncheckedSendable(a), UncheckedSendable(b))
        let group = DispatchGroup()
        let errors = UncheckedSendable(NSMutableArray())
        for j in [box.0, box.1] {
            group.enter()
            Thread { do { try j.value.run() } catch { errors.value.add("\(error)") }; group.leave() }.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 300), .success, "both instances went idle within 5 minutes")
        XCTAssertEqual(errors.value.count, 0, "\(errors.value)")
        XCTAssertGreaterThan(a.stats.accounting.consumed, 0, "instance a got partitions")
        XCTAssertGreaterThan(b.stats.accounting.consumed, 0, "instance b got partitions")
        try assertMatches(env)
    }
}

var strataBinary: String { StrataTestSupport.strataBinary(packageRoot: DWMEndToEndTests.root) }
