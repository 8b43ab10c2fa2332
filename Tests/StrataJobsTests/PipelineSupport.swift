import Foundation
import Logging
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

/// A whole pipeline in an isolated corner of the test stack: every topic under a fresh prefix
/// (4-partition `ods.raw`, written unkeyed), dimensions in a fresh SQLite store, Redis keys under
/// the prefix. Split and dwm run as in production, with default time and cache settings.
struct PipelineSandbox {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var topologyPath: String { root.appendingPathComponent("topology/topology.yaml").path }

    let brokers: String
    let redisURL: String
    let prefix = "p\(UUID().uuidString.prefix(8).lowercased())."
    let topology: Topology
    let storePath: String
    let contents: Int
    let users: Int
    let store: RecordingStore

    /// `createTopic`: how to create a topic where the admin API cannot (librdkafka's mock cluster).
    init(contents: Int = 500, users: Int = 5_000, seed: UInt64, on brokerAddress: String? = nil,
         createTopic: ((_ name: String, _ partitions: Int) throws -> Void)? = nil) throws {
        let brokers = try brokerAddress ?? TestEnvironment.brokers
        self.brokers = brokers
        redisURL = try TestEnvironment.redisURL
        topology = try Topology.load(path: Self.topologyPath)
        self.contents = contents
        self.users = users
        let prefix = self.prefix
        if let createTopic {
            for t in topology.topics { try createTopic(prefix + t.name, t.partitions) }
        } else {
            let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": brokers]))
            for (_, e) in try admin.createTopics(topology.topics.map { NewTopic(name: prefix + $0.name, partitions: $0.partitions) }) {
                if let e { throw e }
            }
        }
        storePath = NSTemporaryDirectory() + "strata-\(prefix)db"
        let sqlite = try DimensionStoreFactory.open("sqlite:" + storePath)
        try sqlite.migrate()
        let gen = DimensionGenerator(contents: contents, users: users, seed: seed)
        try DimensionWriter(store: sqlite, brokers: brokers, kafka: [:], topicPrefix: prefix)
            .write(contents: gen.allContents(), users: gen.allUsers())
        store = RecordingStore(sqlite)
    }

    /// A cache with the production defaults (filter false-positive rate included) over the recording store.
    func makeCache() throws -> DimensionCache {
        var rc = try RedisConfig(url: redisURL)
        rc.maxAttempts = 2
        rc.commandTimeout = .milliseconds(500)
        var cc = DimensionCacheConfig()
        cc.keyPrefix = "dim:\(prefix)"
        return try DimensionCache(store: store, redisConfig: rc, config: cc)
    }

    /// Where the launched jobs' logs go: `STRATA_TEST_LOG_DIR`, else the temporary directory.
    var logDir: String { ProcessInfo.processInfo.environment["STRATA_TEST_LOG_DIR"] ?? NSTemporaryDirectory() }

    /// Starts the real `strata job <job>` (split or dwm) on this sandbox, instance `instance` of
    /// its group. Its log is appended to `<logDir>/<prefix><job>.log` (every launch's, so a test
    /// can read restores from it); its standard output (the summary) is the returned pipe.
    /// `staticMembership`: noida never expires a dead dynamic member, a restarted job must take
    /// its place.
    func launchJob(_ job: String, instance: Int = 0, untilIdle: Int?, batch: Int, staticMembership: Bool = false,
                   extra: [String] = []) throws -> (Process, Pipe) {
        var args = ["job", job, "--topic-prefix", prefix, "--group", prefix + job,
                    "--instance-id", "\(prefix)\(job)-\(instance)", "--brokers", brokers,
                    "--topology", Self.topologyPath, "--log-format", "json"]
        if staticMembership { args.append("--static-membership") }
        if job == "dwm" {
            args += ["--redis", redisURL, "--store", "sqlite:" + storePath, "--early-interval-ms", "300",
                     "--dwm-batch-size", "\(batch)"]
        } else {
            args += ["--batch-size", "\(batch)"]
        }
        if let untilIdle { args += ["--until-idle", "\(untilIdle)"] }
        args += extra
        let out = Pipe()
        return (try launchStrata(StrataTestSupport.strataBinary(packageRoot: Self.root), args, standardOutput: out,
                                 standardError: try appendingLog(job)), out)
    }

