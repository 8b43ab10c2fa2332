import Foundation
public import Logging
import Metrics
public import StrataCore
public import StrataDWM
public import StrataDims
import StrataKafka
public import StrataRuntime
import StrataSplit

/// The dwm job: micro-queues → minute windows (content × user) → enriched DWM and DWS upsert rows.
///
/// Exactly-once (docs/time-semantics.md, docs/exactly-once.md): every few seconds (the early-revision
/// interval) or when a window becomes final, one transaction publishes everything the engine
/// collected, the late records, each source's replay checkpoint and the consumer positions. A
/// minute's DWS finals go in the transaction that finalizes it, its DWM finals in the next ones
/// (right after, `dwmFinalsPerTransaction` rows each), unless `dwsFinalsFirst` is off. After
/// a crash or a rebalance the engine is rebuilt: each source is re-read from its checkpoint's
/// replay offset, records below the committed position only rebuild state (their rows were
/// published), and `rev` is a function of state, so a replay reproduces the revisions it had published.
public final class DWMJob: StreamJob {
    public struct Options: Sendable {
        public var brokers: String
        public var kafka: [String: String] = [:]
        public var groupId = Topology.dwmGroup
        public var instanceId = "0"
        public var topicPrefix = ""
        public var outOfOrdernessMs: Int64 = 5_000
        public var allowedLatenessMs: Int64 = 120_000
        /// 2 s (ksqlDB's commit interval too): early rows p99 4.1–5.3 s at 5 000 events/s, against
        /// 8.0 s with 5 s, for 7–18 % more CPU and about half again as many DWS rows
        /// (docs/benchmarks.md, freshness).
        public var earlyIntervalMs: Int64 = 2_000
        /// A minute's DWS finals in one transaction, its DWM finals in the next (see
        /// `WindowConfig.dwsFinalsFirst`); false: both in one.
        public var dwsFinalsFirst = true
        /// With DWS finals first: a minute's DWM finals go out over as many transactions as it
        /// takes, about this many rows each (`WindowConfig.dwmFinalsPerCollect`), and each of them
        /// carries the next minute's early rows too (a live minute's); 0: all in one transaction.
        public var dwmFinalsPerTransaction = 50_000
        /// A transaction's rows are encoded and produced in passes holding about this many bytes
        /// each; a transaction with more waits for a pass's delivery before the next, so the rows
        /// held (they are produced without librdkafka's copy) stay bounded.
        public var rowPassBytes = 32 << 20
        /// The job reads and applies the next records while a transaction ends (its offsets and
        /// commit on a thread of their own: `TransactionalStage.overlapsCommit`); false: it waits.
        public var overlapCommits = true
        /// Read ods.raw itself instead of the split's micro-queues: one broker hop fewer, and the
        /// watermark no longer waits for the split's transactions. ods.raw must be keyed by
        /// content_id (every instance then sees all of a content's events); the job validates each
        /// record by the split's rules and stops at the first record keyed otherwise. The split
        /// still publishes the micro-queues and the dead letters for their other readers.
        public var readRaw = false
        /// With `readRaw`: hold back an ods.raw partition this far (ms of event time) ahead of the
        /// slowest one with input (`ReadAlignment`), so a catch-up holds few windows open; nil: off.
        public var alignMs: Int64? = 60_000
        public var idleSourceTimeoutMs: Int64 = 30_000
        public var untilIdle: Duration?
        /// In `strata run`: stop idle only after the job upstream has finished.
        public var idleOrder = IdleOrder()
        public var batchSize = 10_000
        /// Static group membership (see `TransactionalLoop.Options.staticMembership`).
        public var staticMembership = false
        /// Which checkpoints a restore believes: `.auto` learns whether the broker shows aborted
        /// transactions (then `.proven`), `.proven` only those known to have committed, `.all`
        /// every one read (right where aborted transactions are hidden, as Kafka does).
        public var checkpointTrust = CheckpointTrust.auto
        /// See `TransactionalLoop.Options.settleTimeout`.
        public var settleTimeout: Duration?
        public init(brokers: String) { self.brokers = brokers }
    }

    public struct Stats: Sendable {
        public var accounting = Accounting()
        public var dwmRows = 0, dwsRows = 0, lateForwarded = 0, transactions = 0, rebuilds = 0
        /// Transactions aborted (and their work redone) after an error that required it.
        public var abortedTransactions = 0
        public var rowsWithoutContent = 0
        /// Waits for a pass of rows to be delivered inside a transaction (see `Options.rowPassBytes`).
        public var rowPassWaits = 0
        /// The most minute windows the engine retained at a commit (the memory a catch-up needs).
        public var peakOpenWindows = 0
    }

    private let options: Options
    private let stage: DWMStage
    private let loop: TransactionalLoop
    public let name = "dwm"

    public init(options: Options, topology: Topology, cache: DimensionCache, logger: Logger = Logger(label: "strata.dwm")) {
        self.options = options
        stage = DWMStage(options: options, topology: topology, cache: cache, logger: logger)
        var loopOptions = TransactionalLoop.Options(job: "dwm", brokers: options.brokers, groupId: options.groupId,
                                                    inputs: DWMStage.inputs(options: options, topology: topology))
        loopOptions.kafka = options.kafka
        loopOptions.instanceId = options.instanceId
        loopOptions.topicPrefix = options.topicPrefix
        loopOptions.batchSize = options.batchSize
        loopOptions.untilIdle = options.untilIdle
        loopOptions.idleOrder = options.idleOrder
        loopOptions.staticMembership = options.staticMembership
        loopOptions.settleTimeout = options.settleTimeout
        // A final emission can be a million rows: bound what librdkafka buffers (produce then waits
        // for the broker) instead of holding the whole minute in memory. -X overrides it.
        loopOptions.producerDefaults["queue.buffering.max.kbytes"] = "131072"
        // JSON rows compress 3-5×: with lz4 the broker takes a minute's final rows in less than
        // half the time (docs/benchmarks.md). Consumers decompress transparently.
        loopOptions.producerDefaults["compression.type"] = "lz4"
        // The transaction that finalizes a minute (≈300 k rows at 5 000 events/s: 2–4 s on a quiet
        // machine) overran the 10 s default on busy cores: the member left its group, rebuilt its
        // windows from the checkpoints and fell further behind, again and again (the 30-min soak,
        // docs/benchmarks.md). A minute's work must fit between two polls.
        // -X consumer.max.poll.interval.ms=… overrides it.
        loopOptions.consumerDefaults["max.poll.interval.ms"] = "60000"
        // Range assignment hands one member the same partition numbers of every micro-queue:
        // all events of a content (co-partitioned by content_id) reach the same engine.
        loopOptions.consumerDefaults["partition.assignment.strategy"] = "range"
        // End-of-partition events tell alignment (and the idle rule) which partitions have
        // nothing more to deliver.
        if options.readRaw { loopOptions.consumerDefaults["enable.partition.eof"] = "true" }
        loop = TransactionalLoop(options: loopOptions, logger: logger)
    }

