import Foundation
import StrataKafka

/// One record read back from a test topic.
public struct TopicRecord {
    public let value: [UInt8]
    public let key: [UInt8]?
    public let headers: [(String, [UInt8])]
    public let partition: Int32
    public let offset: Int64
}

/// A topic whose end markers did not all come back within the timeout.
public struct ReadIncomplete: Error, CustomStringConvertible {
    public let topic: String, missing: Int, timeout: Duration
    public var description: String { "\(topic): end markers of \(missing) partitions not read back within \(timeout)" }
}

/// Every record committed in `topic` (read_committed) before the call, the markers left out: an end
/// marker is written now to each partition and the topic is read until each comes back, so the read
/// is complete without waiting for silence. `partitions` defaults to the topic's partition count.
/// Throws `ReadIncomplete` after `timeout`. `readCommitted: false` reads every record written,
/// aborted transactions' too (to tell a record never written from one the broker did not show).
public func readToEndMarkers(brokers: String, topic: String, partitions: Int? = nil,
                             timeout: Duration, readCommitted: Bool = true) throws -> [TopicRecord] {
    let endKey = Array("strata-test-end".utf8)
    let endValue = Array(UUID().uuidString.utf8)
    var config = KafkaConfig.consumer(bootstrapServers: brokers, groupId: nil)
    if !readCommitted { config["isolation.level"] = "read_uncommitted" }
    let consumer = try KafkaConsumer(config: config)
    defer { consumer.close() }
    let partitionCount = try partitions ?? consumer.partitionCount(topic: topic)
    let producer = try KafkaProducer(config: .producer(bootstrapServers: brokers))
    let kafkaTopic = producer.topic(topic)
    for partition in 0..<partitionCount {
        try endKey.withUnsafeBytes { key in
            try endValue.withUnsafeBytes { value in
                try producer.produce(to: kafkaTopic, partition: Int32(partition), key: key, value: value)
            }
        }
    }
    try producer.flush()
    try consumer.assign((0..<partitionCount).map {
        TopicPartitionOffset(topic: topic, partition: Int32($0), offset: TopicPartitionOffset.first)
    })
    var records: [TopicRecord] = []
    var pending = Set(0..<Int32(partitionCount))
    let start = ContinuousClock.now, deadline = start + timeout
    var nextNote = start + .seconds(60)
    while !pending.isEmpty {
        guard ContinuousClock.now < deadline else { throw ReadIncomplete(topic: topic, missing: pending.count, timeout: timeout) }
        if ContinuousClock.now >= nextNote {
            // Seen on Tansu after near-simultaneous commits by several producers: the
            // read_committed end stays below committed transactions for minutes, then moves on.
            print("\(topic): still waiting for the end markers of partitions \(pending.sorted()) after \(ContinuousClock.now - start)"
                  + (readCommitted ? " (read_committed: the broker's last stable offset has not moved past them)" : ""))
            nextNote = ContinuousClock.now + .seconds(60)
        }
        for message in try consumer.poll(maxMessages: 5_000, timeoutMs: 100) {
            if let e = message.error {
                // What a test reads must be whole: records the consumer could not read fail the read.
                try message.throwIfRecordsLost()
                if e.code != .partitionEOF { print("\(topic): consumer event \(e)") }
                continue
            }
            guard pending.contains(message.partition) else { continue }
            let key = message.key.map { Array($0) }
            if key == endKey && Array(message.value) == endValue { pending.remove(message.partition); continue }
            records.append(TopicRecord(value: Array(message.value), key: key, headers: message.headers, partition: message.partition,
                                       offset: message.offset))
        }
    }
    return records
}