    /// `<logDir>/<prefix><name>.log`, opened for appending. O_APPEND: instances running at once
    /// write whole lines, none over another's.
    func appendingLog(_ name: String) throws -> FileHandle {
        let fd = open("\(logDir)/\(prefix)\(name).log", O_WRONLY | O_APPEND | O_CREAT, 0o644)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// Unkeyed raw events, line i to partition `partitionOf[i]` (as many producers write: no key).
    /// `keyed`: keyed by content id instead, as producers that follow the contract write it
    /// (`partitionOf` should then follow the content id: `keyedPartitions`).
    func produceRaw(_ lines: ArraySlice<[UInt8]>, partitionOf: [Int32], keyed: Bool = false) throws {
        let producer = try KafkaProducer(config: .producer(bootstrapServers: brokers))
        let raw = producer.topic(prefix + Topology.raw)
        for i in lines.indices {
            let key = keyed ? contentId(of: lines[i]).map { Array($0.utf8) } : nil
            try lines[i].withUnsafeBytes { v in
                guard let key else { return try producer.produce(to: raw, partition: partitionOf[i], key: nil, value: v) }
                try key.withUnsafeBytes { try producer.produce(to: raw, partition: partitionOf[i], key: $0, value: v) }
            }
            if i % 10_000 == 0 { producer.poll() }
        }
        try producer.flush(timeoutMs: 120_000)
    }

    func splitOptions(instance: String = "0", batchSize: Int? = nil, untilIdle: Duration = .seconds(4)) -> SplitJob.Options {
        var o = SplitJob.Options(brokers: brokers)
        o.topicPrefix = prefix
        o.groupId = prefix + "split"
        o.instanceId = prefix + "split-" + instance
        o.untilIdle = untilIdle
        if let batchSize { o.batchSize = batchSize }
        return o
    }

    func dwmOptions(instance: String = "0", batchSize: Int? = nil, untilIdle: Duration = .seconds(6), readRaw: Bool = false) -> DWMJob.Options {
        var o = DWMJob.Options(brokers: brokers)
        o.readRaw = readRaw
        o.topicPrefix = prefix
        o.groupId = prefix + "dwm"
        o.instanceId = prefix + "dwm-" + instance
        o.untilIdle = untilIdle
        if let batchSize { o.batchSize = batchSize }
        return o
    }

    /// Runs split and dwm instances concurrently (threads of this process) until each goes idle.
    func runConcurrently(splits: [SplitJob.Options], dwms: [DWMJob.Options], cache: DimensionCache,
                         whileRunning: () throws -> Void = {}) throws -> [DWMJob] {
        let errors = Mutex<[String]>([])
        let group = DispatchGroup()
        let dwmJobs = try dwms.map {
            DWMJob(options: $0, topology: topology, cache: cache, logger: try jobLogger($0.instanceId))
        }
        var bodies: [@Sendable () throws -> Void] = []
        for o in splits {
            let job = UncheckedSendable(try SplitJob(options: o, topology: topology,
                                                     logger: try jobLogger(o.instanceId)))
            bodies.append { try job.value.run() }
        }
        for j in dwmJobs {
            let job = UncheckedSendable(j)
            bodies.append { try job.value.run() }
        }
        for body in bodies {
            group.enter()
            Thread {
                do { try body() } catch { errors.withLock { $0.append("\(error)") } }
                group.leave()
            }.start()
        }
        try whileRunning()
        XCTAssertEqual(group.wait(timeout: .now() + 300), .success, "jobs did not go idle within 5 minutes")
        XCTAssertEqual(errors.withLock { $0 }, [])
        return dwmJobs
    }

    /// A logger for a job run in process, named by its instance id: its lines, debug and up, go to
    /// `appendingLog`, as a launched job's do, so a failed test leaves every job's log to read.
    func jobLogger(_ instanceId: String) throws -> Logger {
        let name = instanceId.hasPrefix(prefix) ? String(instanceId.dropFirst(prefix.count)) : instanceId
        let file = UncheckedSendable(try appendingLog(name))
        var logger = Logger(label: "strata.\(name)") { label in
            StrataLogHandler(label: label, format: .json, metadataProvider: nil) { line in
                line.withUnsafeBytes { _ = write(file.value.fileDescriptor, $0.baseAddress, $0.count) }
            }
        }
        logger.logLevel = .debug
        return logger
    }

    /// All records of an output topic up to an end marker written now to each partition. Waits
    /// up to 10 minutes. (Tansu's read_committed end used to stop for good after several
    /// instances' simultaneous commits; the test command's `STRATA_COMMIT_LOCK` prevents it.)
    func read(_ topic: String, readCommitted: Bool = true) throws -> [TopicRecord] {
        try readToEndMarkers(brokers: brokers, topic: prefix + topic, timeout: .seconds(600), readCommitted: readCommitted)
    }

    /// The rows a subscriber keeps (highest rev per identity). Fails on an (identity, rev)
    /// published twice with different numbers, unless `tolerateAborted`: the local broker shows
    /// aborted transactions' rows, i.e. a second timeline in which events may have arrived in
    /// another order (the split's aborted batches are visible too), so even a correction's
    /// composition at a given rev may differ there; only the kept rows are checked then. The
    /// strict check needs a broker that hides aborted transactions.
    func upserts(_ topic: String, identity: ([String: Any]) -> String, tolerateAborted: Bool = false,
                 file: StaticString = #filePath, line: UInt = #line) throws -> [String: [String: Any]] {
        var best: [String: [String: Any]] = [:]
        var byRev: [String: NSDictionary] = [:]
        for r in try read(topic) {
            let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.value)) as? [String: Any], file: file, line: line)
            let id = identity(o)
            let rev = try XCTUnwrap(o["rev"] as? Int, file: file, line: line)
            var row = o
            row["emitted_at"] = nil
            let key = "\(id)#\(rev)"
            if let prior = byRev[key], !tolerateAborted {
                XCTAssertEqual(prior, NSDictionary(dictionary: row), "\(key) published twice with different content", file: file, line: line)
            }
            byRev[key] = NSDictionary(dictionary: row)
            if (best[id]?["rev"] as? Int ?? -1) < rev { best[id] = o }
        }
        return best
    }
}

