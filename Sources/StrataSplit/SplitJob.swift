import CRdKafka
import Foundation
import Logging
import StrataCore
import StrataKafka

/// The ODS split job: ods.raw → ods.<action> (key = content_id, original bytes) | ods.dlq.
/// Exactly-once: each polled batch is produced inside one Kafka transaction together with the
/// consumer offsets that cover it, so a crash at any point either publishes the batch and its
/// offsets or neither. Consumers of the outputs read with `read_committed`.
public final class SplitJob {
    public struct Options: Sendable {
        public var brokers: String
        public var kafka: [String: String] = [:]          // pass-through librdkafka properties
        public var groupId = "strata-split"
        /// Stable per instance: a restarted instance fences its predecessor's open transaction.
        public var instanceId = "0"
        /// Most records per transaction. A poll returns what has arrived within `pollTimeoutMs`, so
        /// this only matters when catching up: there 20 000 per commit split 1.1–1.7× faster than
        /// 5 000 through the local broker (docs/benchmarks.md).
        public var batchSize = 20_000
        public var pollTimeoutMs: Int32 = 100
        /// Exit after this long without new input (bounded runs, tests, demos).
        public var untilIdle: Duration?
        public var maxEventBytes = 64 * 1024
        /// Prepended to every topic name (isolated runs on a shared broker: tests, benchmarks).
        public var topicPrefix = ""
        /// Benchmark baseline: forward every record unparsed to this topic, through the same
        /// transactional loop, so a comparison isolates the cost of parsing and routing.
        public var copyOnlyTo: String?
        /// An owned ods.raw partition without records for this long is announced idle: it stops
        /// holding the dwm job's watermark back until it delivers again (docs/time-semantics.md).
        public var idleSourceTimeout: Duration = .seconds(30)
        /// At most one round of watermark markers per this interval while records keep coming
        /// (markers also go out whenever the input pauses or a partition turns idle).
        public var markerInterval: Duration = .seconds(1)
        /// Event-time alignment: an owned ods.raw partition this far (ms) ahead of the slowest one
        /// that still has input is paused until it catches up, which bounds the windows the dwm
        /// job holds open while catching up. nil: read every partition as fast as it comes.
        public var alignMs: Int64? = 60_000
        public init(brokers: String) { self.brokers = brokers }
    }

    private let options: Options
    private let topology: Topology
    private let router: SplitRouter
    private let logger: Logger
    public private(set) var stats = SplitStats()
    /// Transactions aborted and redone after a retriable error.
    public private(set) var retriedBatches = 0
    /// When the first record arrived and the last transaction committed (throughput measurement).
    public private(set) var firstRecordAt: ContinuousClock.Instant?
    public private(set) var lastCommitAt: ContinuousClock.Instant?
    /// Watermark marker records written (one per micro-queue partition per round).
    public private(set) var markersWritten = 0
    private var progress = RawProgress(rawPartitionCount: 0)
    /// After an assignment: the checkpoints read and the offset each owned partition's progress was
    /// chosen for. The first record of a partition shows where reading really starts; if that is
    /// not the offset asked for (the group's committed offsets can be unreadable while a dead
    /// member's transaction is still open), the progress is chosen again for it before stamping.
    private var checkpoints: [SplitCheckpoint] = []
    private var progressFor: [Int32: Int64] = [:]
    private var lastMarkerAt = ContinuousClock.now

    public init(options: Options, topology: Topology, logger: Logger = Logger(label: "strata.split")) throws {
        self.options = options
        self.topology = topology
        self.router = try SplitRouter(topology: topology, maxEventBytes: options.maxEventBytes)
        self.logger = logger
    }

