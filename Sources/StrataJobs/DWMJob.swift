import CRdKafka
import Foundation
import Logging
import StrataCore
import StrataDWM
import StrataDims
import StrataKafka

/// The dwm job: micro-queues → minute windows (content × user) → enriched DWM and DWS upsert rows.
///
/// Exactly-once (docs/time-semantics.md, docs/exactly-once.md): every few seconds (the early-revision
/// interval) or when a window becomes final, one transaction publishes everything the engine
/// collected, the late records, each source's replay checkpoint and the consumer positions. After
/// a crash or a rebalance the engine is rebuilt: each source is re-read from its checkpoint's
/// replay offset, records below the committed position only rebuild state (their rows were
/// published), and `rev` is a function of state, so a replay reproduces the revisions it had published.
public final class DWMJob {
    public struct Options: Sendable {
        public var brokers: String
        public var kafka: [String: String] = [:]
        public var groupId = "strata-dwm"
        public var instanceId = "0"
        public var topicPrefix = ""
        public var outOfOrdernessMs: Int64 = 5_000
        public var allowedLatenessMs: Int64 = 120_000
        public var earlyIntervalMs: Int64 = 5_000
        public var idleSourceTimeoutMs: Int64 = 30_000
        public var untilIdle: Duration?
        public var batchSize = 10_000
        public init(brokers: String) { self.brokers = brokers }
    }

    public struct Stats: Sendable {
        public var accounting = Accounting()
        public var dwmRows = 0, dwsRows = 0, lateForwarded = 0, transactions = 0, rebuilds = 0
        public var rowsWithoutContent = 0
    }

    private let options: Options
    private let topology: Topology
    private let cache: DimensionCache
    private let logger: Logger
    public private(set) var stats = Stats()
    /// The latest early/final rows' emission times, for freshness measurements.
    public private(set) var lastCommitAt: ContinuousClock.Instant?
    public private(set) var firstRecordAt: ContinuousClock.Instant?
    public private(set) var lastRecordAt: ContinuousClock.Instant?
    private var lastProgressLog = ContinuousClock.now - .seconds(3600)

    private var topicNames: [String] { topology.actions.map { options.topicPrefix + Topology.microQueue(for: $0) } }
    private var checkpointTopic: String { options.topicPrefix + Topology.dwmCheckpoint }

    public init(options: Options, topology: Topology, cache: DimensionCache, logger: Logger = Logger(label: "strata.dwm")) {
        self.options = options
        self.topology = topology
        self.cache = cache
        self.logger = logger
    }

