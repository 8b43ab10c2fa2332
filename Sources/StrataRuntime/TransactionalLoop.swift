import Foundation
import Metrics
public import Logging
import StrataCore
import StrataKafka

/// The consume → transform → produce loop every Strata job runs, exactly once: a consumer-group
/// member reading `read_committed`, and a transactional producer that commits each transaction's
/// records together with the consumer offsets they cover, so a crash publishes both or neither.
///
/// It owns group membership (static on request) and assignment tracking, polling, the transaction
/// cadence the stage asks for, `send_offsets_to_transaction`, abort-and-rewind on abortable
/// errors, fencing (fatal errors end the run), re-deliveries after offset resets, `--until-idle`,
/// graceful stop, and the counters every job reports. The job's logic is a `TransactionalStage`,
/// or, for output outside Kafka (files, a table), a `DurableStage` that `run(durable:)` drives:
/// the stage's durable write, then a plain offset commit, the write idempotent for what a crash
/// between the two delivers again.
public final class TransactionalLoop {
    public struct Options: Sendable {
        /// The job's name: client ids, transactional id, logs and metrics labels.
        public var job: String
        public var brokers: String
        /// librdkafka properties passed through to both clients (override the defaults below).
        public var kafka: [String: String] = [:]
        public var groupId: String
        /// Stable per instance: the transactional id (and the static membership id) derive from it,
        /// so a restarted instance fences its predecessor's open transaction.
        public var instanceId = "0"
        /// Prepended to topic names; also keeps transactional ids of isolated runs apart.
        public var topicPrefix = ""
        public var inputs: [String]
        public var batchSize = 10_000
        public var pollTimeoutMs: Int32 = 100
        /// Exit after this long without input (counted from when the first assignment is restored).
        public var untilIdle: Duration?
        /// In one process: which job's end the idle stop waits for, and this job's end.
        public var idleOrder = IdleOrder()
        /// Static group membership (`group.instance.id` from the instance id, KIP-345): a restarted
        /// instance takes its partitions back without a rebalance, and a broker that never expires
        /// dead dynamic members (noida) lets it back in; a crashed one holds its partitions for the
        /// session timeout. Off by default: on the local broker (Tansu) static joins are slower
        /// and multi-member groups sometimes stalled in tests.
        public var staticMembership = false
        /// With `untilIdle`: how long an idle run waits for its group to complete a rebalance
        /// before it gives up with `LoopError.rebalanceNotCompleted`. nil: the consumer's
        /// max.poll.interval.ms (the rebalance timeout: a coordinator that works completes the
        /// rebalance within it) + session.timeout.ms + 60 s.
        public var settleTimeout: Duration?
        /// Job-specific client defaults (below `kafka`).
        public var producerDefaults: [String: String] = [:]
        public var consumerDefaults: [String: String] = [:]

        public init(job: String, brokers: String, groupId: String, inputs: [String]) {
            self.job = job
            self.brokers = brokers
            self.groupId = groupId
            self.inputs = inputs
        }
    }

    /// What the loop did; read by the runner and benchmarks.
    public struct Stats: Sendable {
        public var transactions = 0
        /// Transactions aborted and redone after an abortable error.
        public var abortedTransactions = 0
        /// Assignment changes and `.restore` rewinds the stage rebuilt from.
        public var restores = 0
        /// Records delivered again after an offset reset and skipped.
        public var redeliveredSkipped = 0
        /// Offset commits that failed after a durable write (`run(durable:)`); those records come again.
        public var failedOffsetCommits = 0
        public var firstRecordAt: ContinuousClock.Instant?
        public var lastRecordAt: ContinuousClock.Instant?
        public var lastCommitAt: ContinuousClock.Instant?
    }

