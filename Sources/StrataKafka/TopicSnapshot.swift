import Foundation

/// Reads a (small, usually compacted) state topic to its end: the jobs' checkpoint topics.
///
/// "The end" is made exact with a marker: a unique record is written first and the topic is read
/// until it comes back, after which every record committed before the call has been seen. The
/// local broker under-reports high watermarks, so the high watermark alone cannot say so.
public enum TopicSnapshot {
    /// Every keyed record of `topic` (all partitions) in offset order per partition, without the marker.
    public static func read(topic: String, brokers: String, kafka: [String: String], markerKey: String,
                            timeout: Duration = .seconds(60)) throws(KafkaError) -> [(key: [UInt8], value: [UInt8])] {
        var records: [(key: [UInt8], value: [UInt8])] = []
        try scan(topic: topic, brokers: brokers, kafka: kafka, markerKey: markerKey, timeout: timeout) { k, v, _ in records.append((k, v)) }
        return records
    }

    /// As `read`, with each record's Kafka timestamp (ms): when it was published.
    public static func readTimed(topic: String, brokers: String, kafka: [String: String], markerKey: String,
                                 timeout: Duration = .seconds(60)) throws(KafkaError) -> [(key: [UInt8], value: [UInt8], timestampMs: Int64)] {
        var records: [(key: [UInt8], value: [UInt8], timestampMs: Int64)] = []
        try scan(topic: topic, brokers: brokers, kafka: kafka, markerKey: markerKey, timeout: timeout) { records.append(($0, $1, $2)) }
        return records
    }

    private static func scan(topic: String, brokers: String, kafka: [String: String], markerKey: String, timeout: Duration,
                             _ each: ([UInt8], [UInt8], Int64) -> Void) throws(KafkaError) {
        let marker = Array(UUID().uuidString.utf8)
        let mkey = Array(markerKey.utf8)
        let consumer = try KafkaConsumer(config: KafkaConfig.consumer(bootstrapServers: brokers, groupId: nil).merging(kafka))
        defer { consumer.close() }
        let partitions = try consumer.partitionCount(topic: topic)
        // One marker per partition: each partition is read to its own end.
        let producer = try KafkaProducer(config: KafkaConfig.producer(bootstrapServers: brokers, clientId: "strata-snapshot-marker").merging(kafka))
        let t = producer.topic(topic)
        for p in 0..<partitions {
            let r: Result<Void, KafkaError> = mkey.withUnsafeBytes { k in
                marker.withUnsafeBytes { v in Result { () throws(KafkaError) in try producer.produce(to: t, partition: Int32(p), key: k, value: v) } }
            }
            try r.get()
        }
        try producer.flush()
        var pending = Set(0..<Int32(partitions))
        try consumer.assign((0..<partitions).map { TopicPartitionOffset(topic: topic, partition: Int32($0), offset: TopicPartitionOffset.first) })
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let batch = try consumer.poll(maxMessages: 10_000, timeoutMs: 100)
            for m in batch {
                if let e = m.error {
                    // A state read must be whole: a restore from part of it would be wrong.
                    try m.throwIfRecordsLost()
                    if e.code == .unknownTopicOrPartition {
                        throw KafkaError(unreadableRecords: e, topic: topic, partition: m.partition, offset: m.offset)
                    }
                    continue
                }
                guard let key = m.key.map({ Array($0) }) else { continue }
                let value = Array(m.value)
                if key == mkey && value == marker {
                    pending.remove(m.partition)
                    if pending.isEmpty { return }
                    continue
                }
                each(key, value, m.timestampMs)
            }
        }
        throw KafkaError(code: .snapshotIncomplete, message: "topic \(topic) not read to its end within \(timeout)", operation: "read state topic")
    }
}
