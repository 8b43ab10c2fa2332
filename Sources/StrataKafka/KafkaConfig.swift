internal import CRdKafka

/// librdkafka configuration: typed accessors for what Strata sets, and every other librdkafka
/// property passed through untouched (`security.protocol`, `sasl.*`, `ssl.*`, …).
public struct KafkaConfig: Sendable, Equatable {
    /// Which client the configuration is for: `merging` applies a `producer.`- or
    /// `consumer.`-prefixed property (`-X consumer.max.poll.interval.ms=60000`) to that client only,
    /// as Kafka Connect's overrides do; a job's producer and consumer share the operator's `-X`
    /// list, and librdkafka warns about a property of the other kind.
    public enum Role: Sendable, Equatable { case any, producer, consumer }

    public var properties: [String: String]
    public var role: Role

    public init(_ properties: [String: String] = [:], role: Role = .any) {
        self.properties = properties
        self.role = role
    }

    public subscript(key: String) -> String? {
        get { properties[key] }
        set { properties[key] = newValue }
    }

    /// Later values win: `base.merging(userProperties)` lets operators override Strata's defaults.
    /// `producer.X` / `consumer.X` set X for that role only (and nothing for an admin client).
    public func merging(_ other: [String: String]) -> KafkaConfig {
        var merged = properties
        for (key, value) in other {
            if key.hasPrefix("producer.") {
                if role == .producer { merged[String(key.dropFirst("producer.".count))] = value }
            } else if key.hasPrefix("consumer.") {
                if role == .consumer { merged[String(key.dropFirst("consumer.".count))] = value }
            } else {
                merged[key] = value
            }
        }
        return KafkaConfig(merged, role: role)
    }

    public var bootstrapServers: String? {
        get { properties["bootstrap.servers"] }
        set { properties["bootstrap.servers"] = newValue }
    }
    public var clientId: String? {
        get { properties["client.id"] }
        set { properties["client.id"] = newValue }
    }
    public var transactionalId: String? {
        get { properties["transactional.id"] }
        set { properties["transactional.id"] = newValue }
    }
    public var groupId: String? {
        get { properties["group.id"] }
        set { properties["group.id"] = newValue }
    }

    /// Strata's producer defaults: idempotent (no duplicates from retries), batched, big enough
    /// for a dead-lettered 1 MB payload plus headers.
    public static func producer(bootstrapServers: String, clientId: String = "strata") -> KafkaConfig {
        KafkaConfig([
            "bootstrap.servers": bootstrapServers,
            "client.id": clientId,
            "enable.idempotence": "true",
            "acks": "all",
            "linger.ms": "5",
            // The Java client's partitioner: Strata's topics stay co-partitioned with topics
            // written by JVM tools (Flink, ksqlDB, Kafka Streams) for the same key.
            "partitioner": "murmur2_random",
            "batch.num.messages": "10000",
            "queue.buffering.max.messages": "500000",
            "queue.buffering.max.kbytes": "1048576",
            "message.max.bytes": "8388608",
        ], role: .producer)
    }

    /// Strata's consumer defaults: manual commits, `read_committed`, start at the beginning when no
    /// offset is committed. `max.poll.interval.ms` is kept modest: a first group join can stall on
    /// some brokers otherwise (DESIGN.md, environment facts).
    public static func consumer(bootstrapServers: String, groupId: String?, clientId: String = "strata") -> KafkaConfig {
        var c = KafkaConfig([
            "bootstrap.servers": bootstrapServers,
            "client.id": clientId,
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "max.poll.interval.ms": "10000",
            "session.timeout.ms": "6000",
            "fetch.max.bytes": "16777216",
            "max.partition.fetch.bytes": "8388608",
            // A partition whose local queue is past queued.min.messages is not fetched again for
            // this long (librdkafka's default: 1 s). Catching up, a job drains 100 000 queued
            // records in a fraction of that and then waits for the rest of the second.
            "fetch.queue.backoff.ms": "10",
            "receive.message.max.bytes": "33554432",
            "message.max.bytes": "8388608",
        ], role: .consumer)
        c.groupId = groupId
        return c
    }

    /// A job instance's static group membership id (`group.instance.id`, KIP-345). Jobs have
    /// stable instance ids (they already name the transactional producer), so a restarted instance
    /// takes its partitions straight back instead of waiting for the group to expire its dead
    /// predecessor, and a rolling restart causes no rebalance. Instance ids must be unique per group.
    public static func staticMemberId(prefix: String, group: String, instance: String) -> String {
        "\(prefix)\(group)-\(instance)"
    }

    /// Builds an `rd_kafka_conf_t`; the caller owns it until it is handed to `rd_kafka_new`.
    func makeNative() throws(KafkaError) -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            let res = rd_kafka_conf_set(conf, key, value, &errstr, errstr.count)
            if res != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                let detail = errstr.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                throw KafkaError.config("property \(key)=\(value): \(detail)")
            }
        }
        return conf
    }
}
