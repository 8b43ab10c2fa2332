import Foundation
public import Logging
import StrataCore
public import StrataDims
import StrataKafka
import StrataRuntime
import CoreMetrics

/// Applies `dim.changelog` to the dimension cache: Redis entries (fresh staggered TTLs), the
/// in-process tier and the valid-ID filters. As a job (`strata job dimsync`) it is a group member
/// that commits its offsets; inside the dwm process it follows the changelog from its end without a
/// group (the filters were just built from the store) so that process's own filter stays current.
public final class DimSync {
    public struct Options: Sendable {
        public var brokers: String
        public var kafka: [String: String] = [:]
        public var topicPrefix = ""
        /// nil: follow from the end without a group.
        public var groupId: String? = "strata-dimsync"
        public var untilIdle: Duration?
        public init(brokers: String) { self.brokers = brokers }
    }

    private let options: Options
    private let cache: DimensionCache
    private let logger: Logger
    public private(set) var applied = 0
    public private(set) var rejected = 0

    public init(options: Options, cache: DimensionCache, logger: Logger = Logger(label: "strata.dimsync")) {
        self.options = options
        self.cache = cache
        self.logger = logger
    }

    public func run(shouldStop: () -> Bool = { false }) throws {
        let topic = options.topicPrefix + Topology.dimChangelog
        let tracker = AssignmentTracker()
        let consumer = try KafkaConsumer(config: KafkaConfig.consumer(bootstrapServers: options.brokers, groupId: options.groupId,
                                                                      clientId: "strata-dimsync").merging(options.kafka),
                                         logger: logger) { tracker.apply($0) }
        if options.groupId != nil {
            try consumer.subscribe([topic])
        } else {
            let n = try consumer.partitionCount(topic: topic)
            try consumer.assign((0..<n).map { TopicPartitionOffset(topic: topic, partition: Int32($0), offset: TopicPartitionOffset.end) })
            tracker.apply(.assigned([]))
        }
        defer { consumer.close() }
        var lastInput = ContinuousClock.now
        let appliedCounter = MetricsRegistry.shared.counter("strata_dimsync_applied_total", help: "Dimension changes applied to the cache")
        let rejectedCounter = MetricsRegistry.shared.counter("strata_dimsync_rejected_total", help: "Changelog records that could not be decoded")
        while !shouldStop() {
            let batch = try consumer.poll(maxMessages: 5_000, timeoutMs: 200)
            if options.groupId != nil, tracker.takeChange() != nil {
                // A new assignment: each owned partition from the group's committed offset, or from
                // its first record where the group has none (not where librdkafka's reset to the
                // broker's earliest offset puts it: `TopicPartitionOffset.first`). What this poll
                // returned comes again.
                lastInput = .now
                let restart = try Restore.atCommitted(try consumer.assignment(), consumer: consumer)
                if !restart.seeks.isEmpty {
                    try consumer.seek(restart.seeks)
                    continue
                }
            }
            var changes: [DimChange] = []
            var next: [Int32: Int64] = [:]
            for m in batch {
                if m.error != nil {
                    try m.throwIfRecordsLost()
                    continue
                }
                next[m.partition] = m.offset + 1
                do {
                    changes.append(try DimChange.decode(key: m.key.map { Array($0) } ?? [], value: m.value.isEmpty ? nil : Array(m.value)))
                } catch {
                    rejected += 1
                    rejectedCounter.increment()
                    logger.warning("skipping undecodable changelog record", metadata: ["offset": "\(m.offset)", "error": "\(error)"])
                }
            }
            if !changes.isEmpty {
                try cache.apply(changes)
                applied += changes.count
                appliedCounter.increment(by: changes.count)
            }
            if !next.isEmpty {
                lastInput = .now
                if options.groupId != nil {
                    try consumer.commit(next.map { TopicPartitionOffset(topic: topic, partition: $0.key, offset: $0.value) })
                }
            } else if let idle = options.untilIdle, options.groupId == nil || tracker.isSettled, ContinuousClock.now - lastInput >= idle {
                break
            }
        }
    }
}
