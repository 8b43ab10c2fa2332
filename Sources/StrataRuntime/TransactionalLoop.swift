import Foundation
import Logging
import StrataCore
import StrataKafka

/// The consume → transform → produce loop every Strata job runs, exactly once: a consumer-group
/// member reading `read_committed`, and a transactional producer that commits each transaction's
/// records together with the consumer offsets they cover, so a crash publishes both or neither.
///
/// It owns group membership (static, by instance id) and assignment tracking, polling, the
/// transaction cadence the stage asks for, `send_offsets_to_transaction`, abort-and-rewind on
/// abortable errors, fencing (fatal errors end the run), `--until-idle`, graceful stop, and the
/// counters every job reports. The job's logic is a `TransactionalStage`.
public final class TransactionalLoop {
    public struct Options: Sendable {
        /// The job's name: client ids, transactional id, logs and metrics labels.
        public var job: String
        public var brokers: String
        /// librdkafka properties passed through to both clients (override the defaults below).
        public var kafka: [String: String] = [:]
        public var groupId: String
        /// Stable per instance: the transactional id and the static group membership derive from
        /// it, so a restarted instance fences its predecessor and takes its partitions back.
        public var instanceId = "0"
        /// Prepended to topic names; also keeps transactional ids of isolated runs apart.
        public var topicPrefix = ""
        public var inputs: [String]
        public var batchSize = 10_000
        public var pollTimeoutMs: Int32 = 100
        /// Exit after this long without input (counted from the first assignment).
        public var untilIdle: Duration?
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
    /// The next offset the consumer fetches per partition, where known (read, sought or rewound).
    private var fetchPositions: [PartitionKey: Int64] = [:]

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// Runs `stage` until `shouldStop()` or `--until-idle`; `onCommit` after each transaction.
    /// Throws on fatal errors (a fenced producer, a broken configuration): the process should
    /// exit and be restarted; its successor fences whatever this one left open.
    public func run(_ stage: some TransactionalStage, shouldStop: () -> Bool = { false }, onCommit: () -> Void = {}) throws {
        let clientId = "strata-\(options.job)-\(options.instanceId)"
        var pcfg = KafkaConfig.producer(bootstrapServers: options.brokers, clientId: clientId)
            .merging(options.producerDefaults).merging(options.kafka)
        // The prefix keeps isolated runs on one broker from fencing each other.
        pcfg.transactionalId = "\(options.topicPrefix)strata-\(options.job)-\(options.instanceId)"
        var ccfg = KafkaConfig.consumer(bootstrapServers: options.brokers, groupId: options.groupId, clientId: clientId)
        // No silent resets: an out-of-range position is handled below (re-read, or skip what
        // retention deleted, counted), never by jumping to the start and processing it all again.
        ccfg["auto.offset.reset"] = "error"
        ccfg = ccfg.merging(options.consumerDefaults)
        ccfg["group.instance.id"] = KafkaConfig.staticMemberId(prefix: options.topicPrefix, group: options.groupId,
                                                                instance: options.instanceId)
        ccfg = ccfg.merging(options.kafka)
        // `-X group.instance.id=` (empty) turns static membership off.
        if ccfg["group.instance.id"]?.isEmpty == true { ccfg["group.instance.id"] = nil }

        let producer = try KafkaProducer(config: pcfg, logger: logger)
        // The idle clock runs only once the group has answered: joining can take seconds.
        let assignment = AssignmentTracker()
        let consumer = try KafkaConsumer(config: ccfg, logger: logger) { assignment.apply($0) }
        try producer.initTransactions()
        try stage.prepare(producer: producer, consumer: consumer)
        try consumer.subscribe(options.inputs)
        defer { consumer.close() }
        logger.info("\(options.job) started", metadata: ["group": "\(options.groupId)", "instance": "\(options.instanceId)"])

        var lastInput = ContinuousClock.now
        while !shouldStop() {
            let batch = try consumer.poll(maxMessages: options.batchSize, timeoutMs: options.pollTimeoutMs)
            if assignment.takeChange() != nil {
                lastInput = .now
                // Records polled before the seeks come again after them.
                if try restore(stage, consumer: consumer) { continue }
            }
            var records: [KafkaMessage] = []
            var resets: [(PartitionKey, KafkaError)] = []
            records.reserveCapacity(batch.count)
            for m in batch {
                if let e = m.error {
                    switch e.code {
                    case .partitionEOF: stage.partitionEnded(topic: m.topic, partition: m.partition)
                    case .autoOffsetReset: resets.append((PartitionKey(topic: m.topic, partition: m.partition), e))
                    default: logger.warning("consumer event", metadata: ["error": "\(e)"])
                    }
                    continue
                }
                records.append(m)
                let key = PartitionKey(topic: m.topic, partition: m.partition)
                fetchPositions[key] = m.offset + 1
                if uncommittedFrom[key] == nil { uncommittedFrom[key] = m.offset }
                // Never backwards: a replay below the committed position (a checkpoint's replay
                // offset) re-reads records whose offsets were committed already.
                positions[key] = max(positions[key] ?? 0, m.offset + 1)
            }
            let now = ContinuousClock.now
            if !records.isEmpty {
                positionsChanged = true
                lastInput = now
                if stats.firstRecordAt == nil { stats.firstRecordAt = now }
                stats.lastRecordAt = now
                try stage.consume(records)
            }
            // After the batch: the positions the stage has seen are final for this poll.
            if !resets.isEmpty { try reposition(after: resets, consumer: consumer) }
            stage.afterPoll(consumer: consumer)
            if stage.holdsInput { lastInput = now }
            let finishing = options.untilIdle.map { assignment.hasJoined && now - lastInput >= $0 } ?? false
            let tick = Tick(now: now, inputPaused: records.isEmpty, finishing: finishing)
            if stage.wantsTransaction(tick) {
                try transaction(stage, tick: tick, producer: producer, consumer: consumer)
                onCommit()
            }
            // Zero-copy records handed to the producer point into `batch`: alive until here.
            withExtendedLifetime(batch) {}
            if finishing { break }
        }
        logger.info("\(options.job) finished", metadata: ["transactions": "\(stats.transactions)",
                                                         "aborted_transactions": "\(stats.abortedTransactions)"])
    }