    public var stats: Stats {
        var s = stage.stats
        s.transactions = loop.stats.transactions
        s.abortedTransactions = loop.stats.abortedTransactions
        s.rebuilds = loop.stats.restores
        return s
    }
    /// The latest early/final rows' emission times, for freshness measurements.
    public var lastCommitAt: ContinuousClock.Instant? { loop.stats.lastCommitAt }
    public var firstRecordAt: ContinuousClock.Instant? { loop.stats.firstRecordAt }
    public var lastRecordAt: ContinuousClock.Instant? { loop.stats.lastRecordAt }

    public func run(shouldStop: @escaping () -> Bool, report: @escaping (JobSummary) -> Void) throws {
        try run(shouldStop: shouldStop, onCommit: { [unowned self] _ in report(summary) })
    }

    public func run(shouldStop: () -> Bool = { false }, onCommit: (Stats) -> Void = { _ in }) throws {
        try loop.run(stage, shouldStop: shouldStop) { onCommit(stats) }
        stage.finish()
    }

    public var summary: JobSummary {
        let s = stats, a = s.accounting
        var j = JobSummary(job: name)
        j.consumed = a.consumed
        j.outcomes = ["applied": a.applied, "duplicates": a.duplicates, "late": a.late, "filtered": a.filteredTotal]
        j.details = ["filtered": a.filtered, "rows": ["pass_waits": s.rowPassWaits]]
        j.written = ["dwm_rows": s.dwmRows, "dws_rows": s.dwsRows, "late_forwarded": s.lateForwarded,
                     "rows_without_content": s.rowsWithoutContent]
        j.transactions = loop.stats.transactions
        j.abortedTransactions = loop.stats.abortedTransactions
        j.addStages(loop.clock)
        return j
    }
}

/// The dwm job's transform: applies micro-queue records to the window engine, and on the
/// early-revision cadence or when a window turns final publishes the enriched rows, the late
/// records and each source's replay checkpoint. After an assignment or an abort it rebuilds the
/// engine from those checkpoints (docs/exactly-once.md).
final class DWMStage: TransactionalStage {
    private let options: DWMJob.Options
    private let topology: Topology
    private let cache: DimensionCache
    private let logger: Logger
    private(set) var stats = DWMJob.Stats()
    private var lastProgressLog = ContinuousClock.now - .seconds(3600)
    private var lastRestoreLog = ContinuousClock.now
    /// The current engine's live accounting at its last commit.
    private var engineAtCommit = Accounting()
    private var enricher: RowEnricher
    private var state: EngineState?
    private var out: Outputs?
    /// The rows of the transaction under way (the reused ``batch``), nil between transactions.
    private var emission: RowBatch?
    private let batch: RowBatch
    private var emittedAt: Int64 = 0
    /// The current transaction's collect published every open window's early rows (at this instant).
    private var earlyOutAt: ContinuousClock.Instant?
    /// What the transaction produced last covered, for `committed`: the job reads on while it ends
    /// (`overlapsCommit`), so the state has moved past it by then.
    private var cut: Cut?
    private struct Cut {
        let late: Int
        let accounting: Accounting
        let positions: [Source: Int64]
        /// Nothing was consumed since: the early rows it published are every change there is.
        var quiet = true
    }
    private var timings: (lookup: Duration, produce: Duration) = (.zero, .zero)
    private let topicNames: [String]
    private let topicIndex: [String: Int]
    private var names = TopicNames()
    /// With `readRaw`: the split's validation and routing, run in-process.
    private var router: SplitRouter?
    /// With `readRaw`: event-time alignment of reading ods.raw (holding only with `alignMs`), and
    /// which partitions have input.
    private var alignment: ReadAlignment?
    /// Scratch for ``warmContentGate(_:engine:)``: views into the current batch only.
    private var unconfirmed: [UnsafeRawBufferPointer] = []
    private let metrics = DWMMetrics()
    /// The loop's stage clock and this stage's own laps inside the loop's calls.
    private var clock: StageClock?
    private var laps = (windowApply: 0, collect: 0, lookup: 0, rows: 0)

    private var checkpointTopic: String { options.topicPrefix + Topology.dwmCheckpoint }
    /// This process's probe (``sendProbe``), and whether restores believe only the checkpoints
    /// known to have committed (``CheckpointTrust``; with `.auto` what the probe told); nil until
    /// the first restore has read the checkpoint topic.
    private let probe = String(UInt64.random(in: 0...UInt64.max), radix: 36)
    private var provenOnly: Bool?
    /// Seals of engines replaced since the last commit (``sealRecords``).
    private var pendingSeals: [(key: [UInt8], value: [UInt8])] = []
    /// The checkpoint topic's read under way for a restore.
    private var load: CheckpointLoad?

    init(options: DWMJob.Options, topology: Topology, cache: DimensionCache, logger: Logger) {
        self.options = options
        self.topology = topology
        self.cache = cache
        self.logger = logger
        enricher = RowEnricher(cache: cache, actions: topology.actions, passBytes: options.rowPassBytes)
        batch = RowBatch(actionCount: topology.actions.count)
        topicNames = Self.inputs(options: options, topology: topology)
        topicIndex = Dictionary(uniqueKeysWithValues: topicNames.enumerated().map { ($1, $0) })
    }

