import Foundation
public import Logging
public import StrataCore
import StrataKafka
public import StrataRuntime
import CoreMetrics

/// The ODS split job: ods.raw → ods.<action> (key = content_id, original bytes) | ods.dlq.
/// Exactly-once: each polled batch is produced inside one Kafka transaction together with the
/// consumer offsets that cover it (`TransactionalLoop`), so a crash at any point either publishes
/// the batch and its offsets or neither. Consumers of the outputs read with `read_committed`.
public final class SplitJob: StreamJob {
    public struct Options: Sendable {
        public var brokers: String
        public var kafka: [String: String] = [:]          // pass-through librdkafka properties
        public var groupId = Topology.splitGroup
        /// Stable per instance: a restarted instance fences its predecessor's open transaction.
        public var instanceId = "0"
        /// Most records per transaction. A poll returns what has arrived within `pollTimeoutMs`, so
        /// this only matters when catching up: there 20 000 per commit split 1.1–1.7× faster than
        /// 5 000 through the local broker (docs/benchmarks.md).
        public var batchSize = 20_000
        public var pollTimeoutMs: Int32 = 100
        /// Exit after this long without new input (bounded runs, tests, demos).
        public var untilIdle: Duration?
        /// In `strata run`: stop idle only after the job upstream has finished.
        public var idleOrder = IdleOrder()
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
        /// that still has input is held back until it catches up, which bounds the windows the dwm
        /// job holds open while catching up. nil: read every partition as fast as it comes.
        public var alignMs: Int64? = 60_000
        /// Static group membership (see `TransactionalLoop.Options.staticMembership`).
        public var staticMembership = false
        /// Polls and scans the next batch (validation, routing, stamps) while a transaction ends
        /// (its offsets and commit on a thread of their own: `TransactionalStage.overlapsCommit`),
        /// and produces it once that transaction has ended; false: everything waits for it.
        public var overlapCommits = true
        public init(brokers: String) { self.brokers = brokers }
    }

    private let options: Options
    private let stage: SplitStage
    private let loop: TransactionalLoop
    public let name = "split"

    public init(options: Options, topology: Topology, logger: Logger = Logger(label: "strata.split")) throws {
        self.options = options
        stage = try SplitStage(options: options, topology: topology, logger: logger)
        var loopOptions = TransactionalLoop.Options(job: "split", brokers: options.brokers, groupId: options.groupId,
                                                    inputs: [options.topicPrefix + Topology.raw])
        loopOptions.kafka = options.kafka
        loopOptions.instanceId = options.instanceId
        loopOptions.topicPrefix = options.topicPrefix
        loopOptions.batchSize = options.batchSize
        loopOptions.pollTimeoutMs = options.pollTimeoutMs
        loopOptions.untilIdle = options.untilIdle
        loopOptions.idleOrder = options.idleOrder
        loopOptions.staticMembership = options.staticMembership
        // End-of-partition events tell alignment (and the idle rule) which partitions have
        // nothing more to deliver.
        loopOptions.consumerDefaults["enable.partition.eof"] = "true"
        loop = TransactionalLoop(options: loopOptions, logger: logger)
    }

    public var stats: SplitStats { stage.stats }
    /// Transactions aborted and redone after a retriable error.
    public var retriedBatches: Int { loop.stats.abortedTransactions }
    /// When the first record arrived and the last transaction committed (throughput measurement).
    public var firstRecordAt: ContinuousClock.Instant? { loop.stats.firstRecordAt }
    public var lastCommitAt: ContinuousClock.Instant? { loop.stats.lastCommitAt }
    /// Watermark marker records written (one per micro-queue partition per round).
    public var markersWritten: Int { stage.markersWritten }

    public func run(shouldStop: @escaping () -> Bool, report: @escaping (JobSummary) -> Void) throws {
        try run(shouldStop: shouldStop, onProgress: { [unowned self] _ in report(summary) })
    }