/// Sum of `group`'s committed offsets over `topics` (partitions 0..<partitions): what a job has
/// committed, read through a consumer that never joins the group.
func committedTotal(brokers: String, group: String, topics: [String], partitions: Int) throws -> Int {
    let consumer = try KafkaConsumer(config: .consumer(bootstrapServers: brokers, groupId: group))
    defer { consumer.close() }
    let offsets = try consumer.committed(topics.flatMap { t in
        (0..<partitions).map { TopicPartitionOffset(topic: t, partition: Int32($0), offset: TopicPartitionOffset.invalid) }
    })
    return offsets.reduce(0) { $0 + max(0, Int($1.offset)) }
}

/// Waits (bounded) until `group` has committed more than `above` over `topics`; the new total, or
/// nil when `process` exited or the deadline passed first.
func waitForCommitted(brokers: String, group: String, topics: [String], partitions: Int, above: Int,
                      process: Process, timeout: Duration = .seconds(120)) throws -> Int? {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline && process.isRunning {
        let n = try committedTotal(brokers: brokers, group: group, topics: topics, partitions: partitions)
        if n > above { return n }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return nil
}

/// A dimension store that records which content ids were asked of it (read back by the tests,
/// independently of the cache's own counters).
final class RecordingStore: DimensionStore, @unchecked Sendable {
    let inner: any DimensionStore
    private let asked = Mutex<[String]>([])
    init(_ inner: any DimensionStore) { self.inner = inner }

    var contentIdsAsked: [String] { asked.withLock { $0 } }

    var description: String { "recording(\(inner))" }
    func migrate() throws { try inner.migrate() }
    func contents(_ ids: [String], row: (Int, ContentDim) throws -> Void) throws {
        asked.withLock { $0 += ids }
        try inner.contents(ids, row: row)
    }
    func users(_ ids: [String], row: (Int, UserDim) throws -> Void) throws { try inner.users(ids, row: row) }
    func upsert(contents: [ContentDim]) throws { try inner.upsert(contents: contents) }
    func upsert(users: [UserDim]) throws { try inner.upsert(users: users) }
    func deleteContents(_ ids: [String]) throws { try inner.deleteContents(ids) }
    func deleteUsers(_ ids: [String]) throws { try inner.deleteUsers(ids) }
    func forEachContentId(_ body: (String) throws -> Void) throws { try inner.forEachContentId(body) }
    func forEachUserId(_ body: (String) throws -> Void) throws { try inner.forEachUserId(body) }
    func contentCount() throws -> Int { try inner.contentCount() }
    func userCount() throws -> Int { try inner.userCount() }
    var queryCount: Int { inner.queryCount }
}

/// Raw events with out-of-order, very late and duplicate ones, unknown and invalid ids; and which
/// `ods.raw` partition each goes to (seeded, so a failure can be replayed).
/// The content id of a raw line, as a JSON parser reads it (nil: none).
func contentId(of line: [UInt8]) -> String? {
    ((try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any])?["content_id"] as? String
}

/// Partitions for `lines` keyed by content id (a content's events in one partition); lines without
/// one go round the partitions.
func keyedPartitions(_ lines: [[UInt8]], partitions: Int = 4) -> [Int32] {
    lines.enumerated().map { i, l in
        guard let c = contentId(of: l) else { return Int32(i % partitions) }
        return Int32(c.utf8.reduce(UInt32(17)) { $0 &* 31 &+ UInt32($1) } % UInt32(partitions))
    }
}

/// The split and one dwm job run over a generated workload of `events` at 40 per second: the
/// sandbox with the published rows in its topics, and the truth they are checked against (what
/// the offline layer's tests start from).
func publishedPipeline(seed: UInt64, events: Int) throws -> (PipelineSandbox, PipelineTruth) {
    let sandbox = try PipelineSandbox(seed: seed)
    let (lines, partitionOf) = generateWorkload(events: events, seed: seed, contents: sandbox.contents, users: sandbox.users,
                                                eventsPerSecond: 40)
    let truth = PipelineTruth(lines: lines, partitionOf: partitionOf, contents: sandbox.contents, actions: sandbox.topology.actions)
    try sandbox.produceRaw(lines[...], partitionOf: partitionOf)
    _ = try sandbox.runConcurrently(splits: [sandbox.splitOptions()], dwms: [sandbox.dwmOptions()], cache: try sandbox.makeCache())
    return (sandbox, truth)
}

func generateWorkload(events: Int, seed: UInt64, contents: Int, users: Int, eventsPerSecond: Double = 60,
                      partitions: Int = 4) -> (lines: [[UInt8]], partitionOf: [Int32]) {
    var w = EventWorkload()
    w.seed = seed; w.contents = contents; w.users = users
    w.eventsPerSecond = eventsPerSecond
    w.lateShare = 0.01; w.outOfOrderShare = 0.08
    w.duplicateShare = 0.03; w.unknownIdShare = 0.1; w.invalidIdShare = 0.01; w.malformedShare = 0.01
    var g = EventGenerator(w)
    var lines: [[UInt8]] = []
    var line: [UInt8] = []
    for _ in 0..<events { line.removeAll(keepingCapacity: true); _ = g.next(into: &line); lines.append(line) }
    var rng = SeededRandom(seed: seed &+ 1)
    return (lines, lines.indices.map { _ in Int32(rng.below(partitions)) })
}

/// What the pipeline must publish for an input, computed here from the contract alone: each
/// `ods.raw` partition is read in offset order; an event is late when its partition's highest ts
/// so far (itself included) minus the out-of-orderness is past its minute's end plus the allowed
/// lateness; duplicates (same event_id in a cell) count once; unknown and malformed ids never count.
struct PipelineTruth {
    var dws: [String: [String: Int64]] = [:]
    var dwm: [String: [String: Int64]] = [:]
    var strategy: [String: String?] = [:]
    /// The late events' bytes, with multiplicity.
    var late: [String: Int] = [:]
    var unknownContentIds = Set<String>()
    /// Per action: how many times each event id the split must route appears in the input.
    var routed: [String: [String: Int]] = [:]
    var lateCount: Int { late.values.reduce(0, +) }

    init(lines: [[UInt8]], partitionOf: [Int32], contents: Int, actions: [String],
         outOfOrdernessMs: Int64 = 5_000, allowedLatenessMs: Int64 = 120_000) {
        var running: [Int32: Int64] = [:]
        var counted = Set<String>()
        var winner: [String: (ts: Int64, id: [UInt8])] = [:]
        for (i, l) in lines.enumerated() {
            let p = partitionOf[i]
            guard let o = try? JSONSerialization.jsonObject(with: Data(l)) as? [String: Any],
                  let id = o["event_id"] as? String, (1...64).contains(id.utf8.count), let ts = o["ts"] as? Int64,
                  let action = o["action"] as? String, let c = o["content_id"] as? String, let u = o["user_id"] as? String
            else { continue }   // dead-lettered: no progress
            running[p] = max(running[p] ?? .min, ts)
            guard actions.contains(action),
                  c.utf8.count == 9, c.hasPrefix("c"), c.dropFirst().allSatisfy({ ("0"..."9").contains($0) })
            else { continue }   // dead-lettered or an invalid content id
            guard let n = Int(c.dropFirst()), n < contents else { unknownContentIds.insert(c); continue }
            routed[action, default: [:]][id, default: 0] += 1
            let minute = ts - ts % 60_000
            if running[p]! - outOfOrdernessMs > minute + 60_000 + allowedLatenessMs {
                late[String(decoding: l, as: UTF8.self), default: 0] += 1
                continue
            }
            let cell = "\(minute)|\(c)|\(u)"
            guard counted.insert(cell + "|" + id).inserted else { continue }
            let dur = action == "play" ? (o["duration_ms"] as? Int64 ?? 0) : 0
            dwm[cell, default: [:]][action, default: 0] += 1
            dwm[cell, default: [:]]["play_ms", default: 0] += dur
            dwm[cell, default: [:]]["n", default: 0] += 1
            let content = "\(minute)|\(c)"
            dws[content, default: [:]][action, default: 0] += 1
            dws[content, default: [:]]["play_ms", default: 0] += dur
            dws[content, default: [:]]["n", default: 0] += 1
            let idBytes = Array(id.utf8)
            // The strategy of the event with the greatest (ts, event_id bytes).
            if let w = winner[cell], !(ts > w.ts || (ts == w.ts && w.id.lexicographicallyPrecedes(idBytes))) { continue }
            winner[cell] = (ts, idBytes)
            strategy[cell] = .some(o["strategy"] as? String)
        }
        for cell in dwm.keys {
            let p = cell.split(separator: "|")
            dws["\(p[0])|\(p[1])", default: [:]]["uv", default: 0] += 1
        }
    }

    /// A `dws_minute` table holds exactly the final DWS rows: every (minute, content) once, final,
    /// with its numbers, uv and the rev of its last revision.
    func assertDWSTable(_ stored: [DWSTableRow], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(stored.count, dws.count, "one row per (minute, content)", file: file, line: line)
        var wrong: [String] = []
        for row in stored {
            guard let want = dws["\(row.minute)|\(row.contentId)"] else { wrong.append("unexpected \(row)"); continue }
            let got: [String: Int64] = ["expose": row.expose, "click": row.click, "play": row.play, "play_ms": row.playMs,
                                        "like": row.like, "share": row.share, "comment": row.comment, "report": row.report]
            for (k, v) in got where v != want[k, default: 0] { wrong.append("\(row.minute)|\(row.contentId) \(k)=\(v) want \(want[k, default: 0])") }
            if row.uv != want["uv", default: 0] { wrong.append("\(row.minute)|\(row.contentId) uv=\(row.uv) want \(want["uv", default: 0])") }
            if !row.isFinal { wrong.append("\(row.minute)|\(row.contentId) not final") }
            if row.rev != 2 * want["n"]! + 1 { wrong.append("\(row.minute)|\(row.contentId) rev \(row.rev)") }
        }
        XCTAssertEqual(wrong.prefix(10), [], "\(wrong.count) wrong cells", file: file, line: line)
    }

    /// `dwm_minute` (the sink's rows of `dwm.content_user`) is the truth: one row per (minute,
    /// content, user), final, with its numbers, rev and strategy.
    func assertDWMTable(_ stored: [DWMTableRow], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(stored.count, dwm.count, "one row per (minute, content, user)", file: file, line: line)
        var wrong: [String] = []
        for row in stored {
            let cell = "\(row.minute)|\(row.contentId)|\(row.userId)"
            guard let want = dwm[cell] else { wrong.append("unexpected \(cell)"); continue }
            let got: [String: Int64] = ["expose": row.expose, "click": row.click, "play": row.play, "play_ms": row.playMs,
                                        "like": row.like, "share": row.share, "comment": row.comment, "report": row.report]
            for (k, v) in got where v != want[k, default: 0] { wrong.append("\(cell) \(k)=\(v) want \(want[k, default: 0])") }
            if row.strategy != strategy[cell] ?? nil { wrong.append("\(cell) strategy \(row.strategy ?? "null")") }
            if !row.isFinal || row.rev != 2 * want["n"]! + 1 { wrong.append("\(cell) rev \(row.rev) final \(row.isFinal)") }
        }
        XCTAssertEqual(wrong.prefix(10), [], "\(wrong.count) wrong DWM cells", file: file, line: line)
    }

    /// The published rows and `ods.late` equal the truth: every identity, every column, final
    /// flags and revs, the DWM strategy, and the late events with their multiplicity (or as a set
    /// where aborted transactions are visible).
    /// The micro-queues against the input: every event of a known content is in its action's
    /// queue at least once (`exactly`: as often as in the input, for a broker that hides aborted
    /// transactions). Returns the (missing, extra) counts, so a failing pipeline run says whether
    /// the split or the dwm job lost events.
    /// Events the split routes to the micro-queues (known contents), duplicates included.
    var routedEvents: Int { routed.values.reduce(0) { $0 + $1.values.reduce(0, +) } }

    @discardableResult
    func assertMicroQueues(_ sandbox: PipelineSandbox, exactly: Bool, file: StaticString = #filePath, line: UInt = #line) throws -> (missing: Int, extra: Int) {
        var missing = 0, extra = 0
        var samples: [String] = []
        for (action, want) in routed {
            var seen: [String: Int] = [:]
            for r in try sandbox.read(Topology.microQueue(for: action)) where r.key != nil {
                guard let o = try? JSONSerialization.jsonObject(with: Data(r.value)) as? [String: Any],
                      let id = o["event_id"] as? String else { continue }
                seen[id, default: 0] += 1
            }
            for (id, n) in want {
                let got = seen[id] ?? 0
                if got == 0 { missing += 1; if samples.count < 5 { samples.append("\(action)/\(id)") } }
                if got > n { extra += got - n }
            }
        }
        XCTAssertEqual(missing, 0, "events of known contents missing from the micro-queues: \(samples)", file: file, line: line)
        if exactly { XCTAssertEqual(extra, 0, "events repeated in the micro-queues", file: file, line: line) }
        return (missing, extra)
    }

    func assertMatches(_ sandbox: PipelineSandbox, lateAsSet: Bool = false, tolerateAborted: Bool = false,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let actions = sandbox.topology.actions
        let dwsRows = try sandbox.upserts(Topology.dws, identity: { "\($0["minute"]!)|\($0["content_id"]!)" },
                                          tolerateAborted: tolerateAborted, file: file, line: line)
        let dwmRows = try sandbox.upserts(Topology.dwm, identity: { "\($0["minute"]!)|\($0["content_id"]!)|\($0["user_id"]!)" },
                                          tolerateAborted: tolerateAborted, file: file, line: line)
        XCTAssertEqual(Set(dws.keys).subtracting(dwsRows.keys).sorted().prefix(10), [], "DWS rows missing", file: file, line: line)
        XCTAssertEqual(Set(dwsRows.keys).subtracting(dws.keys).sorted().prefix(10), [], "DWS rows not expected", file: file, line: line)
        XCTAssertEqual(Set(dwm.keys).subtracting(dwmRows.keys).sorted().prefix(10), [], "DWM rows missing", file: file, line: line)
        XCTAssertEqual(Set(dwmRows.keys).subtracting(dwm.keys).sorted().prefix(10), [], "DWM rows not expected", file: file, line: line)
        var wrong: [String] = []
        for (id, row) in dwsRows {
            guard let want = dws[id] else { continue }
            if row["final"] as? Bool != true { wrong.append("\(id) not final") }
            if row["rev"] as? Int != Int(2 * want["n"]! + 1) { wrong.append("\(id) rev \(row["rev"] ?? "-") want \(2 * want["n"]! + 1)") }
            for col in actions + ["play_ms", "uv"] where (row[col] as? Int).map(Int64.init) != want[col] ?? 0 {
                wrong.append("\(id) \(col)=\(row[col] ?? "-") want \(want[col] ?? 0)")
            }
            if !(row["content"] is [String: Any]) { wrong.append("\(id) without content dimensions") }
        }
        for (id, row) in dwmRows {
            guard let want = dwm[id] else { continue }
            if row["final"] as? Bool != true { wrong.append("\(id) not final") }
            if row["rev"] as? Int != Int(2 * want["n"]! + 1) { wrong.append("\(id) rev \(row["rev"] ?? "-") want \(2 * want["n"]! + 1)") }
            for col in actions + ["play_ms"] where (row[col] as? Int).map(Int64.init) != want[col] ?? 0 {
                wrong.append("\(id) \(col)=\(row[col] ?? "-") want \(want[col] ?? 0)")
            }
            if row["strategy"] as? String != strategy[id] ?? nil { wrong.append("\(id) strategy \(row["strategy"] ?? "nil") want \(String(describing: strategy[id]))") }
            if !(row["user"] is [String: Any]) { wrong.append("\(id) without the user profile") }
        }
        XCTAssertEqual(wrong.count, 0, "rows differing from the truth (first 10): \(wrong.sorted().prefix(10))", file: file, line: line)
        let rowsOfUnknown = dwsRows.values.filter { unknownContentIds.contains($0["content_id"] as? String ?? "") }.count
            + dwmRows.values.filter { unknownContentIds.contains($0["content_id"] as? String ?? "") }.count
        XCTAssertEqual(rowsOfUnknown, 0, "rows for content ids the store does not know", file: file, line: line)

        var gotLate: [String: Int] = [:]
        for r in try sandbox.read(Topology.late) { gotLate[String(decoding: r.value, as: UTF8.self), default: 0] += 1 }
        if lateAsSet ? Set(gotLate.keys) != Set(late.keys) : gotLate != late { try explainLateDifference(gotLate, sandbox) }
        if lateAsSet {
            XCTAssertEqual(Set(gotLate.keys), Set(late.keys), "ods.late holds exactly the events late in their own partition", file: file, line: line)
        } else {
            XCTAssertEqual(gotLate.values.reduce(0, +), lateCount, "ods.late count", file: file, line: line)
            XCTAssertEqual(gotLate, late, "ods.late holds exactly the events late in their own partition", file: file, line: line)
        }
    }
}

extension PipelineTruth {
    /// Says where each late event missing from `ods.late` (read_committed) is: written but not
    /// shown to read_committed readers (the broker's doing), or never written (the job's).
    fileprivate func explainLateDifference(_ got: [String: Int], _ sandbox: PipelineSandbox) throws {
        var everything: [String: [String]] = [:]
        for r in try sandbox.read(Topology.late, readCommitted: false) {
            everything[String(decoding: r.value, as: UTF8.self), default: []].append("p\(r.partition)@\(r.offset)")
        }
        for (event, n) in late.sorted(by: { $0.key < $1.key }) where (got[event] ?? 0) != n {
            let id = (try? JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any])?["event_id"] as? String ?? event
            print("ods.late: \(id) expected \(n), read_committed \(got[event] ?? 0), read_uncommitted at \(everything[event] ?? [])")
        }
        for (event, n) in got where late[event] == nil {
            print("ods.late: not late in the truth, read \(n) times: \(event.prefix(120))")
        }
    }
}

/// Waits (bounded) until `path` holds `count` lines containing `marker` (a launched job's log).
func waitForLogLine(_ marker: String, count: Int, in path: String, timeout: Duration) {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        if text.components(separatedBy: "\n").filter({ $0.contains(marker) }).count >= count { return }
        Thread.sleep(forTimeInterval: 0.1)
    }
}