    public let options: Options
    private let logger: Logger
    public private(set) var stats = Stats()
    /// Next offset per partition consumed (what a commit sends), and where the records consumed
    /// since the last commit started (what an `.uncommitted` rewind seeks back to).
    private var positions: [PartitionKey: Int64] = [:]
    private var uncommittedFrom: [PartitionKey: Int64] = [:]
    private var positionsChanged = false
    /// The stage's restore is not ready: owned partitions paused, asked again after each poll.
    private var restorePending = false
    /// The next offset the consumer fetches per partition, where known (read, sought or rewound).
    private var fetchPositions: [PartitionKey: Int64] = [:]
    private var redelivering: Set<PartitionKey> = []
    private let metrics: LoopMetrics
    /// Wall and CPU time of the job's thread per stage of the loop (per batch, never per record).
    public let clock: StageClock
    private let laps: LoopLaps
    private var settleTimeout: Duration = .seconds(300)
    /// Ends transactions off the job's thread for stages that read on meanwhile (`overlapsCommit`).
    private let worker = CommitWorker()
    /// The transaction the worker is ending, if any.
    private var inFlight: InFlight?
    /// The last poll's records, which zero-copy records handed to the producer point into: alive
    /// until the next poll (a transaction still ending keeps its own in `inFlight`), and past an
    /// error until the producer has dropped what it was lent of them (`run`).
    private var polled: KafkaMessageBatch?

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
        self.metrics = LoopMetrics(job: options.job)
        clock = StageClock(job: options.job)
        laps = LoopLaps(clock)
    }

    /// Runs `stage` until `shouldStop()` or `--until-idle`; `onCommit` after each transaction.
    /// Throws on fatal errors (a fenced producer, a broken configuration): the process should
    /// exit and be restarted; its successor fences whatever this one left open.
    public func run(_ stage: some TransactionalStage, shouldStop: () -> Bool = { false }, onCommit: () -> Void = {}) throws {
        // No per-record delivery report on success: a transaction's commit already waits for every
        // ack and fails on any failed delivery, and a job reads nothing from the successes (they
        // cost ≈ 0.5 µs per record on the job's thread). `-X` may turn them back on.
        var pcfg = KafkaConfig.producer(bootstrapServers: options.brokers, clientId: clientId)
            .merging(["delivery.report.only.error": "true"])
            .merging(options.producerDefaults).merging(options.kafka)
        // The prefix keeps isolated runs on one broker from fencing each other.
        pcfg.transactionalId = "\(options.topicPrefix)strata-\(options.job)-\(options.instanceId)"
        let producer = try KafkaProducer(config: pcfg, logger: logger)
        // However the run ends, nothing may still be ending a transaction on the producer it frees.
        defer { worker.quiesce() }
        let assignment = AssignmentTracker()
        let consumer = try makeConsumer(assignment)
        // The consumer cannot be destroyed while one of its messages is alive (librdkafka waits).
        defer { withExtendedLifetime(consumer) { releasePolled() } }
        try producer.initTransactions()
        stage.attach(clock: clock)
        try stage.prepare(producer: producer, consumer: consumer)
        do {
            try loop(stage, consumer: consumer, assignment: assignment, shouldStop: shouldStop,
                     settle: { atEnd in try settle(stage, producer: producer, consumer: consumer, onCommit: onCommit, rewind: !atEnd) }) { tick, batch in
                try transaction(stage, tick: tick, batch: batch, producer: producer, consumer: consumer, onCommit: onCommit)
            }
        } catch {
            // Records produced without a copy point into the polled batches: an error can leave
            // them queued in librdkafka, whose threads would read them after the batches are freed.
            worker.quiesce()
            producer.dropUndelivered()
            throw error
        }
        let seal = stage.sealRecords()
        guard !seal.isEmpty else { return }
        // Sealing spares the next run some redone work; it is not needed for correctness, so a
        // broker that cannot take it (stopping during an outage) does not hold the stop up long.
        do {
            try producer.beginTransaction()
            for r in seal { try producer.produce(topic: r.topic, key: r.key, value: r.value) }
            try producer.commitTransaction(timeoutMs: 10_000)
        } catch {
            logger.warning("could not seal the last transactions; the next run redoes the last one", metadata: ["error": "\(error)"])
        }
    }

    /// Runs a stage whose output is outside Kafka: after each durable `write` the loop commits the
    /// consumer offsets it covered. Same membership, polling, idleness and stop as `run(_:)`.
    public func run(durable stage: some DurableStage, shouldStop: () -> Bool = { false }, onCommit: () -> Void = {}) throws {
        let assignment = AssignmentTracker()
        let consumer = try makeConsumer(assignment)
        defer { withExtendedLifetime(consumer) { releasePolled() } }
        stage.attach(clock: clock)
        try stage.prepare(consumer: consumer)
        try loop(stage, consumer: consumer, assignment: assignment, shouldStop: shouldStop, settle: { _ in }) { tick, _ in
            try durableCommit(stage, tick: tick, consumer: consumer)
            onCommit()
            return true
        }
    }

    private var clientId: String { "strata-\(options.job)-\(options.instanceId)" }

    /// Frees the messages the loop kept past its end (the last poll's, a transaction's in flight).
    private func releasePolled() {
        polled = nil
        inFlight = nil
    }

    private func makeConsumer(_ assignment: AssignmentTracker) throws -> KafkaConsumer {
        var ccfg = KafkaConfig.consumer(bootstrapServers: options.brokers, groupId: options.groupId, clientId: clientId)
            .merging(options.consumerDefaults)
        if options.staticMembership {
            ccfg["group.instance.id"] = KafkaConfig.staticMemberId(prefix: options.topicPrefix, group: options.groupId,
                                                                    instance: options.instanceId)
        }
        ccfg = ccfg.merging(options.kafka)
        let ms = { (key: String, fallback: Int) in ccfg[key].flatMap { Int($0) } ?? fallback }
        settleTimeout = options.settleTimeout
            ?? .milliseconds(ms("max.poll.interval.ms", 300_000) + ms("session.timeout.ms", 45_000) + 60_000)
        // The idle clock runs only once the group has answered: joining can take seconds.
        // Partitions are not let go while a transaction with their offsets is still ending: the
        // next owner would read from offsets that may yet move.
        return try KafkaConsumer(config: ccfg, logger: logger) { [worker] change in
            worker.quiesce()
            assignment.apply(change)
        }
    }

    /// `settle(atEnd)` finishes a transaction still ending in the background (before a restore,
    /// and at the end); `commit` runs one for the tick, with the poll's records it may lend out,
    /// and says whether it went through (false: aborted, its work is being redone).
    private func loop(_ stage: some LoopStage, consumer: KafkaConsumer, assignment: AssignmentTracker,
                      shouldStop: () -> Bool, settle: (_ atEnd: Bool) throws -> Void,
                      commit: (Tick, KafkaMessageBatch) throws -> Bool) throws {
        defer { options.idleOrder.signals?.markFinished() }
        try consumer.subscribe(options.inputs)
        defer { consumer.close() }
        logger.info("\(options.job) started", metadata: ["group": "\(options.groupId)", "instance": "\(options.instanceId)"])
        var lastInput = ContinuousClock.now
        var waitingSince: ContinuousClock.Instant?
        var topicNames = TopicNames()
        clock.start()
        while !shouldStop() {
            let batch = try consumer.poll(maxMessages: options.batchSize, timeoutMs: options.pollTimeoutMs)
            polled = batch
            clock.lap(laps.poll)
            if assignment.takeChange() != nil || restorePending {
                try settle(false)
                let repositioned = try restore(stage, consumer: consumer)
                clock.lap(laps.restore)
                // Idle time counts from when the stage is ready (a restore reads checkpoints).
                lastInput = .now
                // Records polled before the seeks come again after them.
                if repositioned { continue }
            }
            var records: [KafkaMessage] = []
            records.reserveCapacity(batch.count)
            // A batch comes in runs of one partition's records: a run's positions are kept here
            // and written back once (updating the maps per record cost ≈ 0.5 µs per record).
            var run: PartitionRun?
            for m in batch {
                if let e = m.error {
                    // Records it cannot read stop the job: nothing of this poll is committed, and a
                    // restart reads from the committed offsets.
                    try m.throwIfRecordsLost()
                    if e.code == .partitionEOF { stage.partitionEnded(topic: m.topic, partition: m.partition) } else {
                        logger.warning("consumer event", metadata: ["error": "\(e)"])
                    }
                    continue
                }
                let topic = topicNames.of(m)
                if run?.key.partition != m.partition || run?.key.topic != topic {
                    if let run { track(run) }
                    let key = PartitionKey(topic: topic, partition: m.partition)
                    run = PartitionRun(key: key, next: fetchPositions[key])
                }
                // Never backwards on its own: after an offset reset (a broker answering out of
                // range at a partition's end makes librdkafka restart it from the beginning) the
                // records this consumer already had come again; they are skipped and counted.
                if let next = run!.next, m.offset < next {
                    skipRedelivered(run!.key, offset: m.offset, next: next)
                    continue
                }
                records.append(m)
                if run!.first == nil { run!.first = m.offset }
                run!.next = m.offset + 1
            }
            if let run { track(run) }
            let now = ContinuousClock.now
            clock.lap(laps.track)
            if !records.isEmpty {
                positionsChanged = true
                lastInput = now
                if stats.firstRecordAt == nil { stats.firstRecordAt = now }
                stats.lastRecordAt = now
                try stage.consume(records)
                clock.lap(laps.consume)
            }
            try stage.afterPoll(consumer: consumer)
            if stage.holdsInput { lastInput = now }
            var finishing = false
            if let idle = options.untilIdle, options.idleOrder.isIdle(now: now, lastInput: lastInput, idle: idle) {
                finishing = assignment.isSettled
                if finishing {
                    waitingSince = nil
                } else if let since = waitingSince {
                    if now - since >= settleTimeout {
                        throw LoopError.rebalanceNotCompleted(job: options.job, group: options.groupId, waited: now - since)
                    }
                } else {
                    waitingSince = now
                    logger.info("idle, but the group has not settled its assignment (a rebalance): waiting for it before finishing",
                                metadata: ["gives_up_after_s": "\(settleTimeout.components.seconds)"])
                }
            } else {
                waitingSince = nil
            }
            let tick = Tick(now: now, inputPaused: records.isEmpty, finishing: finishing, backlogged: batch.count >= options.batchSize,
                            lastRecordAt: stats.lastRecordAt)
            clock.lap(laps.afterPoll)
            var done = true
            if stage.wantsTransaction(tick) { done = try commit(tick, batch) }
            clock.lap(laps.other)
            // An aborted last transaction's work is read again and redone before the run ends.
            if finishing && done { break }
        }
        try settle(true)
        logger.info("\(options.job) finished", metadata: ["transactions": "\(stats.transactions)",
                                                         "aborted_transactions": "\(stats.abortedTransactions)"])
    }

    /// Asks the stage where to resume and seeks there; true when the consumer was repositioned
    /// (or is held while the stage's restore is pending: what was polled comes again).
    private func restore(_ stage: some LoopStage, consumer: KafkaConsumer) throws -> Bool {
        let owned = try consumer.assignment()
        let r = try stage.restore(owned: owned, consumer: consumer)
        if r.pending {
            // Again after every poll: partitions assigned meanwhile start unpaused.
            try consumer.pause(owned)
            restorePending = true
            return true
        }
        if restorePending {
            try consumer.resume(owned)
            restorePending = false
        }
        stats.restores += 1
        positions = [:]
        uncommittedFrom = [:]
        fetchPositions = [:]
        redelivering = []
        positionsChanged = false
        for tp in r.positions { positions[PartitionKey(topic: tp.topic, partition: tp.partition)] = tp.offset }
        for tp in r.seeks where tp.offset >= 0 { fetchPositions[PartitionKey(topic: tp.topic, partition: tp.partition)] = tp.offset }
        guard !r.seeks.isEmpty else { return false }
        try consumer.seek(r.seeks)
        return true
    }

    /// Counts a re-delivered record (below what this consumer had already read); logs the first
    /// of each run of them per partition.
    /// Records a run's records as read: the next fetch position, where the uncommitted records
    /// start, and the position to commit.
    private func track(_ run: PartitionRun) {
        guard let first = run.first, let next = run.next else { return }
        fetchPositions[run.key] = next
        if uncommittedFrom[run.key] == nil { uncommittedFrom[run.key] = first }
        // Never backwards: a replay below the committed position (a checkpoint's replay offset)
        // re-reads records whose offsets were committed already.
        positions[run.key] = max(positions[run.key] ?? 0, next)
    }

    private func skipRedelivered(_ key: PartitionKey, offset: Int64, next: Int64) {
        stats.redeliveredSkipped += 1
        if redelivering.insert(key).inserted {
            logger.warning("records delivered again (an offset reset, or a partition read again from its beginning): skipping them up to where reading was",
                           metadata: ["partition": "\(key.topic)[\(key.partition)]", "offset": "\(offset)", "resume_at": "\(next)"])
        }
        if offset + 1 == next { redelivering.remove(key) }
        metrics.redeliveredSkipped.increment()
    }

    /// One transaction for `tick`; false when it (or the one still ending before it) was aborted.
    private func transaction(_ stage: some TransactionalStage, tick: Tick, batch: KafkaMessageBatch, producer: KafkaProducer,
                             consumer: KafkaConsumer, onCommit: () -> Void) throws -> Bool {
        // One transaction at a time: the previous one ends first (if it failed, what it and the
        // records read since covered is redone instead).
        if try settle(stage, producer: producer, consumer: consumer, onCommit: onCommit) { return false }
        do {
            try stage.beforeTransaction(tick)
            clock.lap(laps.prepare)
            let started = ContinuousClock.now
            try producer.beginTransaction()
            try stage.produce(into: producer, tick: tick)
            clock.lap(laps.produce)
            let offsets = positionsChanged
                ? positions.map { TopicPartitionOffset(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value) } : []
            if stage.overlapsCommit && !tick.finishing {
                // The offsets and the commit (mostly waiting for the records' acks) go to the
                // worker; the job's thread polls and consumes on until its next transaction.
                let membership = offsets.isEmpty ? nil : try consumer.groupMetadata()
                inFlight = InFlight(tick: tick, from: uncommittedFrom, records: batch, started: started)
                uncommittedFrom = [:]
                positionsChanged = false
                worker.start { [producer] () throws(KafkaError) in
                    if let membership { try producer.sendOffsets(offsets, metadata: membership) }
                    try producer.commitTransaction()
                }
                clock.lap(laps.sendOffsets)
                return true
            }
            defer { metrics.transactionSeconds.record(duration: ContinuousClock.now - started) }
            if !offsets.isEmpty {
                try producer.sendOffsets(offsets, consumer: consumer)
                clock.lap(laps.sendOffsets)
            }
            try producer.commitTransaction()
            clock.lap(laps.commit)
        } catch let e as KafkaError where e.requiresAbort && !e.isFatal {
            try abortAndRewind(stage, producer: producer, consumer: consumer, error: e, from: uncommittedFrom)
            return false
        }
        didCommit(stage, tick)
        onCommit()
        return true
    }

    /// Waits for the transaction ending on the worker: committed (the stage is told), or aborted
    /// and rewound together with everything read since (`rewind: false` at the end of a run: the
    /// next run redoes it). True when it was aborted.
    @discardableResult
    private func settle(_ stage: some TransactionalStage, producer: KafkaProducer, consumer: KafkaConsumer,
                        onCommit: () -> Void, rewind: Bool = true) throws -> Bool {
        guard let f = inFlight else { return false }
        let result = worker.wait()
        inFlight = nil
        clock.lap(laps.commit)
        metrics.transactionSeconds.record(duration: ContinuousClock.now - f.started)
        switch result {
        case .success:
            didCommit(stage, f.tick, coveredAllRead: false)
            onCommit()
            return false
        case .failure(let e) where e.requiresAbort && !e.isFatal:
            // Where each partition's uncommitted records start: the failed transaction's first.
            try abortAndRewind(stage, producer: producer, consumer: consumer, error: e,
                               from: uncommittedFrom.merging(f.from) { _, first in first }, rewind: rewind)
            return true
        case .failure(let e):
            throw e
        case .none:
            preconditionFailure("a transaction in flight that the commit worker never started")
        }
    }

    /// Aborts the open transaction and redoes its work as the stage asks: its records read again
    /// from `from`, or the stage rebuilt from its checkpoints.
    private func abortAndRewind(_ stage: some TransactionalStage, producer: KafkaProducer, consumer: KafkaConsumer,
                                error e: KafkaError, from: [PartitionKey: Int64], rewind: Bool = true) throws {
        defer { clock.lap(laps.abort) }
        stats.abortedTransactions += 1
        metrics.aborted.increment()
        try producer.abortTransaction()
        let how = stage.aborted()
        uncommittedFrom = [:]
        guard rewind else {
            logger.warning("the last transaction failed as the job stopped; aborted, the next run redoes its work", metadata: ["error": "\(e)"])
            return
        }
        logger.warning("transaction failed; aborted, redoing the work", metadata: ["error": "\(e)", "rewind": "\(how)"])
        switch how {
        case .uncommitted:
            let back = from.map { TopicPartitionOffset(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value) }
            for tp in back {
                positions[PartitionKey(topic: tp.topic, partition: tp.partition)] = tp.offset
                fetchPositions[PartitionKey(topic: tp.topic, partition: tp.partition)] = tp.offset
            }
            if !back.isEmpty { try consumer.seek(back) }
        case .restore:
            _ = try restore(stage, consumer: consumer)
        }
    }

    /// What a commit covered is committed. `coveredAllRead`: every record read so far (a transaction
    /// ended on the worker covered what was read up to its start; the loop read on since).
    private func didCommit(_ stage: some LoopStage, _ tick: Tick, coveredAllRead: Bool = true) {
        if coveredAllRead {
            uncommittedFrom = [:]
            positionsChanged = false
        }
        stats.transactions += 1
        stats.lastCommitAt = .now
        stage.committed(tick)
        metrics.transactions.increment()
    }

    /// The stage makes its output durable, then the offsets it covers are committed. A failed
    /// offset commit (a rebalance under way) is logged, not fatal: the output is durable and the
    /// partition's next owner reads those records again, which the stage's idempotent writes absorb.
    private func durableCommit(_ stage: some DurableStage, tick: Tick, consumer: KafkaConsumer) throws {
        let started = ContinuousClock.now
        defer { metrics.transactionSeconds.record(duration: ContinuousClock.now - started) }
        try stage.write(tick)
        clock.lap(laps.produce)
        defer { clock.lap(laps.commit) }
        if positionsChanged {
            do {
                try consumer.commit(positions.map { TopicPartitionOffset(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value) })
            } catch {
                stats.failedOffsetCommits += 1
                logger.warning("offset commit failed after a durable write; the records will be read again",
                               metadata: ["error": "\(error)"])
            }
        }
        didCommit(stage, tick)
    }
}