    /// Runs until `shouldStop()` or the idle timeout; commits everything before returning.
    public func run(shouldStop: () -> Bool = { false }, onProgress: (SplitStats) -> Void = { _ in }) throws {
        try loop.run(stage, shouldStop: shouldStop) { onProgress(stage.stats) }
        logger.info("split accounting", metadata: ["stats": "\(stats.summary)", "markers": "\(markersWritten)"])
    }

    private var logger: Logger { stage.logger }

    public var summary: JobSummary {
        let s = stats
        var j = JobSummary(job: name)
        j.consumed = s.consumed
        j.outcomes = ["routed": s.routedTotal, "filtered": s.filteredTotal, "dead_lettered": s.deadLetteredTotal]
        j.details = ["routed": s.routed, "filtered": s.filtered, "dead_lettered": s.deadLettered]
        j.written = ["markers": markersWritten]
        j.transactions = loop.stats.transactions
        j.abortedTransactions = loop.stats.abortedTransactions
        j.addStages(loop.clock)
        return j
    }
}

/// The split's transform: routes each polled batch, stamps records with their ods.raw partition's
/// event-time progress, writes watermark markers and the progress checkpoints.
final class SplitStage: TransactionalStage {
    private let options: SplitJob.Options
    private let router: SplitRouter
    let logger: Logger
    private(set) var stats = SplitStats()
    private(set) var markersWritten = 0
    private var progress = RawProgress(rawPartitionCount: 0)
    /// After an assignment: the checkpoints read and the offset each owned partition's progress was
    /// chosen for. The first record of a partition shows where reading really starts; if that is
    /// not the offset asked for (the group's committed offsets can be unreadable while a dead
    /// member's transaction is still open), the progress is chosen again for it before stamping.
    private var checkpoints: [SplitCheckpoint] = []
    private var progressFor: [Int32: Int64] = [:]
    private var lastMarkerAt = ContinuousClock.now
    private var out: Outputs?
    /// The records of the next transaction and their routes, decided when they were consumed.
    private var pending: [KafkaMessage] = []
    private var routes = StagedRoutes()
    /// Per batch consumed and not committed yet, the progress before it: an abort goes back to
    /// the oldest (the loop reads again from there).
    private var beforeBatches: [(RawProgress, [Int32: Int64])] = []
    /// What the transaction produced last covered, for `committed`: the job reads on while it ends.
    private var cut: Cut?
    private struct Cut {
        let stats: SplitStats?
        let sentMarkers: Bool
        let batches: Int
    }
    private var forceMarkers = false
    /// Event-time alignment of reading ods.raw (holding only with `alignMs`), and which partitions
    /// have input. Kept apart from `progress`, which an aborted batch rolls back: the consumer's
    /// state is not rolled back with it.
    private var alignment: ReadAlignment?
    private var clock: StageClock?
    private var scanLap = 0, produceLap = 0

    init(options: SplitJob.Options, topology: Topology, logger: Logger) throws {
        self.options = options
        self.router = try SplitRouter(topology: topology, maxEventBytes: options.maxEventBytes)
        self.logger = logger
    }

    struct Outputs {
        let queues: [KafkaTopic]
        let queuePartitions: [Int]
        let dlq: KafkaTopic
        let copyTarget: KafkaTopic?
        let checkpoint: KafkaTopic
    }

    private var raw: String { options.topicPrefix + Topology.raw }

    /// `scan_route`: each record scanned, validated and routed as it is consumed (while the last
    /// transaction may still be ending); `produce_routed`: the routed records handed to librdkafka
    /// (which may wait for queue space); checkpoints and markers stay in the loop's `produce`.
    func attach(clock: StageClock) {
        self.clock = clock
        scanLap = clock.stage("scan_route")
        produceLap = clock.stage("produce_routed")
    }