    /// Asks the stage where to resume and seeks there; true when the consumer was repositioned.
    private func restore(_ stage: some TransactionalStage, consumer: KafkaConsumer) throws -> Bool {
        stats.restores += 1
        let owned = try consumer.assignment()
        let r = try stage.restore(owned: owned, consumer: consumer)
        positions = [:]
        uncommittedFrom = [:]
        fetchPositions = [:]
        positionsChanged = false
        for tp in r.positions { positions[PartitionKey(topic: tp.topic, partition: tp.partition)] = tp.offset }
        for tp in r.seeks where tp.offset >= 0 { fetchPositions[PartitionKey(topic: tp.topic, partition: tp.partition)] = tp.offset }
        guard !r.seeks.isEmpty else { return false }
        try reassign(r.seeks, consumer: consumer)
        return true
    }

    /// The consumer found positions out of range, or none at all (`auto.offset.reset` is "error").
    /// Without a position (a new group): the beginning. Otherwise the broker's range decides: a
    /// position inside it is fetched again (a broker can answer out-of-range for an offset it has,
    /// e.g. at its end); one below it lost records to retention: reading goes on at the oldest
    /// record, the loss logged and counted; one above it (a truncated log) resumes at the end.
    private func reposition(after resets: [(PartitionKey, KafkaError)], consumer: KafkaConsumer) throws {
        var targets: [PartitionKey: Int64] = [:]
        for (key, error) in resets where targets[key] == nil {
            let metadata: Logger.Metadata = ["partition": "\(key.topic)[\(key.partition)]", "error": "\(error.message)"]
            var position = fetchPositions[key]
            if position == nil {
                let committed = try consumer.committed([TopicPartitionOffset(topic: key.topic, partition: key.partition, offset: TopicPartitionOffset.invalid)])
                position = committed.first.map(\.offset).flatMap { $0 >= 0 ? $0 : nil }
            }
            guard let at = position else {
                logger.info("no committed offset: reading from the beginning", metadata: metadata)
                targets[key] = TopicPartitionOffset.beginning
                continue
            }
            let (low, high) = try consumer.watermarks(topic: key.topic, partition: key.partition)
            var target = at
            if at < low {
                target = low
                logger.error("records deleted before they were read (retention): skipping them", metadata: metadata.merging(
                    ["from": "\(at)", "to": "\(low)", "lost": "\(low - at)"], uniquingKeysWith: { a, _ in a }))
                MetricsRegistry.shared.counter("strata_job_records_lost_to_retention_total", help: "Offsets skipped because the broker deleted them unread",
                                               labels: ["job": options.job, "topic": key.topic]).increment(by: Int(low - at))
            } else if at > high {
                target = high
                logger.error("position beyond the end of the log (truncated): resuming at its end", metadata: metadata.merging(
                    ["position": "\(at)", "end": "\(high)"], uniquingKeysWith: { a, _ in a }))
            } else {
                logger.warning("broker answered out of range for an offset it holds: fetching it again", metadata: metadata.merging(
                    ["position": "\(at)", "low": "\(low)", "high": "\(high)"], uniquingKeysWith: { a, _ in a }))
            }
            targets[key] = target
            fetchPositions[key] = target
        }
        try reassign(targets.map { TopicPartitionOffset(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value) },
                     consumer: consumer)
    }

