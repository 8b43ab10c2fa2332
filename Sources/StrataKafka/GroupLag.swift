import Foundation

/// A consumer group whose lag is watched (a job of the pipeline): its name for people, its group
/// and the topics it reads.
public struct LagWatch: Sendable {
    public var job: String
    public var groupId: String
    public var topics: [String]
    /// Other topic sets the job may read instead (the dwm job reads ods.raw with --read-raw): the
    /// first set on which the group has committed offsets is measured, `topics` when none has.
    public var alternatives: [[String]]

    public init(job: String, groupId: String, topics: [String], alternatives: [[String]] = []) {
        self.job = job
        self.groupId = groupId
        self.topics = topics
        self.alternatives = alternatives
    }

    /// Records between the group's committed offsets and the end of each partition (the last
    /// stable offset, read committed), summed over the watched topics; a partition without a
    /// committed offset counts from its low watermark. Reading committed offsets does not join the
    /// group. Against Tansu 0.6 the end offset is under-reported by the size of the last batch
    /// written, so the figure can be low by that much (never negative).
    /// `consumerConfig` is a plain consumer's configuration (brokers, security); the group is set here.
    public func measure(consumerConfig: KafkaConfig) throws -> Int64 {
        var config = consumerConfig
        config.groupId = groupId
        let consumer = try KafkaConsumer(config: config)
        defer { consumer.close() }
        func committed(_ topic: String) throws -> [TopicPartitionOffset] {
            let partitions = try consumer.partitionCount(topic: topic)
            return try consumer.committed((0..<partitions).map {
                TopicPartitionOffset(topic: topic, partition: Int32($0), offset: TopicPartitionOffset.invalid)
            }, timeoutMs: 5_000)
        }
        var read = [(topic: String, committed: [TopicPartitionOffset])]()
        for set in [topics] + alternatives {
            let positions = try set.map { ($0, try committed($0)) }
            if read.isEmpty { read = positions }
            if positions.contains(where: { $0.1.contains { $0.offset >= 0 } }) { read = positions; break }
        }
        var lag: Int64 = 0
        for (topic, committed) in read {
            for position in committed {
                let marks = try consumer.watermarks(topic: topic, partition: position.partition, timeoutMs: 5_000)
                let from = position.offset >= 0 ? position.offset : marks.low
                lag += max(0, marks.high - from)
            }
        }
        return lag
    }
}