/// The loop's series, labelled by job, looked up once.
struct LoopMetrics {
    let transactions, aborted, redeliveredSkipped: CoreMetrics.Counter
    let transactionSeconds: CoreMetrics.Timer

    init(job: String, registry: MetricsRegistry = .shared) {
        let labels = ["job": job]
        transactions = registry.counter("strata_job_transactions_total", help: "Transactions committed", labels: labels)
        aborted = registry.counter("strata_job_aborted_transactions_total", help: "Transactions aborted and redone", labels: labels)
        redeliveredSkipped = registry.counter("strata_job_redelivered_skipped_total",
                                              help: "Records delivered again after an offset reset, skipped", labels: labels)
        transactionSeconds = registry.timer("strata_job_transaction_seconds",
                                            help: "Time from beginning a transaction to its commit or abort (produce, offsets, commit)",
                                            labels: labels)
    }
}

/// The loop's own stages of `StageClock`, registered once. In loop order: `poll` (librdkafka's
/// poll, waiting for input included), `track` (per-record offset bookkeeping), `consume` (the
/// stage's `consume`), `after_poll`, `restore`, `prepare` (`beforeTransaction`), `produce`
/// (begin + the stage's `produce`; a durable stage's `write`), `send_offsets`, `commit`
/// (`commitTransaction`: waiting for every produced record's ack, then the commit; a durable
/// stage's offset commit; for a stage that overlaps its commits, the hand-over to the worker is
/// `send_offsets` and `commit` the wait for the previous transaction's end), `abort`, `other`
/// (the rest of a turn).
struct LoopLaps {
    let poll, track, consume, afterPoll, restore, prepare, produce, sendOffsets, commit, abort, other: Int

