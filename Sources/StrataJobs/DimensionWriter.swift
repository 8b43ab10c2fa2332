import StrataCore
public import StrataDims
import StrataKafka

/// Writes dimensions as docs/cache.md ("Consistency: the changelog") describes: the store first,
/// then one `dim.changelog` record per row, so dimsync can bring Redis and the filters up to date.
public struct DimensionWriter {
    let store: any DimensionStore
    let producer: KafkaProducer
    let topic: KafkaTopic

    public init(store: any DimensionStore, brokers: String, kafka: [String: String], topicPrefix: String = "") throws {
        self.store = store
        producer = try KafkaProducer(config: KafkaConfig.producer(bootstrapServers: brokers, clientId: "strata-dims").merging(kafka))
        topic = producer.topic(topicPrefix + Topology.dimChangelog)
    }

    public func write(contents: [ContentDim] = [], users: [UserDim] = [], progress: (Int) -> Void = { _ in }) throws {
        let chunk = 10_000
        var done = 0
        for start in stride(from: 0, to: contents.count, by: chunk) {
            let part = Array(contents[start..<min(start + chunk, contents.count)])
            try store.upsert(contents: part)
            try publish(part.map { DimChange.upsertContent($0) })
            done += part.count; progress(done)
        }
        for start in stride(from: 0, to: users.count, by: chunk) {
            let part = Array(users[start..<min(start + chunk, users.count)])
            try store.upsert(users: part)
            try publish(part.map { DimChange.upsertUser($0) })
            done += part.count; progress(done)
        }
        try producer.flush(timeoutMs: 120_000)
    }

    private func publish(_ changes: [DimChange]) throws {
        for c in changes {
            let key = c.keyBytes, value = c.encoded()
            try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try producer.produce(to: topic, key: k, value: v) } }
        }
        producer.poll()
    }
}