    public func run(shouldStop: () -> Bool = { false }, onCommit: (Stats) -> Void = { _ in }) throws {
        var base = KafkaConfig.producer(bootstrapServers: options.brokers, clientId: "strata-dwm-\(options.instanceId)")
        // A final emission can be a million rows: bound what librdkafka buffers (produce then waits
        // for the broker) instead of holding the whole minute in memory. -X overrides it.
        base["queue.buffering.max.kbytes"] = "131072"
        // JSON rows compress 3-5×: with lz4 the broker takes a minute's final rows in less than
        // half the time (docs/benchmarks.md). Consumers decompress transparently.
        base["compression.type"] = "lz4"
        var pcfg = base.merging(options.kafka)
        // The prefix keeps isolated runs on one broker from fencing each other.
        pcfg.transactionalId = "\(options.topicPrefix)strata-dwm-\(options.instanceId)"
        var ccfg = KafkaConfig.consumer(bootstrapServers: options.brokers, groupId: options.groupId,
                                        clientId: "strata-dwm-\(options.instanceId)").merging(options.kafka)
        // Range assignment hands one member the same partition numbers of every micro-queue:
        // all events of a content (co-partitioned by content_id) reach the same engine.
        ccfg["partition.assignment.strategy"] = "range"
        let producer = try KafkaProducer(config: pcfg, logger: logger)
        let tracker = AssignmentTracker()
        let consumer = try KafkaConsumer(config: ccfg, logger: logger) { tracker.apply($0) }
        try producer.initTransactions()
        try consumer.subscribe(topicNames)
        defer { consumer.close() }

        let topicIndex = Dictionary(uniqueKeysWithValues: topicNames.enumerated().map { ($1, $0) })
        let out = Outputs(dwm: producer.topic(options.topicPrefix + Topology.dwm), dws: producer.topic(options.topicPrefix + Topology.dws),
                          late: producer.topic(options.topicPrefix + Topology.late), checkpoint: producer.topic(checkpointTopic))
        var enricher = RowEnricher(cache: cache, actions: topology.actions)
        var state: EngineState?
        var lastInput = ContinuousClock.now
        logger.info("dwm started", metadata: ["group": "\(options.groupId)", "instance": "\(options.instanceId)"])

        while !shouldStop() {
            let batch = try consumer.poll(maxMessages: options.batchSize, timeoutMs: 100)
            if tracker.takeChange() != nil || state == nil && tracker.hasPartitions {
                // New assignment: rebuild from checkpoints; this batch is re-read after the seeks.
                state = try rebuild(consumer: consumer)
                lastInput = .now
                continue
            }
            guard var s = state else {
                if let idle = options.untilIdle, tracker.hasJoined, ContinuousClock.now - lastInput >= idle { break }
                continue
            }
            var sawRecords = false
            for m in batch {
                if let e = m.error {
                    if e.code != RD_KAFKA_RESP_ERR__PARTITION_EOF.rawValue { logger.warning("consumer event", metadata: ["error": "\(e)"]) }
                    continue
                }
                guard let t = topicIndex[m.topic] else { continue }
                sawRecords = true
                let source = Source(topic: t, partition: Int(m.partition))
                s.positions[source] = m.offset + 1
                // The split's watermark markers (null key) carry ods.raw progress, not events.
                if m.key == nil, m.headerView(SourceProgress.markerHeader) != nil, let marker = SourceProgress.Marker(m.value) {
                    s.engine.applyMarker(marker, source: source, offset: m.offset)
                    continue
                }
                let stamp = m.headerView(SourceProgress.stampHeader).flatMap { SourceProgress.Stamp($0) }
                let outcome = s.engine.apply(m.value, source: source, offset: m.offset, stamp: stamp)
                if outcome == .late { s.late.append((m.key.map { Array($0) }, Array(m.value))) }
            }
            if sawRecords {
                lastInput = .now
                if firstRecordAt == nil { firstRecordAt = lastInput }
                lastRecordAt = lastInput
                s.dirty = true
            }
            if s.engine.isRestoring, s.restoreTargets.allSatisfy({ (s.positions[$0.key] ?? 0) >= $0.value }) {
                s.engine.endRestore()
                logger.info("state restored", metadata: ["replayed": "\(s.engine.accounting)"])
                s.restoreTargets = [:]
            }
            let now = ContinuousClock.now
            let nowMs = Self.wallMs()
            let idle = options.untilIdle.map { tracker.hasJoined && now - lastInput >= $0 } ?? false
            // Commit on the early-revision tick when something changed, and whenever a window can
            // become final (also when input has stopped: finals must not wait for the next event).
            if !s.engine.isRestoring && (idle || (s.dirty && now - s.lastCommit >= .milliseconds(options.earlyIntervalMs))
                                         || s.engine.hasWindowsToFinalize(nowMs: nowMs)) {
                let emission = idle ? s.engine.flushAll(nowMs: nowMs) : s.engine.collect(nowMs: nowMs)
                do {
                    try commit(emission, state: &s, producer: producer, consumer: consumer, out: out, enricher: &enricher, nowMs: nowMs)
                } catch let e as KafkaError where e.requiresAbort && !e.isFatal {
                    logger.warning("transaction failed; aborting and rebuilding from the last checkpoint", metadata: ["error": "\(e)"])
                    try producer.abortTransaction()
                    state = try rebuild(consumer: consumer)
                    continue
                }
                onCommit(stats)
            }
            state = s
            if idle { break }
        }
        if let s = state { stats.accounting = s.engine.accounting }
        logger.info("dwm finished", metadata: ["accounting": "\(stats.accounting)", "dwm_rows": "\(stats.dwmRows)",
                                              "dws_rows": "\(stats.dwsRows)", "late": "\(stats.lateForwarded)"])
    }

    struct Outputs { let dwm, dws, late, checkpoint: KafkaTopic }

    /// One engine over the current assignment and where it stands.
    struct EngineState {
        var engine: WindowEngine
        var positions: [Source: Int64] = [:]
        var restoreTargets: [Source: Int64] = [:]
        var late: [(key: [UInt8]?, value: [UInt8])] = []
        var lastCommit = ContinuousClock.now
        var dirty = false
    }