    /// The micro-queues, in the topology's action order (a source's topic index), or ods.raw alone.
    static func inputs(options: DWMJob.Options, topology: Topology) -> [String] {
        options.readRaw ? [options.topicPrefix + Topology.raw] : topology.actions.map { options.topicPrefix + Topology.microQueue(for: $0) }
    }

    struct Outputs { let dwm, dws, late, checkpoint: KafkaTopic }

    /// A partition read again from its beginning: since when, and whether the consumer's position
    /// was seen below the target since (the re-read is under way; a short partition may be read
    /// again within one poll, so the position is also trusted some time after the seek).
    struct Reread {
        let since = ContinuousClock.now
        var seenBelow = false
        var inEffect: Bool { seenBelow || ContinuousClock.now - since >= .seconds(10) }
    }

    /// One engine over the current assignment and where it stands.
    struct EngineState {
        var engine: WindowEngine
        var positions: [Source: Int64] = [:]
        var restoreTargets: [Source: Int64] = [:]
        /// The next offset actually read per source since the rebuild. The replay is over when it
        /// reaches each target; `positions` cannot tell, it starts at the committed position.
        var readUpTo: [Source: Int64] = [:]
        /// Sources whose replay the broker skipped records of, read again from their beginning.
        var rereading: [Source: Reread] = [:]
        var late: [(key: [UInt8]?, value: [UInt8])] = []
        var lastCommit = ContinuousClock.now
        /// When the last committed collect published the early rows of every open window.
        var lastEarly = ContinuousClock.now
        /// Changes applied since then.
        var dirty = false
        /// Tags this engine's checkpoints (``CheckpointTag``): a fresh writer id per rebuild, its
        /// committed transactions so far, and the positions of its last checkpoints.
        let writer = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        var seq = 0
        var checkpointed: [Source: Int64] = [:]

        /// A record of `source` at `offset` was read: the position to commit, and the replay's progress.
        mutating func read(_ source: Source, offset: Int64) {
            positions[source] = max(positions[source] ?? 0, offset + 1)
            readUpTo[source] = offset + 1
        }
    }

    /// `window_apply` (consume: records into the engine), `collect` (the engine's rows for a
    /// transaction), `enrich_lookup` (dimension lookups), `encode_produce_rows` (JSON encoding of
    /// the DWM and DWS rows and handing them to librdkafka, which may wait for queue space).
    func attach(clock: StageClock) {
        self.clock = clock
        laps = (clock.stage("window_apply"), clock.stage("collect"), clock.stage("enrich_lookup"), clock.stage("encode_produce_rows"))
    }

    func prepare(producer: KafkaProducer, consumer: KafkaConsumer) throws {
        out = Outputs(dwm: producer.topic(options.topicPrefix + Topology.dwm), dws: producer.topic(options.topicPrefix + Topology.dws),
                      late: producer.topic(options.topicPrefix + Topology.late), checkpoint: producer.topic(checkpointTopic))
        if options.readRaw { router = try SplitRouter(topology: topology) }
        try sendProbe(producer)
    }

    /// A record in a transaction that is aborted: if the first restore's `read_committed` read of
    /// the checkpoint topic sees it, the broker shows aborted transactions (the local one does).
    private func sendProbe(_ producer: KafkaProducer) throws {
        guard options.checkpointTrust == .auto else { return }
        try producer.beginTransaction()
        try producer.produce(topic: checkpointTopic, key: CheckpointRecord.probeKey(group: options.groupId, instance: options.instanceId),
                             value: Array(probe.utf8))
        // Delivered before the abort: an abort drops what is still queued.
        do { try producer.flush() } catch {
            try producer.abortTransaction()
            throw error
        }
        try producer.abortTransaction()
    }

    /// After the loop's last commit: seal this engine's transactions, so that a restart trusts its
    /// last checkpoints (only where the broker shows aborted transactions; elsewhere nothing).
    func sealRecords() -> [(topic: String, key: [UInt8], value: [UInt8])] {
        guard provenOnly == true else { return [] }
        var seals = pendingSeals
        if let s = state, s.seq > 0 { seals.append(CheckpointRecord.seal(group: options.groupId, writer: s.writer, seq: s.seq)) }
        return seals.map { (checkpointTopic, $0.key, $0.value) }
    }

    func finish() {
        logger.info("dwm accounting", metadata: ["accounting": "\(stats.accounting)", "dwm_rows": "\(stats.dwmRows)",
                                                "dws_rows": "\(stats.dwsRows)", "late": "\(stats.lateForwarded)"])
    }

