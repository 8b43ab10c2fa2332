import Foundation
import StrataCore
import StrataDWM
import StrataKafka

/// The dwm job's replay points, kept in the checkpoint topic and written inside each transaction
/// (the local broker drops offset-commit metadata, so they cannot ride on the offsets).
/// Record: key `<group>|<topic>|<partition>`, value `<committed position>|<SourceCheckpoint>`.
struct CheckpointRecord: Equatable {
    var topic: String
    var partition: Int32
    var position: Int64
    var checkpoint: SourceCheckpoint

    func key(group: String) -> [UInt8] { Array("\(group)|\(topic)|\(partition)".utf8) }
    var value: [UInt8] { Array("\(position)|\(checkpoint.encoded)".utf8) }

    init(topic: String, partition: Int32, position: Int64, checkpoint: SourceCheckpoint) {
        self.topic = topic; self.partition = partition; self.position = position; self.checkpoint = checkpoint
    }

    init?(key: [UInt8], value: [UInt8], group: String) {
        let k = String(decoding: key, as: UTF8.self).split(separator: "|", omittingEmptySubsequences: false)
        let v = String(decoding: value, as: UTF8.self).split(separator: "|", maxSplits: 1)
        guard k.count == 3, k[0] == group, let p = Int32(k[2]), v.count == 2, let pos = Int64(v[0]),
              let cp = SourceCheckpoint(encoded: String(v[1])) else { return nil }
        self.init(topic: String(k[1]), partition: p, position: pos, checkpoint: cp)
    }

    /// The newest checkpoint per (topic, partition) of `group`. The local broker under-reports
    /// high watermarks, so "read to the end" is made exact with a marker: a record written now and
    /// read back, after which every checkpoint committed before it has been seen.
    static func load(topic: String, group: String, instance: String, brokers: String, kafka: [String: String],
                     timeout: Duration = .seconds(60)) throws -> [String: CheckpointRecord] {
        let marker = Array(UUID().uuidString.utf8)
        let markerKey = Array("\(group)|marker|\(instance)".utf8)
        let producer = try KafkaProducer(config: KafkaConfig.producer(bootstrapServers: brokers, clientId: "strata-dwm-marker").merging(kafka))
        try markerKey.withUnsafeBytes { k in try marker.withUnsafeBytes { v in try producer.produce(to: producer.topic(topic), key: k, value: v) } }
        try producer.flush()

        let consumer = try KafkaConsumer(config: KafkaConfig.consumer(bootstrapServers: brokers, groupId: nil).merging(kafka))
        defer { consumer.close() }
        let partitions = try consumer.partitionCount(topic: topic)
        try consumer.assign((0..<partitions).map { TopicPartitionOffset(topic: topic, partition: Int32($0), offset: TopicPartitionOffset.beginning) })
        var latest: [String: CheckpointRecord] = [:]
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let batch = try consumer.poll(maxMessages: 10_000, timeoutMs: 100)
            for m in batch where m.error == nil {
                guard let key = m.key.map({ Array($0) }) else { continue }
                if key == markerKey && Array(m.value) == marker { return latest }
                guard let r = CheckpointRecord(key: key, value: Array(m.value), group: group) else { continue }
                latest["\(r.topic)|\(r.partition)"] = r
            }
        }
        throw KafkaError(code: -185, message: "checkpoint topic \(topic) not read to its end within \(timeout)", operation: "load checkpoints")
    }
}