    private func rebuild(consumer: KafkaConsumer) throws -> EngineState {
        stats.rebuilds += 1
        let assigned = try consumer.assignment()
        let topicIndex = Dictionary(uniqueKeysWithValues: topicNames.enumerated().map { ($1, $0) })
        let gate = cache
        let engine = WindowEngine(config: WindowConfig(actions: topology.actions, outOfOrdernessMs: options.outOfOrdernessMs,
                                                       allowedLatenessMs: options.allowedLatenessMs,
                                                       idleTimeoutMs: options.idleSourceTimeoutMs)) { gate.confirmContent($0) }
        var state = EngineState(engine: engine)
        let saved = try CheckpointRecord.load(topic: checkpointTopic, group: options.groupId, instance: options.instanceId,
                                              brokers: options.brokers, kafka: options.kafka)
        // Every assigned partition is positioned explicitly: at its checkpoint's replay offset, else at
        // the group's committed offset, else at the beginning (records polled before this are dropped).
        let committed = Dictionary(try consumer.committed(assigned).map { ("\($0.topic)|\($0.partition)", $0.offset) },
                                   uniquingKeysWith: { a, _ in a })
        var checkpoints: [Source: SourceCheckpoint] = [:]
        var seeks: [TopicPartitionOffset] = []
        for tp in assigned {
            guard let t = topicIndex[tp.topic] else { continue }
            let (chosen, exact) = CheckpointRecord.select(saved["\(tp.topic)|\(tp.partition)"] ?? [], committed: committed["\(tp.topic)|\(tp.partition)"])
            if !exact {
                logger.warning("no checkpoint at the committed offset; restoring from an earlier one",
                               metadata: ["partition": "\(tp.topic)[\(tp.partition)]"])
            }
            guard let r = chosen else {
                let c = committed["\(tp.topic)|\(tp.partition)"] ?? TopicPartitionOffset.invalid
                seeks.append(TopicPartitionOffset(topic: tp.topic, partition: tp.partition, offset: c >= 0 ? c : TopicPartitionOffset.beginning))
                continue
            }
            let source = Source(topic: t, partition: Int(tp.partition))
            checkpoints[source] = r.checkpoint
            state.positions[source] = r.position
            if r.checkpoint.replayOffset < r.position { state.restoreTargets[source] = r.position }
            seeks.append(TopicPartitionOffset(topic: tp.topic, partition: tp.partition, offset: r.checkpoint.replayOffset))
        }
        try consumer.seek(seeks)
        engine.expectSources(assigned.compactMap { tp in topicIndex[tp.topic].map { Source(topic: $0, partition: Int(tp.partition)) } },
                             nowMs: Self.wallMs())
        if !checkpoints.isEmpty {
            engine.beginRestore(checkpoints: checkpoints, committedOffsets: state.positions)
            if state.restoreTargets.isEmpty { engine.endRestore() }
        }
        logger.info("engine rebuilt", metadata: ["partitions": "\(assigned.count)", "checkpoints": "\(checkpoints.count)",
                                                 "replaying_sources": "\(state.restoreTargets.count)"])
        return state
    }