    /// A new engine over `owned`: every partition is positioned explicitly, at its checkpoint's
    /// replay offset, else at the group's committed offset, else at the beginning. The checkpoint
    /// topic is read on a thread of its own (it waits for every open transaction on it, a dead
    /// peer's until the broker times it out): `.notYet` until then, the loop polling meanwhile so
    /// the membership survives a read longer than max.poll.interval.ms.
    func restore(owned assigned: [TopicPartitionOffset], consumer: KafkaConsumer) throws -> Restore {
        var log = CheckpointLog()
        if assigned.isEmpty {
            load = nil
        } else {
            let owned = Set(assigned.map { "\($0.topic)|\($0.partition)" })
            // Another assignment while reading: read again, offsets committed since count.
            if load?.owned != owned {
                let (topic, group, instance, brokers, kafka) = (checkpointTopic, options.groupId, options.instanceId, options.brokers, options.kafka)
                load = CheckpointLoad(owned: owned) {
                    try CheckpointRecord.load(topic: topic, group: group, instance: instance, brokers: brokers, kafka: kafka,
                                              timeout: .seconds(600))
                }
            }
            guard let l = load, let outcome = l.outcome else {
                if let l = load, ContinuousClock.now - l.lastReport >= .seconds(10) {
                    l.lastReport = .now
                    logger.info("reading the checkpoints (waiting for the open transactions on the topic); partitions paused",
                                metadata: ["waited_s": "\((ContinuousClock.now - l.started).components.seconds)"])
                }
                return .notYet
            }
            load = nil
            log = try outcome.get()
        }
        let gate = cache
        var config = WindowConfig(actions: topology.actions, outOfOrdernessMs: options.outOfOrdernessMs,
                                  allowedLatenessMs: options.allowedLatenessMs, idleTimeoutMs: options.idleSourceTimeoutMs)
        config.dwsFinalsFirst = options.dwsFinalsFirst
        config.dwmFinalsPerCollect = options.dwmFinalsPerTransaction
        config.rawInput = options.readRaw
        let engine = WindowEngine(config: config) { gate.confirmContent($0) }
        var state = EngineState(engine: engine)
        // The members of a group get their partitions in the same instant: started from it, their
        // early transactions would commit in lockstep, every interval (a burst on the broker each
        // time; on Tansu, simultaneous ends can stall the read_committed end for good, which
        // `TransactionEndLock` prevents). A random phase spreads them; the first early rows come
        // no later than before.
        state.lastEarly = .now - .milliseconds(Int64.random(in: 0..<max(1, options.earlyIntervalMs)))
        // The engine replaced committed `seq` transactions: sealed in the next transaction.
        if provenOnly == true, let old = self.state, old.seq > 0 {
            pendingSeals.append(CheckpointRecord.seal(group: options.groupId, writer: old.writer, seq: old.seq))
        }
        defer { self.state = state }
        engineAtCommit = Accounting()
        // Alignment starts afresh: nothing stays held across an assignment.
        if options.readRaw {
            alignment = ReadAlignment(topic: topicNames[0], aheadMs: options.alignMs)
            try alignment?.assign(assigned.map(\.partition), consumer: consumer)
        }
        guard !assigned.isEmpty else { return Restore() }
        let proven = decideTrust(log)
        // Believing only proven checkpoints needs the committed offsets of every input partition
        // the checkpoints name, not only the assigned ones: a transaction is trusted by all the
        // positions it wrote.
        var asked = Set(assigned.map { "\($0.topic)|\($0.partition)" })
        var query = assigned
        for list in log.records.values where proven {
            guard let r = list.first, topicIndex[r.topic] != nil, asked.insert(r.source).inserted else { continue }
            query.append(TopicPartitionOffset(topic: r.topic, partition: r.partition, offset: TopicPartitionOffset.invalid))
        }
        let committed = Dictionary(try consumer.committed(query).map { ("\($0.topic)|\($0.partition)", $0.offset) },
                                   uniquingKeysWith: { a, _ in a })
        let saved = proven ? provenCheckpoints(log, committed: committed) : log.records
        var checkpoints: [Source: SourceCheckpoint] = [:]
        var seeks: [TopicPartitionOffset] = []
        var unstarted: [Source] = []
        var unproven: [String] = []
        for tp in assigned {
            guard let t = topicIndex[tp.topic] else { continue }
            let key = "\(tp.topic)|\(tp.partition)"
            let (chosen, exact) = CheckpointRecord.select(saved[key] ?? [], committed: committed[key])
            if !exact {
                logger.warning("no checkpoint at the committed offset; restoring from an earlier one",
                               metadata: ["partition": "\(tp.topic)[\(tp.partition)]", "committed": "\(committed[key] ?? -1)",
                                          "checkpoint_at": "\(chosen.map { "\($0.position)" } ?? "none")",
                                          "newest_at": "\((log.records[key] ?? []).last.map { "\($0.position)" } ?? "none")"])
            }
            if proven, chosen != CheckpointRecord.select(log.records[key] ?? [], committed: committed[key]).record {
                unproven.append("\(tp.topic)[\(tp.partition)]")
            }
            guard let r = chosen else {
                let c = committed[key] ?? TopicPartitionOffset.invalid
                if c < 0 { unstarted.append(Source(topic: t, partition: Int(tp.partition))) }
                seeks.append(TopicPartitionOffset(topic: tp.topic, partition: tp.partition, offset: c >= 0 ? c : TopicPartitionOffset.first))
                continue
            }
            let source = Source(topic: t, partition: Int(tp.partition))
            checkpoints[source] = r.checkpoint
            state.positions[source] = r.position
            if r.checkpoint.replayOffset < r.position { state.restoreTargets[source] = r.position }
            seeks.append(TopicPartitionOffset(topic: tp.topic, partition: tp.partition, offset: r.checkpoint.replayOffset))
        }
        state.checkpointed = state.positions
        if !unproven.isEmpty {
            // Their newest checkpoints came from a transaction not known to have committed (a
            // killed life's last one, on a broker that shows aborted transactions): its rows are redone.
            logger.info("restoring from checkpoints older than the newest, which are not known to have committed",
                        metadata: ["partitions": "\(unproven.joined(separator: ","))"])
        }
        engine.expectSources(assigned.compactMap { tp in topicIndex[tp.topic].map { Source(topic: $0, partition: Int(tp.partition)) } },
                             nowMs: Self.wallMs())
        if !checkpoints.isEmpty {
            engine.beginRestore(checkpoints: checkpoints, committedOffsets: state.positions, unstarted: unstarted)
            if state.restoreTargets.isEmpty { engine.endRestore() }
        }
        logger.info("engine rebuilt", metadata: ["partitions": "\(assigned.count)", "checkpoints": "\(checkpoints.count)",
                                                 "replaying_sources": "\(state.restoreTargets.count)"])
        let positions = state.positions.map { TopicPartitionOffset(topic: topicNames[$0.key.topic], partition: Int32($0.key.partition), offset: $0.value) }
        return Restore(seeks: seeks, positions: positions)
    }

    /// Whether restores believe only checkpoints known to have committed: decided once, by
    /// `checkpointTrust`, with `.auto` by whether the probe ``prepare`` aborted is visible (the
    /// broker shows aborted transactions; one that hides them, as Kafka does, shows only committed
    /// checkpoints, all of them believable).
    private func decideTrust(_ log: CheckpointLog) -> Bool {
        if let provenOnly { return provenOnly }
        let decided: Bool
        switch options.checkpointTrust {
        case .auto: decided = log.probes.contains(probe)
        case .proven: decided = true
        case .all: decided = false
        }
        if decided {
            logger.notice("restoring only from checkpoints known to have committed",
                          metadata: ["why": "\(options.checkpointTrust == .auto ? "the broker shows aborted transactions to read_committed readers" : "--checkpoint-trust proven")"])
        }
        provenOnly = decided
        return decided
    }

