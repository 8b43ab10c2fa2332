public import StrataKafka

/// Reads a topic from its beginning to its end without a consumer group and without writing to
/// it: done when every partition has reported its end (partition EOF) and then nothing new came
/// for `idle`. Not the high watermark alone: some brokers under-report it (DESIGN.md, Tansu).
public enum TopicScan {
    public struct Result: Sendable {
        public var records = 0
        public var partitions = 0
    }

    public static func read(config: KafkaConfig, topic: String, idle: Duration = .seconds(2), timeout: Duration = .seconds(300),
                            _ body: (KafkaMessage) throws -> Void) throws -> Result {
        let consumer: KafkaConsumer
        do {
            consumer = try KafkaConsumer(config: config.merging(["enable.partition.eof": "true"]))
        } catch {
            throw ReconcileError.source("\(topic): cannot create a consumer: \(error)")
        }
        defer { consumer.close() }
        var result = Result()
        do {
            result.partitions = try consumer.partitionCount(topic: topic)
            try consumer.assign((0..<result.partitions).map {
                TopicPartitionOffset(topic: topic, partition: Int32($0), offset: TopicPartitionOffset.first)
            })
        } catch {
            throw ReconcileError.source("\(topic): \(error) (is the broker at \(config.bootstrapServers ?? "?") up? --no-broker skips it)")
        }
        var atEnd = Set<Int32>()
        var lastRecord = ContinuousClock.now
        let deadline = ContinuousClock.now + timeout
        while true {
            let now = ContinuousClock.now
            if atEnd.count == result.partitions && now - lastRecord >= idle { break }
            guard now < deadline else {
                throw ReconcileError.source("\(topic): not read to its end within \(timeout) (\(atEnd.count) of \(result.partitions) partitions at their end)")
            }
            let batch: KafkaMessageBatch
            do { batch = try consumer.poll(maxMessages: 5_000, timeoutMs: 100) } catch {
                throw ReconcileError.source("\(topic): \(error)")
            }
            for m in batch {
                if let e = m.error {
                    if e.code == .partitionEOF { atEnd.insert(m.partition); continue }
                    throw ReconcileError.source("\(topic): \(e)")
                }
                atEnd.remove(m.partition)
                lastRecord = ContinuousClock.now
                result.records += 1
                try body(m)
            }
        }
        return result
    }
}