    func prepare(producer: KafkaProducer, consumer: KafkaConsumer) throws {
        let queues = router.actions.map { producer.topic(options.topicPrefix + Topology.microQueue(for: $0)) }
        out = Outputs(queues: queues, queuePartitions: try queues.map { try producer.partitionCount(topic: $0.name) },
                      dlq: producer.topic(options.topicPrefix + Topology.deadLetter),
                      copyTarget: options.copyOnlyTo.map { producer.topic($0) },
                      checkpoint: producer.topic(options.topicPrefix + Topology.splitCheckpoint))
        progress = RawProgress(rawPartitionCount: try producer.partitionCount(topic: raw))
        logger.info("split routes", metadata: ["actions": "\(router.actions.joined(separator: ","))"])
    }

    /// After a rebalance: the owned partitions' progress at their committed offsets.
    func restore(owned: [TopicPartitionOffset], consumer: KafkaConsumer) throws -> Restore {
        // Nothing read under the old assignment is produced under the new one (the loop has ended
        // the last transaction first).
        beforeBatches.removeAll()
        pending.removeAll(keepingCapacity: true)
        routes.removeAll()
        // Alignment starts afresh: nothing stays held across an assignment.
        if options.copyOnlyTo == nil {
            alignment = ReadAlignment(topic: raw, aheadMs: options.alignMs)
            try alignment?.assign(owned.map(\.partition), consumer: consumer)
        }
        guard !owned.isEmpty else { progress.reset(to: [:], now: .now); return Restore() }
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
        // Every owned partition from where the group committed; one it never committed from its
        // first record by offset, not where librdkafka's reset to the broker's earliest offset
        // would put it (`TopicPartitionOffset.first`). All of them: the loop drops what this poll
        // returned, and only a sought partition hands it out again.
        return .atCommitted(committed)
    }

    /// Batches consumed while the last transaction ends are scanned now and produced in the next.
    var overlapsCommit: Bool { options.overlapCommits }

    func consume(_ records: [KafkaMessage]) throws {
        beforeBatches.append((progress, progressFor))
        let first = pending.count
        pending.append(contentsOf: records)
        if options.copyOnlyTo == nil {
            scan(from: first)
            clock?.lap(scanLap)
        }
        if alignment != nil {
            let now = ContinuousClock.now
            var last: Int32 = -1
            for m in records where m.partition != last {
                last = m.partition
                alignment?.noteRecords(partition: last, now: now)
            }
        }
    }

    func partitionEnded(topic: String, partition: Int32) { alignment?.noteEnd(partition: partition) }

    func afterPoll(consumer: KafkaConsumer) {
        let now = ContinuousClock.now
        align(consumer: consumer, now: now)
        let busy = alignment?.withInput(consumer: consumer, now: now) ?? []
        alignment?.reportStarved(job: "split", logger: logger)
        if progress.updateIdle(now: now, timeout: options.idleSourceTimeout, hasInput: busy) { forceMarkers = true }
    }

    /// A partition held by alignment still has input: not idle.
    var holdsInput: Bool { alignment?.hasHeld ?? false }

    /// Every batch; otherwise markers when the input paused or a partition's idleness changed.
    func wantsTransaction(_ tick: Tick) -> Bool {
        if !pending.isEmpty { return true }
        return options.copyOnlyTo == nil && tick.inputPaused && (progress.changedSinceMarker || forceMarkers)
    }

    func produce(into producer: KafkaProducer, tick: Tick) throws {
        guard let out else { return }
        var batchStats: SplitStats?
        var sentMarkers = false
        defer {
            cut = Cut(stats: batchStats, sentMarkers: sentMarkers, batches: beforeBatches.count)
            pending.removeAll(keepingCapacity: true)
            routes.removeAll()
        }
        if !pending.isEmpty {
            if let target = out.copyTarget {
                batchStats = try copy(pending, producer: producer, to: target)
                return
            }
            batchStats = routes.stats
            try produceRouted(producer: producer, out: out)
            clock?.lap(produceLap)
            for tp in nextOffsets(pending) {
                let c = SplitCheckpoint(partition: tp.partition, nextOffset: tp.offset, maxTs: progress.maxTs(of: tp.partition) ?? .min)
                try producer.produce(topic: out.checkpoint.name, key: c.key(group: options.groupId), value: c.value)
            }
        }
        let due = progress.changedSinceMarker && (pending.isEmpty || tick.now - lastMarkerAt >= options.markerInterval)
        if !progress.isEmpty && (forceMarkers || due) {
            try produceMarkers(producer: producer, out: out)
            // The markers carry the progress as of now; what is read later changes it again.
            progress.markerSent()
            forceMarkers = false
            sentMarkers = true
        }
    }