    /// The checkpoints known to have committed (``CheckpointLog/trusted(committed:)``).
    private func provenCheckpoints(_ log: CheckpointLog, committed: [String: Int64]) -> [String: [CheckpointRecord]] {
        let (records, untrusted) = log.trusted(committed: committed)
        if !untrusted.isEmpty {
            logger.warning("no checkpoint known to have committed; choosing among all of them",
                           metadata: ["partitions": "\(untrusted.joined(separator: ","))"])
        }
        return records
    }

    /// Records consumed while the last transaction ends go into the next one.
    var overlapsCommit: Bool { options.overlapCommits }

    func consume(_ records: [KafkaMessage]) throws {
        guard var s = state else { return }
        defer { state = s }
        cut?.quiet = false
        // The micro-queues are keyed by content id: the batch's ids the engine has not confirmed
        // are looked up together before applying (≈ 30 % of a catch-up's apply time before).
        warmContentGate(records, engine: s.engine)
        if let router { try consumeRaw(records, router: router, into: &s) } else { consumeMicroQueues(records, into: &s) }
        clock?.lap(laps.windowApply)
        s.dirty = true
        // A content id let through without the store's answer: fail before anything is committed.
        if let e = cache.takeGateFailure() { throw e }
        if s.engine.isRestoring, s.restoreTargets.allSatisfy({ (s.readUpTo[$0.key] ?? 0) >= $0.value }) {
            s.engine.endRestore()
            logger.info("state restored", metadata: ["replayed": "\(s.engine.restoreAccounting)"])
            s.restoreTargets = [:]
        }
    }

    /// The batch's content ids (record keys) the engine has not confirmed, in one lookup. A run of
    /// records with one key (the micro-queues and a keyed ods.raw are keyed by content id) is
    /// checked once.
    private func warmContentGate(_ records: [KafkaMessage], engine: WindowEngine) {
        unconfirmed.removeAll(keepingCapacity: true)
        var previous: UnsafeRawBufferPointer?
        for m in records {
            guard let k = m.key else { continue }
            if let p = previous, p.count == k.count, p.elementsEqual(k) { continue }
            previous = k
            if !engine.knowsContent(k) { unconfirmed.append(k) }
        }
        if !unconfirmed.isEmpty { cache.warmContentGate(unconfirmed) }
        unconfirmed.removeAll(keepingCapacity: true)  // views into this batch: not kept past it
    }

    private func consumeMicroQueues(_ records: [KafkaMessage], into s: inout EngineState) {
        Self.forEachPartitionRun(records) { run in
            guard let t = topicIndex[names.of(records[run.lowerBound])] else { return }
            let source = Source(topic: t, partition: Int(records[run.lowerBound].partition))
            for m in records[run] {
                // The split's watermark markers (null key) carry ods.raw progress, not events.
                if m.isWatermarkMarker, let marker = SourceProgress.Marker(m.value) {
                    s.engine.applyMarker(marker, source: source, offset: m.offset)
                    continue
                }
                let stamp = m.withHeader(SourceProgress.stampHeader) { $0.flatMap { SourceProgress.Stamp($0) } }
                let outcome = s.engine.apply(m.value, source: source, offset: m.offset, stamp: stamp)
                if outcome == .late { s.late.append((m.key.map { Array($0) }, Array(m.value))) }
            }
            s.read(source, offset: records[run.upperBound - 1].offset)
        }
    }

    /// ods.raw read directly: each record validated and routed as the split does; what the split
    /// filters or dead-letters is counted here as filtered with the same reason (the split still
    /// dead-letters it). Its progress is its own partition's (`WindowConfig.rawInput`).
    private func consumeRaw(_ records: [KafkaMessage], router: SplitRouter, into s: inout EngineState) throws {
        let now = ContinuousClock.now
        try Self.forEachPartitionRun(records) { run in
            let source = Source(topic: 0, partition: Int(records[run.lowerBound].partition))
            alignment?.noteRecords(partition: records[run.lowerBound].partition, now: now)
            for m in records[run] {
                var scanned: ScannedEvent?
                let outcome: ApplyOutcome
                switch router.route(m.value, scanned: &scanned) {
                case .route(let action, let key):
                    try checkKeyed(m, contentId: UnsafeRawBufferPointer(rebasing: m.value[key.start..<key.start + key.count]))
                    // The router's topology is the engine's: its action index is the engine's.
                    outcome = s.engine.apply(scanned: scanned!, in: m.value, source: source, offset: m.offset, action: action)
                case .routeDecoded(_, let key):
                    try key.withUnsafeBytes { try checkKeyed(m, contentId: $0) }
                    outcome = s.engine.apply(scanned: scanned!, in: m.value, source: source, offset: m.offset)
                case .filter(let reason), .deadLetter(let reason, _):
                    outcome = s.engine.skip(source: source, offset: m.offset, ts: scanned?.ts, reason: reason)
                }
                if outcome == .late { s.late.append((m.key.map { Array($0) }, Array(m.value))) }
            }
            s.read(source, offset: records[run.upperBound - 1].offset)
        }
    }

    /// Calls `body` with each run of consecutive records from one partition (a poll hands them
    /// out so): a run's source is found and its position noted once, not per record (the maps
    /// keyed by topic name and source cost ≈ 0.1 µs per record).
    @inline(__always)
    private static func forEachPartitionRun(_ records: [KafkaMessage], _ body: (Range<Int>) throws -> Void) rethrows {
        var start = 0
        while start < records.count {
            var end = start + 1
            while end < records.count, records[end].isSameTopicPartition(as: records[start]) { end += 1 }
            try body(start..<end)
            start = end
        }
    }