    /// Runs until `shouldStop()` or the idle timeout; commits everything before returning.
    public func run(shouldStop: () -> Bool = { false }, onProgress: (SplitStats) -> Void = { _ in }) throws {
        var pcfg = KafkaConfig.producer(bootstrapServers: options.brokers, clientId: "strata-split-\(options.instanceId)")
            .merging(options.kafka)
        // The prefix keeps isolated runs on one broker from fencing each other.
        pcfg.transactionalId = "\(options.topicPrefix)strata-split-\(options.instanceId)"
        var ccfg = KafkaConfig.consumer(bootstrapServers: options.brokers, groupId: options.groupId,
                                        clientId: "strata-split-\(options.instanceId)")
        // End-of-partition events tell alignment which partitions have nothing more to deliver.
        ccfg["enable.partition.eof"] = "true"
        ccfg = ccfg.merging(options.kafka)
        let producer = try KafkaProducer(config: pcfg, logger: logger)
        // The idle clock runs only while partitions are assigned: joining a group takes seconds.
        let assignment = AssignmentTracker()
        let consumer = try KafkaConsumer(config: ccfg, logger: logger) { assignment.apply($0) }
        try producer.initTransactions()
        try consumer.subscribe([options.topicPrefix + Topology.raw])
        defer { consumer.close() }

        let queues = router.actions.map { producer.topic(options.topicPrefix + Topology.microQueue(for: $0)) }
        let queuePartitions = try queues.map { try producer.partitionCount(topic: $0.name) }
        let dlq = producer.topic(options.topicPrefix + Topology.deadLetter)
        let copyTarget = options.copyOnlyTo.map { producer.topic($0) }
        let out = Outputs(queues: queues, queuePartitions: queuePartitions, dlq: dlq, copyTarget: copyTarget,
                          checkpoint: producer.topic(options.topicPrefix + Topology.splitCheckpoint))
        progress = RawProgress(rawPartitionCount: try producer.partitionCount(topic: options.topicPrefix + Topology.raw))
        logger.info("split started", metadata: ["group": "\(options.groupId)", "instance": "\(options.instanceId)",
                                                "actions": "\(router.actions.joined(separator: ","))"])

        var lastInput = ContinuousClock.now
        while !shouldStop() {
            let batch = try consumer.poll(maxMessages: options.batchSize, timeoutMs: options.pollTimeoutMs)
            if let changed = assignment.takeChange() {
                lastInput = changed
                try loadProgress(consumer: consumer)
            }
            var records: [KafkaMessage] = []
            records.reserveCapacity(batch.count)
            for m in batch {
                if let e = m.error {
                    if e.code == RD_KAFKA_RESP_ERR__PARTITION_EOF.rawValue { progress.noteEnd(partition: m.partition) } else {
                        logger.warning("consumer event", metadata: ["error": "\(e)"])
                    }
                    continue
                }
                records.append(m)
            }
            defer { if let ahead = options.alignMs, copyTarget == nil { align(consumer: consumer, aheadMs: ahead) } }
            let idleChanged = progress.updateIdle(now: .now, timeout: options.idleSourceTimeout)
            if records.isEmpty {
                // Input paused (caught up) or a partition turned idle: tell the readers where we stand.
                if progress.changedSinceMarker && copyTarget == nil { try sendMarkers(producer: producer, out: out) }
                // A partition paused by alignment still has input: not idle.
                if progress.hasPaused { lastInput = .now }
                if let idle = options.untilIdle, assignment.hasJoined, ContinuousClock.now - lastInput >= idle { break }
                continue
            }
            lastInput = .now
            if firstRecordAt == nil { firstRecordAt = lastInput }
            let committed = try processTransactionally(records, producer: producer, consumer: consumer, out: out,
                                                       forceMarkers: idleChanged)
            // `batch` (and so every zero-copy pointer handed to librdkafka) stays alive until here.
            withExtendedLifetime(batch) {}
            guard let batchStats = committed else { continue }
            lastCommitAt = .now
            batchStats.export()
            stats.add(batchStats)
            onProgress(stats)
        }
        logger.info("split finished", metadata: ["stats": "\(stats.summary)", "retried_batches": "\(retriedBatches)",
                                                 "markers": "\(markersWritten)"])
    }

    struct Outputs {
        let queues: [KafkaTopic]
        let queuePartitions: [Int]
        let dlq: KafkaTopic
        let copyTarget: KafkaTopic?
        let checkpoint: KafkaTopic
    }