    init(_ clock: StageClock) {
        poll = clock.stage("poll")
        track = clock.stage("track")
        consume = clock.stage("consume")
        afterPoll = clock.stage("after_poll")
        restore = clock.stage("restore")
        prepare = clock.stage("prepare")
        produce = clock.stage("produce")
        sendOffsets = clock.stage("send_offsets")
        commit = clock.stage("commit")
        abort = clock.stage("abort")
        other = clock.stage("other")
    }
}

/// A transaction the commit worker is ending.
struct InFlight {
    let tick: Tick
    /// Where its records start per partition (for a rewind if it fails).
    let from: [PartitionKey: Int64]
    /// The poll its records were produced in: zero-copy records point into it until it ends.
    let records: KafkaMessageBatch
    let started: ContinuousClock.Instant
}

/// A consumed partition.
struct PartitionKey: Hashable {
    let topic: String
    let partition: Int32
}

/// Consecutive records of one partition within a poll.
struct PartitionRun {
    let key: PartitionKey
    /// The next offset to read (records below it were read already), as of the run's last record.
    var next: Int64?
    /// The run's first record taken.
    var first: Int64?
}

/// Why a loop ended without finishing its work.
public enum LoopError: Error, Sendable, CustomStringConvertible {
    /// A bounded run went idle but its group did not complete a rebalance within the settle timeout.
    case rebalanceNotCompleted(job: String, group: String, waited: Duration)

    public var description: String {
        switch self {
        case .rebalanceNotCompleted(let job, let group, let waited):
            return "the \(job) job went idle, but its group \(group) did not complete a rebalance in \(waited.components.seconds) s "
                + "(a broker-side stall, or a member that neither rejoins nor leaves). It stops without finishing: what the "
                + "end of the run publishes for the partitions it held (a dwm job's open minutes' finals) is left to the "
                + "next run of the group, which resumes from the committed checkpoints. Run the job again once the group "
                + "is healthy."
        }
    }
}