    func committed(_ tick: Tick) {
        guard let cut else { return }
        self.cut = nil
        if cut.sentMarkers, let out { markersCommitted(out) }
        if let batch = cut.stats {
            batch.export()
            stats.add(batch)
        }
        beforeBatches.removeFirst(min(cut.batches, beforeBatches.count))
    }

    /// The batches since the last commit are read again; stamps restart from the progress before
    /// the first of them, and markers go out again.
    func aborted() -> Rewind {
        if let (p, f) = beforeBatches.first { (progress, progressFor) = (p, f) }
        beforeBatches.removeAll()
        pending.removeAll(keepingCapacity: true)
        routes.removeAll()
        cut = nil
        forceMarkers = true
        return .uncommitted
    }

    /// Holds owned partitions too far ahead in event time and releases those the others caught
    /// up with (`ReadAlignment`).
    private func align(consumer: KafkaConsumer, now: ContinuousClock.Instant) {
        guard var a = alignment else { return }
        defer { alignment = a }
        let progress = self.progress
        do {
            let changes = try a.align(consumer: consumer, maxTs: { progress.maxTs(of: $0) ?? .min }, idle: progress.isIdle, now: now)
            guard !changes.hold.isEmpty || !changes.release.isEmpty else { return }
            self.progress.restartIdleClocks(changes.release, now: now)
            logger.debug("event-time alignment", metadata: ["held": "\(a.held)"])
            MetricsRegistry.shared.gauge("strata_split_held_partitions", help: "ods.raw partitions held back by event-time alignment")
                .record(Double(a.held.count))
        } catch {
            logger.warning("hold/release for event-time alignment failed", metadata: ["error": "\(error)"])
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
        markersWritten += out.queuePartitions.reduce(0, +)
        lastMarkerAt = .now
        for (p, s) in progress.partitions {
            MetricsRegistry.shared.gauge("strata_split_source_max_ts_ms", help: "Highest event time read per ods.raw partition",
                                         labels: ["partition": "\(p)"]).record(Double(s.maxTs == .min ? 0 : s.maxTs))
        }
    }

    /// Validates and routes `pending[first...]` (a batch just consumed) into `routes`, and moves
    /// the event-time progress the stamps carry.
    private func scan(from first: Int) {
        let now = ContinuousClock.now
        var routed = [Int](repeating: 0, count: router.actions.count)
        // A local copy: no exclusivity check on the job's stored property per record.
        var progress = self.progress
        defer { self.progress = progress }
        for i in first..<pending.count {
            let m = pending[i]
            let value = m.value
            routes.stats.consumed += 1
            if let asked = progressFor[m.partition] {
                if asked != m.offset { verifyProgress(&progress, partition: m.partition, firstOffset: m.offset, asked: asked, now: now) }
                progressFor[m.partition] = nil
            }
            var scanned: ScannedEvent?
            let outcome = router.route(value, scanned: &scanned)
            let maxTs = progress.note(partition: m.partition, ts: scanned?.ts, now: now)
            switch outcome {
            case .route(let action, let key):
                routes.append(.init(record: i, kind: .route, action: action, keyStart: key.start, keyCount: key.count, maxTs: maxTs))
                routed[action] += 1
            case .routeDecoded(let action, let key):
                routes.append(.init(record: i, kind: .routeDecoded, action: action, extra: routes.decodedKeys.count, maxTs: maxTs))
                routes.decodedKeys.append(key)
                routed[action] += 1
            case .filter(let reason):
                routes.stats.filtered[reason, default: 0] += 1
            case .deadLetter(let reason, let detail):
                routes.append(.init(record: i, kind: .deadLetter, extra: routes.deadLetters.count, maxTs: maxTs))
                routes.deadLetters.append((reason, detail))
                routes.stats.deadLettered[reason, default: 0] += 1
            }
        }
        for (i, n) in routed.enumerated() where n > 0 { routes.stats.routed[router.actions[i], default: 0] += n }
    }

    /// The routed records to their micro-queues (and dead letters to `ods.dlq`), each stamped
    /// with its partition's progress as of its own read.
    private func produceRouted(producer: KafkaProducer, out: Outputs) throws {
        // The stamp's 12 bytes: librdkafka copies headers, so one buffer serves every record.
        let stampBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SourceProgress.Stamp.size, alignment: 8)
        defer { stampBuffer.deallocate() }
        let stampView = UnsafeRawBufferPointer(stampBuffer)
        for r in routes.routes {
            let m = pending[r.record]
            let value = m.value
            SourceProgress.Stamp(partition: m.partition, maxTs: r.maxTs).write(to: stampBuffer)
            switch r.kind {
            case .route:
                // Zero-copy: key and value point into the consumed message, alive until commit.
                try producer.produce(to: out.queues[r.action], key: UnsafeRawBufferPointer(rebasing: value[r.keyStart..<r.keyStart + r.keyCount]),
                                     value: value, header: (SourceProgress.stampHeader, stampView), copy: false)
            case .routeDecoded:
                try routes.decodedKeys[r.extra].withUnsafeBytes { k in
                    try producer.produce(to: out.queues[r.action], key: k, value: value,
                                         header: (SourceProgress.stampHeader, stampView), copy: true)
                }
            case .deadLetter:
                let (reason, detail) = routes.deadLetters[r.extra]
                try producer.produce(to: out.dlq, key: m.key, value: value, headers: [
                    ("reason", Array(reason.utf8)),
                    ("detail", Array(detail.utf8)),
                    ("source", Array("\(options.topicPrefix + Topology.raw)/\(m.partition)/\(m.offset)".utf8)),
                ], copy: false)
            }
        }
    }

