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
        let ccfg = KafkaConfig.consumer(bootstrapServers: options.brokers, groupId: options.groupId,
                                        clientId: "strata-split-\(options.instanceId)").merging(options.kafka)
        let producer = try KafkaProducer(config: pcfg, logger: logger)
        // The idle clock runs only while partitions are assigned: joining a group takes seconds.
        let assignment = AssignmentTracker()
        let consumer = try KafkaConsumer(config: ccfg, logger: logger) { assignment.apply($0) }
        try producer.initTransactions()
        try consumer.subscribe([options.topicPrefix + Topology.raw])
        defer { consumer.close() }

        let queues = router.actions.map { producer.topic(options.topicPrefix + Topology.microQueue(for: $0)) }
        let dlq = producer.topic(options.topicPrefix + Topology.deadLetter)
        let copyTarget = options.copyOnlyTo.map { producer.topic($0) }
        logger.info("split started", metadata: ["group": "\(options.groupId)", "instance": "\(options.instanceId)",
                                                "actions": "\(router.actions.joined(separator: ","))"])

        var lastInput = ContinuousClock.now
        while !shouldStop() {
            let batch = try consumer.poll(maxMessages: options.batchSize, timeoutMs: options.pollTimeoutMs)
            let records = batch.filter { m in
                if let e = m.error {
                    if e.code != RD_KAFKA_RESP_ERR__PARTITION_EOF.rawValue { logger.warning("consumer event", metadata: ["error": "\(e)"]) }
                    return false
                }
                return true
            }
            if records.isEmpty {
                if let changed = assignment.takeChange() { lastInput = changed }
                if let idle = options.untilIdle, assignment.hasPartitions, ContinuousClock.now - lastInput >= idle { break }
                continue
            }
            lastInput = .now
            if firstRecordAt == nil { firstRecordAt = lastInput }
            let committed = try processTransactionally(records, producer: producer, consumer: consumer, queues: queues, dlq: dlq, copyTarget: copyTarget)
            // `batch` (and so every zero-copy pointer handed to librdkafka) stays alive until here.
            withExtendedLifetime(batch) {}
            guard let batchStats = committed else { continue }
            lastCommitAt = .now
            batchStats.export()
            stats.add(batchStats)
            onProgress(stats)
        }
        logger.info("split finished", metadata: ["stats": "\(stats.summary)", "retried_batches": "\(retriedBatches)"])
    }

    /// Produces one batch and its offsets in one transaction. On an abortable error the
    /// transaction is aborted and the consumer rewound to the batch start, so the next poll
    /// (which also serves any pending rebalance) reads the same records again; returns nil then.
    private func processTransactionally(_ records: [KafkaMessage], producer: KafkaProducer, consumer: KafkaConsumer,
                                        queues: [KafkaTopic], dlq: KafkaTopic, copyTarget: KafkaTopic?) throws -> SplitStats? {
        do {
            try producer.beginTransaction()
            let s = try copyTarget.map { try copy(records, producer: producer, to: $0) }
                ?? produce(records, producer: producer, queues: queues, dlq: dlq)
            try producer.sendOffsets(nextOffsets(records), consumer: consumer)
            try producer.commitTransaction()
            return s
        } catch let e as KafkaError where e.requiresAbort && !e.isFatal {
            logger.warning("transaction failed; aborting and re-reading the batch", metadata: ["error": "\(e)"])
            retriedBatches += 1
            try producer.abortTransaction()
            try consumer.seek(firstOffsets(records))
            return nil
        }
    }

    private func produce(_ records: [KafkaMessage], producer: KafkaProducer, queues: [KafkaTopic], dlq: KafkaTopic) throws -> SplitStats {
        var s = SplitStats()
        var routed = [Int](repeating: 0, count: queues.count)
        for m in records {
            let value = m.value
            s.consumed += 1
            switch router.route(value) {
            case .route(let action, let key):
                // Zero-copy: key and value point into the consumed message, alive until commit.
                try producer.produce(to: queues[action], key: UnsafeRawBufferPointer(rebasing: value[key.start..<key.start + key.count]),
                                     value: value, copy: false)
                routed[action] += 1
            case .routeDecoded(let action, let key):
                try key.withUnsafeBytes { k in
                    try producer.produce(to: queues[action], key: k, value: value, copy: true)
                }
                routed[action] += 1
            case .filter(let reason):
                s.filtered[reason, default: 0] += 1
            case .deadLetter(let reason, let detail):
                try producer.produce(to: dlq, key: m.key, value: value, headers: [
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