    /// Repositions `moves` and keeps every other owned partition where it was. Done by setting the
    /// assignment again rather than seeking: librdkafka refuses to seek a partition whose fetch
    /// stopped on an offset reset (`_STATE`), which a new group's partitions can be at any moment.
    private func reassign(_ moves: [TopicPartitionOffset], consumer: KafkaConsumer) throws {
        var targets: [PartitionKey: Int64] = [:]
        for tp in moves { targets[PartitionKey(topic: tp.topic, partition: tp.partition)] = tp.offset }
        try consumer.assign(try consumer.assignment().map { tp in
            let key = PartitionKey(topic: tp.topic, partition: tp.partition)
            return TopicPartitionOffset(topic: tp.topic, partition: tp.partition,
                                        offset: targets[key] ?? fetchPositions[key] ?? TopicPartitionOffset.stored)
        })
    }

    private func transaction(_ stage: some TransactionalStage, tick: Tick, producer: KafkaProducer, consumer: KafkaConsumer) throws {
        do {
            try stage.beforeTransaction(tick)
            try producer.beginTransaction()
            try stage.produce(into: producer, tick: tick)
            if positionsChanged {
                try producer.sendOffsets(positions.map { TopicPartitionOffset(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value) },
                                         consumer: consumer)
            }
            try producer.commitTransaction()
        } catch let e as KafkaError where e.requiresAbort && !e.isFatal {
            stats.abortedTransactions += 1
            try producer.abortTransaction()
            let rewind = stage.aborted()
            logger.warning("transaction failed; aborted, redoing the work", metadata: ["error": "\(e)", "rewind": "\(rewind)"])
            switch rewind {
            case .uncommitted:
                let back = uncommittedFrom.map { TopicPartitionOffset(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value) }
                for tp in back {
                    positions[PartitionKey(topic: tp.topic, partition: tp.partition)] = tp.offset
                    fetchPositions[PartitionKey(topic: tp.topic, partition: tp.partition)] = tp.offset
                }
                uncommittedFrom = [:]
                if !back.isEmpty { try reassign(back, consumer: consumer) }
            case .restore:
                _ = try restore(stage, consumer: consumer)
            }
            return
        }
        uncommittedFrom = [:]
        positionsChanged = false
        stats.transactions += 1
        stats.lastCommitAt = .now
        stage.committed(tick)
        MetricsRegistry.shared.counter("strata_job_transactions_total", help: "Transactions committed",
                                       labels: ["job": options.job]).increment(by: 1)
    }
}

/// A consumed partition.
struct PartitionKey: Hashable {
    let topic: String
    let partition: Int32
}