    private func copy(_ records: [KafkaMessage], producer: KafkaProducer, to topic: KafkaTopic) throws -> SplitStats {
        for m in records { try producer.produce(to: topic, key: m.key, value: m.value, copy: false) }
        var s = SplitStats()
        s.consumed = records.count
        s.routed["copy"] = records.count
        return s
    }

    private func nextOffsets(_ records: [KafkaMessage]) -> [TopicPartitionOffset] {
        var next: [Int32: Int64] = [:]
        for m in records { next[m.partition] = max(next[m.partition] ?? 0, m.offset + 1) }
        return next.map { TopicPartitionOffset(topic: options.topicPrefix + Topology.raw, partition: $0.key, offset: $0.value) }
    }
}

/// The routes of the records consumed for the next transaction, decided by the scan: one entry per
/// record that is produced (filtered records only count), in read order.
struct StagedRoutes {
    struct Route {
        enum Kind: UInt8 { case route, routeDecoded, deadLetter }
        var record: Int
        var kind: Kind
        var action = 0
        var keyStart = 0, keyCount = 0
        /// Index into `decodedKeys` or `deadLetters`.
        var extra = 0
        /// The stamp: its partition's highest event time as of this record.
        var maxTs: Int64
    }

    private(set) var routes: [Route] = []
    var decodedKeys: [[UInt8]] = []
    var deadLetters: [(reason: String, detail: String)] = []
    var stats = SplitStats()

    mutating func append(_ r: Route) { routes.append(r) }

    mutating func removeAll() {
        routes.removeAll(keepingCapacity: true)
        decodedKeys.removeAll()
        deadLetters.removeAll()
        stats = SplitStats()
    }
}