    /// After a rebalance: the owned partitions' progress at their committed offsets.
    private func loadProgress(consumer: KafkaConsumer) throws {
        let owned = try consumer.assignment()
        guard !owned.isEmpty else { progress.reset(to: [:], now: .now); return }
        // Alignment starts afresh: nothing stays paused across an assignment.
        try consumer.resume(owned)
        let committed = try consumer.committed(owned)
        let records = try TopicSnapshot.read(topic: options.topicPrefix + Topology.splitCheckpoint, brokers: options.brokers,
                                             kafka: options.kafka, markerKey: "\(options.groupId)|marker|\(options.instanceId)")
        let all = records.compactMap { SplitCheckpoint(key: $0.key, value: $0.value, group: options.groupId) }
        let at = Dictionary(committed.map { ($0.partition, $0.offset) }, uniquingKeysWith: { a, _ in a })
        let (maxTs, inexact) = SplitCheckpoint.select(all, committed: at)
        checkpoints = all
        progressFor = at
        if !inexact.isEmpty {
            logger.warning("no checkpoint at the committed offset; stamping from the nearest earlier one",
                           metadata: ["partitions": "\(inexact.sorted())"])
        }
        progress.reset(to: maxTs, now: .now)
        let shown = maxTs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value == .min ? "none" : "\($0.value)")" }
        logger.info("event-time progress loaded", metadata: ["partitions": "\(shown.joined(separator: " "))"])
    }

    /// Pauses owned partitions too far ahead in event time and resumes those the others caught up
    /// with (pausing drops what librdkafka prefetched; reading resumes at the next offset).
    private func align(consumer: KafkaConsumer, aheadMs: Int64) {
        let (pause, resume) = progress.align(aheadMs: aheadMs)
        let raw = options.topicPrefix + Topology.raw
        do {
            if !pause.isEmpty { try consumer.pause(pause.map { TopicPartitionOffset(topic: raw, partition: $0, offset: 0) }) }
            if !resume.isEmpty { try consumer.resume(resume.map { TopicPartitionOffset(topic: raw, partition: $0, offset: 0) }) }
        } catch {
            logger.warning("pause/resume for event-time alignment failed", metadata: ["error": "\(error)"])
        }
        if !pause.isEmpty || !resume.isEmpty {
            logger.debug("event-time alignment", metadata: ["paused": "\(progress.pausedPartitions)"])
            MetricsRegistry.shared.gauge("strata_split_paused_partitions", help: "ods.raw partitions paused by event-time alignment")
                .set(Double(progress.pausedPartitions.count))
        }
    }

    /// Chooses a partition's progress again for the offset reading really started at.
    private func verifyProgress(_ progress: inout RawProgress, partition: Int32, firstOffset: Int64, asked: Int64,
                                now: ContinuousClock.Instant) {
        let (maxTs, inexact) = SplitCheckpoint.select(checkpoints, committed: [partition: firstOffset])
        guard (maxTs[partition] ?? .min) != progress.maxTs(of: partition) else { return }
        progress.restore(partition: partition, maxTs: maxTs[partition] ?? .min, now: now)
        logger.info("event-time progress chosen again for where reading started",
                    metadata: ["partition": "\(partition)", "asked_offset": "\(asked)", "first_offset": "\(firstOffset)",
                               "max_ts": "\(maxTs[partition] ?? .min)", "exact": "\(inexact.isEmpty)"])
    }

    /// One transaction holding only watermark markers (the input paused or a partition turned idle).
    private func sendMarkers(producer: KafkaProducer, out: Outputs) throws {
        guard !progress.isEmpty else { return }
        do {
            try producer.beginTransaction()
            try produceMarkers(producer: producer, out: out)
            try producer.commitTransaction()
            markersCommitted(out)
        } catch let e as KafkaError where e.requiresAbort && !e.isFatal {
            logger.warning("marker transaction failed; aborting (markers go out with the next one)", metadata: ["error": "\(e)"])
            try producer.abortTransaction()
        }
    }

    /// A marker to every partition of every micro-queue: each carries the progress of every owned
    /// raw partition, so a micro-queue partition that gets no data from one still hears of it.
    private func produceMarkers(producer: KafkaProducer, out: Outputs) throws {
        let value = progress.marker.encoded
        try value.withUnsafeBytes { v in
            for (q, topic) in out.queues.enumerated() {
                for p in 0..<out.queuePartitions[q] {
                    try producer.produce(to: topic, partition: Int32(p), key: nil, value: v,
                                         header: (SourceProgress.markerHeader, UnsafeRawBufferPointer(start: nil, count: 0)), copy: true)
                }
            }
        }
    }

    private func markersCommitted(_ out: Outputs) {
        progress.markerSent()
        markersWritten += out.queuePartitions.reduce(0, +)
        lastMarkerAt = .now
        for (p, s) in progress.partitions {
            MetricsRegistry.shared.gauge("strata_split_source_max_ts_ms", help: "Highest event time read per ods.raw partition",
                                         labels: ["partition": "\(p)"]).set(Double(s.maxTs == .min ? 0 : s.maxTs))
        }
    }

    /// Produces one batch, its checkpoints and offsets in one transaction. On an abortable error
    /// the transaction is aborted, the progress restored and the consumer rewound to the batch
    /// start, so the next poll (which also serves any pending rebalance) reads the same records
    /// again; returns nil then.
    private func processTransactionally(_ records: [KafkaMessage], producer: KafkaProducer, consumer: KafkaConsumer,
                                        out: Outputs, forceMarkers: Bool) throws -> SplitStats? {
        let before = (progress, progressFor)
        do {
            try producer.beginTransaction()
            let s: SplitStats
            var sentMarkers = false
            if let target = out.copyTarget {
                s = try copy(records, producer: producer, to: target)
            } else {
                s = try produce(records, producer: producer, out: out)
                if forceMarkers || progress.changedSinceMarker && ContinuousClock.now - lastMarkerAt >= options.markerInterval {
                    try produceMarkers(producer: producer, out: out)
                    sentMarkers = true
                }
            }
            let next = nextOffsets(records)
            if out.copyTarget == nil {
                for tp in next {
                    let c = SplitCheckpoint(partition: tp.partition, nextOffset: tp.offset, maxTs: progress.maxTs(of: tp.partition) ?? .min)
                    try producer.produce(topic: out.checkpoint.name, key: c.key(group: options.groupId), value: c.value)
                }
            }
            try producer.sendOffsets(next, consumer: consumer)
            try producer.commitTransaction()
            if sentMarkers { markersCommitted(out) }
            return s
        } catch let e as KafkaError where e.requiresAbort && !e.isFatal {
            logger.warning("transaction failed; aborting and re-reading the batch", metadata: ["error": "\(e)"])
            retriedBatches += 1
            (progress, progressFor) = before
            try producer.abortTransaction()
            try consumer.seek(firstOffsets(records))
            return nil
        }
    }

    private func produce(_ records: [KafkaMessage], producer: KafkaProducer, out: Outputs) throws -> SplitStats {
        var s = SplitStats()
        var routed = [Int](repeating: 0, count: out.queues.count)
        let now = ContinuousClock.now
        // The stamp's 12 bytes: librdkafka copies headers, so one buffer serves every record.
        let stampBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SourceProgress.Stamp.size, alignment: 8)
        defer { stampBuffer.deallocate() }
        let stampView = UnsafeRawBufferPointer(stampBuffer)
        // A local copy: no exclusivity check on the job's stored property per record.
        var progress = self.progress
        defer { self.progress = progress }
        for m in records {
            let value = m.value
            s.consumed += 1
            if let asked = progressFor[m.partition] {
                if asked != m.offset { verifyProgress(&progress, partition: m.partition, firstOffset: m.offset, asked: asked, now: now) }
                progressFor[m.partition] = nil
            }
            var scanned: ScannedEvent?
            let outcome = router.route(value, scanned: &scanned)
            let maxTs = progress.note(partition: m.partition, ts: scanned?.ts, now: now)
            SourceProgress.Stamp(partition: m.partition, maxTs: maxTs).write(to: stampBuffer)
            switch outcome {
            case .route(let action, let key):
                // Zero-copy: key and value point into the consumed message, alive until commit.
                try producer.produce(to: out.queues[action], key: UnsafeRawBufferPointer(rebasing: value[key.start..<key.start + key.count]),
                                     value: value, header: (SourceProgress.stampHeader, stampView), copy: false)
                routed[action] += 1
            case .routeDecoded(let action, let key):
                try key.withUnsafeBytes { k in
                    try producer.produce(to: out.queues[action], key: k, value: value,
                                         header: (SourceProgress.stampHeader, stampView), copy: true)
                }
                routed[action] += 1
            case .filter(let reason):
                s.filtered[reason, default: 0] += 1
            case .deadLetter(let reason, let detail):
                try producer.produce(to: out.dlq, key: m.key, value: value, headers: [
                    ("reason", Array(reason.utf8)),
                    ("detail", Array(detail.utf8)),
                    ("source", Array("\(options.topicPrefix + Topology.raw)/\(m.partition)/\(m.offset)".utf8)),
                ], copy: false)
                s.deadLettered[reason, default: 0] += 1
            }
        }
        for (i, n) in routed.enumerated() where n > 0 { s.routed[router.actions[i]] = n }
        return s
    }

    private func copy(_ records: [KafkaMessage], producer: KafkaProducer, to topic: KafkaTopic) throws -> SplitStats {
        for m in records { try producer.produce(to: topic, key: m.key, value: m.value, copy: false) }
        var s = SplitStats()
        s.consumed = records.count
        s.routed["copy"] = records.count
        return s
    }

    private func firstOffsets(_ records: [KafkaMessage]) -> [TopicPartitionOffset] {
        var first: [Int32: Int64] = [:]
        for m in records { first[m.partition] = min(first[m.partition] ?? .max, m.offset) }
        return first.map { TopicPartitionOffset(topic: options.topicPrefix + Topology.raw, partition: $0.key, offset: $0.value) }
    }

    private func nextOffsets(_ records: [KafkaMessage]) -> [TopicPartitionOffset] {
        var next: [Int32: Int64] = [:]
        for m in records { next[m.partition] = max(next[m.partition] ?? 0, m.offset + 1) }
        return next.map { TopicPartitionOffset(topic: options.topicPrefix + Topology.raw, partition: $0.key, offset: $0.value) }
    }
}