    /// Reading ods.raw directly is correct only when a content's events share a partition, i.e.
    /// when producers key ods.raw by content_id: a record keyed otherwise stops the job before
    /// anything of its batch is committed.
    @inline(__always)
    private func checkKeyed(_ m: KafkaMessage, contentId: UnsafeRawBufferPointer) throws {
        if let k = m.key, k.count == contentId.count, k.elementsEqual(contentId) { return }
        throw DWMJobError.notKeyedByContent(
            "\(topicNames[0])[\(m.partition)] offset \(m.offset) is keyed \(m.key.map { "\"\(String(decoding: $0, as: UTF8.self))\"" } ?? "null") "
            + "but its content_id is \"\(String(decoding: contentId, as: UTF8.self))\": reading ods.raw directly needs it keyed by content_id "
            + "(so that each instance sees all of a content's events). Run the dwm job without --read-raw, or key ods.raw by content_id")
    }

    func partitionEnded(topic: String, partition: Int32) { alignment?.noteEnd(partition: partition) }

    /// Reading ods.raw: aligns the partitions by event time (not while a replay runs: it must
    /// reach every target). While a replay runs: checks that the consumer is not past a target it
    /// did not deliver the records up to, and every 5 s logs which partitions it still waits for
    /// (read up to / target).
    func afterPoll(consumer: KafkaConsumer) throws {
        guard state?.engine.isRestoring == true else { return align(consumer: consumer) }
        try checkReplayGaps(consumer)
        guard let s = state, ContinuousClock.now - lastRestoreLog >= .seconds(5) else { return }
        lastRestoreLog = .now
        let behind = s.restoreTargets.filter { (s.readUpTo[$0.key] ?? 0) < $0.value }
            .sorted { ($0.key.topic, $0.key.partition) < ($1.key.topic, $1.key.partition) }
            .map { "\(topicNames[$0.key.topic])[\($0.key.partition)] read to \(s.readUpTo[$0.key].map { "\($0)" } ?? "-") of \($0.value)" }
        logger.info("replaying state", metadata: ["waiting_for": "\(behind.joined(separator: ", "))"])
    }

    /// A replay needs every record from its sources' replay offsets to their targets. When the
    /// consumer's position is past a target it handed no record at or beyond (the records below
    /// it were skipped: deleted by retention, or hidden by a broker that answered the fetch as if
    /// they were aborted), the partition is read once more from its beginning (the loop skips
    /// what lies below the replay offset); if they are still missing, the job stops with an
    /// error instead of publishing windows rebuilt without them.
    private func checkReplayGaps(_ consumer: KafkaConsumer) throws {
        guard var s = state else { return }
        let behind = s.restoreTargets.filter { (s.readUpTo[$0.key] ?? 0) < $0.value }
        guard !behind.isEmpty else { return }
        let asked = behind.keys.map { TopicPartitionOffset(topic: topicNames[$0.topic], partition: Int32($0.partition), offset: 0) }
        var again: [TopicPartitionOffset] = []
        for p in try consumer.position(asked) {
            guard let t = topicIndex[p.topic] else { continue }
            let source = Source(topic: t, partition: Int(p.partition))
            guard let target = behind[source] else { continue }
            guard p.offset >= target else {
                s.rereading[source]?.seenBelow = true
                continue
            }
            let name = "\(p.topic)[\(p.partition)]"
            let read = s.readUpTo[source].map { "\($0)" } ?? "nothing"
            if let r = s.rereading[source] {
                guard r.inEffect else { continue }
                throw DWMJobError.replayGap("cannot rebuild the state of \(name): the records up to offset \(target) (where the last commit stood) "
                    + "are missing from the broker; read up to \(read), position \(p.offset), also when read from the beginning")
            }
            logger.warning("replay skipped records below its target; reading the partition again from its beginning",
                           metadata: ["partition": "\(name)", "target": "\(target)", "read_up_to": "\(read)", "position": "\(p.offset)"])
            s.rereading[source] = Reread()
            again.append(TopicPartitionOffset(topic: p.topic, partition: p.partition, offset: TopicPartitionOffset.first))
        }
        state = s
        try consumer.seek(again)
    }

    /// Holds partitions too far ahead in event time and releases those the others caught up
    /// with (`ReadAlignment`); the engine does not declare a held partition idle, nor one the
    /// broker has not served yet though it has records.
    private func align(consumer: KafkaConsumer) {
        guard var a = alignment, let engine = state?.engine else { return }
        defer { alignment = a }
        do {
            let changes = try a.align(consumer: consumer, maxTs: { engine.rawProgress(of: Source(topic: 0, partition: Int($0))) })
            if changes.hold.count + changes.release.count > 0 {
                logger.debug("event-time alignment", metadata: ["held": "\(a.held)"])
                metrics.heldPartitions.record(Double(a.held.count))
            }
        } catch {
            logger.warning("hold/release for event-time alignment failed", metadata: ["error": "\(error)"])
        }
        let busy = a.withInput(consumer: consumer)
        a.reportStarved(job: "dwm", logger: logger)
        if !busy.isEmpty { engine.noteInputPending(busy.map { Source(topic: 0, partition: Int($0)) }) }
    }

    /// Not idle while the state is replayed: rows and finals can only be published once the
    /// replay reached where the last commit stood, so `--until-idle` must not end the run before
    /// (a read_committed fetch can stall for a while behind another producer's open transaction).
    /// Nor while alignment holds a partition back: its input is not done.
    var holdsInput: Bool { (state?.engine.isRestoring ?? false) || (alignment?.hasHeld ?? false) }

    /// On the early-revision tick when something changed, whenever a window can become final
    /// (also when input has stopped: finals must not wait for the next event), and at the end.
    /// DWM finals still owed go out as soon as the input is drained (the last poll was not full):
    /// otherwise, one poll between two of a minute's finals transactions, the input would fall
    /// behind while they run and the early rows the spreading is for would wait in the consumer.
    func wantsTransaction(_ tick: Tick) -> Bool {
        guard let s = state, !s.engine.isRestoring else { return false }
        if tick.finishing || (s.dirty && earlyDue(s, tick)) { return true }
        if s.dirty && drained(s, tick) { return true }
        switch s.engine.finalsDue(nowMs: Self.wallMs()) {
        case .closing: return true
        case .owed: return !tick.backlogged || tick.now - s.lastCommit >= .milliseconds(options.earlyIntervalMs)
        case .none: return false
        }
    }

    private func earlyDue(_ s: EngineState, _ tick: Tick) -> Bool {
        tick.now - s.lastEarly >= .milliseconds(options.earlyIntervalMs)
    }

    /// A backlog read to its end: nothing read for a quarter of a second (a catch-up's polls come
    /// back within milliseconds) while early rows of caught-up minutes are held. They go out then,
    /// not at the next early tick: nothing is coming to change them soon, and a catch-up's last
    /// numbers would otherwise wait up to an early interval. Live minutes are never held, so a live
    /// run's early rows keep the early interval.
    private func drained(_ s: EngineState, _ tick: Tick) -> Bool {
        tick.inputQuiet(for: .milliseconds(Self.drainedAfterMs))
            && s.engine.hasChangesToHold(endingAtOrBefore: heldCutoff(nowMs: Self.wallMs()))
    }
    static let drainedAfterMs: Int64 = 250

    /// Early rows of an open minute ending at or before this are held while catching up: it
    /// ended on the wall clock more than a minute (plus the out-of-orderness) before `nowMs`.
    private func heldCutoff(nowMs: Int64) -> Int64 { nowMs - options.outOfOrdernessMs - 60_000 }

    /// Collects the rows and looks their dimensions up before the transaction opens.
    func beforeTransaction(_ tick: Tick) throws {
        guard let s = state else { return }
        emittedAt = Self.wallMs()
        // Behind on input (catching up, or live input that came in during the last transaction
        // and has not been drained yet), every DWM final owed goes now: spreading them is for the
        // freshness of live early rows, and owed minutes stay in memory.
        var rows = batch
        rows.removeAll()
        if tick.finishing {
            s.engine.flushAll(nowMs: emittedAt, into: &rows)
            earlyOutAt = tick.now
        } else {
            // A minute that ended on the wall clock more than a minute (plus the out-of-orderness)
            // ago is being caught up: its early rows go out once per early interval or when the
            // input is drained, not with every transaction its neighbours' closing brings (every
            // few hundred milliseconds then, and replaced by the finals a moment later). Live
            // minutes are never held.
            let heldUpTo = earlyDue(s, tick) || drained(s, tick) ? Int64.min : heldCutoff(nowMs: emittedAt)
            s.engine.collect(nowMs: emittedAt, earlyRowsOfWindowsEndingAfter: heldUpTo,
                             dwmFinalsBudget: tick.backlogged ? .max : nil, into: &rows)
            earlyOutAt = s.engine.heldEarlyRows ? nil : tick.now
        }
        clock?.lap(laps.collect)
        let t0 = ContinuousClock.now
        try enricher.lookUp(rows)
        timings.lookup = .now - t0
        clock?.lap(laps.lookup)
        emission = rows
    }

    func produce(into producer: KafkaProducer, tick: Tick) throws {
        guard let s = state, let out, let emission else { return }
        let t0 = ContinuousClock.now
        // Zero-copy: the rows' bytes (the enricher's pass) and keys (the batch's ids) stay
        // untouched until they are delivered. A transaction with more rows than one pass holds
        // waits for each pass's delivery before encoding the next over it, so its rows' memory
        // is bounded instead of growing with the transaction (a catch-up's can carry 100+ MB).
        let total = emission.dwmCount + emission.dwsCount
        var next = 0
        while next < total {
            if next > 0 {
                try producer.awaitDelivery()
                stats.rowPassWaits += 1
            }
            let pass = enricher.encode(emission, from: next, emittedAt: emittedAt)
            let dwm = pass.dwmRows, dws = pass.dwsRows
            try producer.produceBatch(to: out.dwm, count: dwm.count) { i in
                (emission.dwmRow(dwm.lowerBound + i).contentId, enricher.dwmValue(dwm.lowerBound + i))
            }
            try producer.produceBatch(to: out.dws, count: dws.count) { i in
                (emission.dwsRow(dws.lowerBound + i).contentId, enricher.dwsValue(dws.lowerBound + i))
            }
            stats.rowsWithoutContent += pass.dwsWithoutContent
            next = pass.rows.upperBound
        }
        clock?.lap(laps.rows)
        for l in s.late { try producer.produce(topic: out.late.name, key: l.key, value: l.value) }
        for seal in pendingSeals { try producer.produce(topic: out.checkpoint.name, key: seal.key, value: seal.value) }
        let points = s.engine.replayPoints().compactMap { source, cp in s.positions[source].map { (source, $0, cp) } }
        let tag = CheckpointTag(writer: s.writer, seq: s.seq, advanced: points.contains { s.checkpointed[$0.0] != $0.1 })
        for (source, pos, cp) in points {
            let r = CheckpointRecord(topic: topicNames[source.topic], partition: Int32(source.partition), position: pos, checkpoint: cp, tag: tag)
            try producer.produce(topic: out.checkpoint.name, key: r.key(group: options.groupId), value: r.value)
        }
        cut = Cut(late: s.late.count, accounting: s.engine.accounting, positions: s.positions)
        timings.produce = .now - t0
    }

    func committed(_ tick: Tick) {
        guard var s = state, let emission, let cut else { return }
        self.cut = nil
        stats.dwmRows += emission.dwmCount
        stats.dwsRows += emission.dwsCount
        stats.lateForwarded += cut.late
        // The job's accounting grows by what each commit covered: work redone after a rebuild
        // (uncommitted when the engine was replaced) is counted once, by the commit that took it.
        stats.accounting = Self.adding(stats.accounting, cut.accounting, minus: engineAtCommit)
        engineAtCommit = cut.accounting
        s.late.removeFirst(cut.late)
        s.lastCommit = .now
        if let at = earlyOutAt {
            s.lastEarly = at
            if cut.quiet { s.dirty = false }
        }
        s.seq += 1
        s.checkpointed = cut.positions
        pendingSeals.removeAll()
        state = s
        self.emission = nil
        metrics.dwmRows.increment(by: emission.dwmCount)
        metrics.dwsRows.increment(by: emission.dwsCount)
        defer { emission.removeAll() }
        metrics.watermark.record(Double(s.engine.watermark))
        reportProgress(s.engine)
        metrics.residentBytes.record(Double(processResidentBytes()))
        let held = s.engine.memoryEstimate()
        metrics.openWindows.record(Double(held.windows))
        stats.peakOpenWindows = max(stats.peakOpenWindows, held.windows)
        metrics.openCells.record(Double(held.cells))
        metrics.stateBytes.record(Double(held.bytes))
        metrics.lookupSeconds.record(duration: timings.lookup)
        metrics.produceSeconds.record(duration: timings.produce)
        logger.debug("transaction committed", metadata: [
            "dwm_rows": "\(emission.dwmCount)", "dws_rows": "\(emission.dwsCount)", "late_total": "\(stats.lateForwarded)",
            "lookup_ms": "\(timings.lookup / .milliseconds(1))", "produce_ms": "\(timings.produce / .milliseconds(1))",
            "watermark": "\(s.engine.watermark)", "rss_mb": "\(processResidentBytes() >> 20)"])
    }

    /// `total + now − then`, field by field.
    static func adding(_ total: Accounting, _ now: Accounting, minus then: Accounting) -> Accounting {
        var a = total
        a.consumed += now.consumed - then.consumed
        a.applied += now.applied - then.applied
        a.corrections += now.corrections - then.corrections
        a.duplicates += now.duplicates - then.duplicates
        a.late += now.late - then.late
        a.lateAfterIdle += now.lateAfterIdle - then.lateAfterIdle
        for (reason, n) in now.filtered { a.filtered[reason, default: 0] += n - (then.filtered[reason] ?? 0) }
        return a
    }

    /// The engine has moved past what the broker discarded: rebuild it from the last checkpoints.
    func aborted() -> Rewind {
        emission?.removeAll()
        emission = nil
        cut = nil
        return .restore
    }

    /// Per ods.raw partition: the progress holding the watermark, idleness, and the skew between
    /// the slowest and fastest active partition (metrics at every commit, a log line every 10 s),
    /// so an operator sees which partition holds the minutes open.
    private func reportProgress(_ engine: WindowEngine) {
        let up = engine.upstreamProgress(nowMs: Self.wallMs())
        guard !up.isEmpty else { return }
        let m = MetricsRegistry.shared
        for e in up {
            let labels = ["partition": "\(e.partition)"]
            m.gauge("strata_dwm_source_max_ts_ms", help: "Highest event time announced per ods.raw partition (lowest over the job's inputs)",
                    labels: labels).record(Double(e.maxTs == .min ? 0 : e.maxTs))
            m.gauge("strata_dwm_source_idle", help: "1 when the ods.raw partition is idle (declared by the split, or with --read-raw by the dwm job's own clock)", labels: labels).record(e.idle ? 1 : 0)
        }
        let active = up.filter { !$0.idle && $0.maxTs != .min }
        let skew = (active.map(\.maxTs).max() ?? 0) - (active.map(\.maxTs).min() ?? 0)
        m.gauge("strata_dwm_source_skew_ms", help: "Event-time gap between the fastest and slowest active ods.raw partition").record(Double(skew))
        let now = ContinuousClock.now
        guard now - lastProgressLog >= .seconds(10) else { return }
        lastProgressLog = now
        let slowest = active.min { $0.maxTs < $1.maxTs }
        logger.info("event-time progress", metadata: [
            "watermark": "\(engine.watermark)", "skew_ms": "\(skew)",
            "slowest_partition": "\(slowest.map { "\($0.partition)" } ?? "-")",
            "partitions": "\(up.map { "\($0.partition)=\($0.maxTs)\($0.idle ? "(idle)" : "")" }.joined(separator: " "))"])
    }

    static func wallMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// The dwm stage's fixed series, looked up once.
