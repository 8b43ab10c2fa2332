import Foundation
import Logging
import StrataKafka
import Synchronization

/// A job whose consumer lag the dashboard shows: its group and the topics it reads.
public struct LagWatch: Sendable {
    public var job: String
    public var groupId: String
    public var topics: [String]

    public init(job: String, groupId: String, topics: [String]) {
        self.job = job
        self.groupId = groupId
        self.topics = topics
    }
}

/// How far each watched job is behind its input: the records between its group's committed
/// offsets and the end of each partition (the last stable offset, read committed), measured every
/// few seconds on a thread of its own. Reading committed offsets does not join the group.
final class JobLagMonitor: Sendable {
    struct Reading: Sendable {
        var job: String
        var groupId: String
        var lag: Int64?
        var error: String?
        var measuredAtMs: Int64
    }
    let watches: [LagWatch]
    let consumerConfig: KafkaConfig
    let intervalMs: Int
    let logger: Logger
    private let readings = Mutex<[Reading]>([])
    private let stopFlag = Atomic<Bool>(false)

    init(watches: [LagWatch], consumerConfig: KafkaConfig, intervalMs: Int = 5_000, logger: Logger) {
        self.watches = watches
        self.consumerConfig = consumerConfig
        self.intervalMs = intervalMs
        self.logger = logger
    }

    var current: [Reading] { readings.withLock { $0 } }

    func start() {
        guard !watches.isEmpty else { return }
        let thread = Thread { [self] in
            while !stopFlag.load(ordering: .relaxed) {
                let measured = watches.map(measure)
                readings.withLock { $0 = measured }
                var waited = 0
                while waited < intervalMs && !stopFlag.load(ordering: .relaxed) {
                    Thread.sleep(forTimeInterval: 0.1)
                    waited += 100
                }
            }
        }
        thread.name = "strata-serve-lag"
        thread.start()
    }

    func stop() { stopFlag.store(true, ordering: .relaxed) }

    private func measure(_ watch: LagWatch) -> Reading {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        do {
            var config = consumerConfig
            config.groupId = watch.groupId
            let consumer = try KafkaConsumer(config: config)
            defer { consumer.close() }
            var lag: Int64 = 0
            for topic in watch.topics {
                let partitions = try consumer.partitionCount(topic: topic)
                let committed = try consumer.committed((0..<partitions).map {
                    TopicPartitionOffset(topic: topic, partition: Int32($0), offset: TopicPartitionOffset.invalid)
                }, timeoutMs: 5_000)
                for position in committed {
                    let marks = try consumer.watermarks(topic: topic, partition: position.partition, timeoutMs: 5_000)
                    let from = position.offset >= 0 ? position.offset : marks.low
                    lag += max(0, marks.high - from)
                }
            }
            return Reading(job: watch.job, groupId: watch.groupId, lag: lag, error: nil, measuredAtMs: now)
        } catch {
            return Reading(job: watch.job, groupId: watch.groupId, lag: nil, error: String(describing: error), measuredAtMs: now)
        }
    }
}