    private func commit(_ emission: Emission, state s: inout EngineState, producer: KafkaProducer, consumer: KafkaConsumer,
                        out: Outputs, enricher: inout RowEnricher, nowMs: Int64) throws {
        let t0 = ContinuousClock.now
        try enricher.lookUp(emission)
        let t1 = ContinuousClock.now
        try producer.beginTransaction()
        try enricher.encode(emission, emittedAt: nowMs,
                            dwm: { r, value in try produce(producer, out.dwm, key: r.contentId, value: value) },
                            dws: { r, value, hasContent in
                                try produce(producer, out.dws, key: r.contentId, value: value)
                                if !hasContent { stats.rowsWithoutContent += 1 }
                            })
        for l in s.late { try producer.produce(topic: out.late.name, key: l.key, value: l.value) }
        let names = topicNames
        for (source, cp) in s.engine.replayPoints() {
            guard let pos = s.positions[source] else { continue }
            let r = CheckpointRecord(topic: names[source.topic], partition: Int32(source.partition), position: pos, checkpoint: cp)
            try producer.produce(topic: out.checkpoint.name, key: r.key(group: options.groupId), value: r.value)
        }
        let t2 = ContinuousClock.now
        try producer.sendOffsets(s.positions.map { TopicPartitionOffset(topic: names[$0.key.topic], partition: Int32($0.key.partition), offset: $0.value) },
                                 consumer: consumer)
        try producer.commitTransaction()
        let t3 = ContinuousClock.now

        stats.transactions += 1
        stats.dwmRows += emission.dwm.count
        stats.dwsRows += emission.dws.count
        stats.lateForwarded += s.late.count
        stats.accounting = s.engine.accounting
        s.late.removeAll()
        s.lastCommit = .now
        s.dirty = false
        lastCommitAt = s.lastCommit
        let m = MetricsRegistry.shared
        m.counter("strata_dwm_rows_total", help: "DWM rows published", labels: ["table": "dwm"]).increment(by: emission.dwm.count)
        m.counter("strata_dwm_rows_total", help: "DWM rows published", labels: ["table": "dws"]).increment(by: emission.dws.count)
        m.gauge("strata_dwm_watermark_ms", help: "The dwm job's event-time watermark").set(Double(s.engine.watermark))
        reportProgress(s.engine)
        m.gauge("strata_process_resident_bytes", help: "Resident set size of the process").set(Double(processResidentBytes()))
        // Where a transaction's time goes: dimension lookups, encoding + producing, the commit (broker acks).
        for (phase, d) in [("lookup", t1 - t0), ("produce", t2 - t1), ("commit", t3 - t2)] {
            m.gauge("strata_dwm_transaction_phase_seconds", help: "Duration of the last transaction's phases",
                    labels: ["phase": phase]).set(Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
        }
        logger.debug("transaction committed", metadata: [
            "dwm_rows": "\(emission.dwm.count)", "dws_rows": "\(emission.dws.count)", "late_total": "\(stats.lateForwarded)",
            "lookup_ms": "\((t1 - t0) / .milliseconds(1))", "produce_ms": "\((t2 - t1) / .milliseconds(1))",
            "commit_ms": "\((t3 - t2) / .milliseconds(1))", "watermark": "\(s.engine.watermark)",
            "rss_mb": "\(processResidentBytes() >> 20)"])
    }

    /// Per ods.raw partition: the progress holding the watermark, idleness, and the skew between
    /// the slowest and fastest active partition (metrics at every commit, a log line every 10 s),
    /// so an operator sees which partition holds the minutes open.
    private func reportProgress(_ engine: WindowEngine) {
        let up = engine.upstreamProgress()
        guard !up.isEmpty else { return }
        let m = MetricsRegistry.shared
        for e in up {
            let labels = ["partition": "\(e.partition)"]
            m.gauge("strata_dwm_source_max_ts_ms", help: "Highest event time announced per ods.raw partition (lowest over the job's inputs)",
                    labels: labels).set(Double(e.maxTs == .min ? 0 : e.maxTs))
            m.gauge("strata_dwm_source_idle", help: "1 when the split declared the ods.raw partition idle", labels: labels).set(e.idle ? 1 : 0)
        }
        let active = up.filter { !$0.idle && $0.maxTs != .min }
        let skew = (active.map(\.maxTs).max() ?? 0) - (active.map(\.maxTs).min() ?? 0)
        m.gauge("strata_dwm_source_skew_ms", help: "Event-time gap between the fastest and slowest active ods.raw partition").set(Double(skew))
        let now = ContinuousClock.now
        guard now - lastProgressLog >= .seconds(10) else { return }
        lastProgressLog = now
        let slowest = active.min { $0.maxTs < $1.maxTs }
        logger.info("event-time progress", metadata: [
            "watermark": "\(engine.watermark)", "skew_ms": "\(skew)",
            "slowest_partition": "\(slowest.map { "\($0.partition)" } ?? "-")",
            "partitions": "\(up.map { "\($0.partition)=\($0.maxTs)\($0.idle ? "(idle)" : "")" }.joined(separator: " "))"])
    }

    private func produce(_ producer: KafkaProducer, _ topic: KafkaTopic, key: String, value: UnsafeRawBufferPointer) throws {
        var k = key
        try k.withUTF8 { kb in try producer.produce(to: topic, key: UnsafeRawBufferPointer(kb), value: value, copy: true) }
    }

    static func wallMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