struct DWMMetrics {
    let dwmRows, dwsRows: CoreMetrics.Counter
    let watermark, residentBytes: CoreMetrics.Recorder
    /// The window state the engine holds (the memory budget's unit): retained windows, their cells
    /// and the engine's own estimate of its buffers' bytes.
    let openWindows, openCells, stateBytes: CoreMetrics.Recorder
    /// ods.raw partitions held back by event-time alignment (`--read-raw`).
    let heldPartitions: CoreMetrics.Recorder
    /// Where a transaction's time goes besides the loop's commit: dimension lookups, encoding + producing.
    let lookupSeconds, produceSeconds: CoreMetrics.Timer

    init(registry: MetricsRegistry = .shared) {
        dwmRows = registry.counter("strata_dwm_rows_total", help: "DWM rows published", labels: ["table": "dwm"])
        dwsRows = registry.counter("strata_dwm_rows_total", help: "DWM rows published", labels: ["table": "dws"])
        watermark = registry.gauge("strata_dwm_watermark_ms", help: "The dwm job's event-time watermark")
        residentBytes = registry.gauge("strata_process_resident_bytes", help: "Resident set size of the process")
        openWindows = registry.gauge("strata_dwm_open_windows",
                                     help: "Minute windows the dwm engine retains (open, or final and kept for the allowed lateness)")
        openCells = registry.gauge("strata_dwm_open_cells", help: "(minute, content, user) cells held by the retained windows")
        stateBytes = registry.gauge("strata_dwm_state_bytes",
                                    help: "The dwm engine's estimate of its window state: capacities of the windows' tables and arenas, and its interning tables")
        heldPartitions = registry.gauge("strata_dwm_held_partitions", help: "ods.raw partitions held back by event-time alignment")
        let help = "Time a transaction spends per phase of the dwm stage"
        lookupSeconds = registry.timer("strata_dwm_transaction_phase_seconds", help: help, labels: ["phase": "lookup"])
        produceSeconds = registry.timer("strata_dwm_transaction_phase_seconds", help: help, labels: ["phase": "produce"])
    }
}

/// Why the dwm job stopped on its own.
public enum DWMJobError: Error, Sendable, CustomStringConvertible {
    /// A replay could not read the records its state needs (see `DWMJob.checkReplayGaps`).
    case replayGap(String)
    /// `--read-raw`, but an ods.raw record is not keyed by its content id.
    case notKeyedByContent(String)

    public var description: String {
        switch self {
        case .replayGap(let detail), .notKeyedByContent(let detail): detail
        }
    }
}
