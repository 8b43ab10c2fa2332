internal import CRdKafka
public import Logging

/// A topic to create.
public struct NewTopic: Sendable, Equatable {
    public var name: String
    public var partitions: Int
    public var replicationFactor: Int
    public var configs: [String: String]

    public init(name: String, partitions: Int, replicationFactor: Int = 1, configs: [String: String] = [:]) {
        self.name = name; self.partitions = partitions; self.replicationFactor = replicationFactor; self.configs = configs
    }
}

/// Topic administration over librdkafka's Admin API.
public final class KafkaAdmin: @unchecked Sendable {
    let client: KafkaClient

    public init(config: KafkaConfig, logger: Logger = Logger(label: "strata.kafka.admin")) throws(KafkaError) {
        client = try KafkaClient(type: RD_KAFKA_PRODUCER, config: config, logger: logger)
    }

    /// Creates `topics`; returns each topic's outcome (nil = created). An existing topic comes back
    /// as TOPIC_ALREADY_EXISTS, which callers usually treat as success.
    public func createTopics(_ topics: [NewTopic], timeoutMs: Int32 = 30_000) throws(KafkaError) -> [String: KafkaError?] {
        guard !topics.isEmpty else { return [:] }
        var errstr = [CChar](repeating: 0, count: 512)
        var natives: [OpaquePointer?] = []
        defer { for n in natives { rd_kafka_NewTopic_destroy(n) } }
        for t in topics {
            guard let n = rd_kafka_NewTopic_new(t.name, Int32(t.partitions), Int32(t.replicationFactor), &errstr, errstr.count) else {
                throw KafkaError.config("topic \(t.name): \(errstr.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })")
            }
            natives.append(n)
            for (k, v) in t.configs.sorted(by: { $0.key < $1.key }) {
                try check(rd_kafka_NewTopic_set_config(n, k, v), "topic \(t.name) config \(k)")
            }
        }
        let queue = rd_kafka_queue_new(client.handle)
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(client.handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, timeoutMs, &errstr, errstr.count)
        _ = rd_kafka_AdminOptions_set_request_timeout(options, timeoutMs, &errstr, errstr.count)
        natives.withUnsafeMutableBufferPointer { buf in
            rd_kafka_CreateTopics(client.handle, buf.baseAddress, buf.count, options, queue)
        }
        guard let event = rd_kafka_queue_poll(queue, timeoutMs + 5_000) else {
            throw KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, operation: "create_topics")
        }
        defer { rd_kafka_event_destroy(event) }
        let err = rd_kafka_event_error(event)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(err, operation: "create_topics", detail: rd_kafka_event_error_string(event).map { String(cString: $0) })
        }
        let result = rd_kafka_event_CreateTopics_result(event)
        var n = 0
        let results = rd_kafka_CreateTopics_result_topics(result, &n)
        var out: [String: KafkaError?] = [:]
        for i in 0..<n {
            let r = results![i]
            let name = String(cString: rd_kafka_topic_result_name(r))
            let e = rd_kafka_topic_result_error(r)
            out[name] = e == RD_KAFKA_RESP_ERR_NO_ERROR ? nil
                : KafkaError(e, operation: "create topic \(name)", detail: rd_kafka_topic_result_error_string(r).map { String(cString: $0) })
        }
        return out
    }

    /// Every topic in the cluster with its partition count.
    public func listTopics(timeoutMs: Int32 = 10_000) throws(KafkaError) -> [TopicMetadata] {
        try client.metadata(topic: nil, timeoutMs: timeoutMs)
    }

    /// Topic configs as the broker reports them (DescribeConfigs). Brokers that do not implement
    /// it make this throw; callers report config drift as unknown then.
    public func describeConfigs(topic: String, timeoutMs: Int32 = 10_000) throws(KafkaError) -> [String: String] {
        var errstr = [CChar](repeating: 0, count: 512)
        let resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic)
        defer { rd_kafka_ConfigResource_destroy(resource) }
        let queue = rd_kafka_queue_new(client.handle)
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(client.handle, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_request_timeout(options, timeoutMs, &errstr, errstr.count)
        var resources: [OpaquePointer?] = [resource]
        resources.withUnsafeMutableBufferPointer { buf in
            rd_kafka_DescribeConfigs(client.handle, buf.baseAddress, 1, options, queue)
        }
        guard let event = rd_kafka_queue_poll(queue, timeoutMs + 5_000) else {
            throw KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, operation: "describe_configs")
        }
        defer { rd_kafka_event_destroy(event) }
        let err = rd_kafka_event_error(event)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(err, operation: "describe_configs", detail: rd_kafka_event_error_string(event).map { String(cString: $0) })
        }
        let result = rd_kafka_event_DescribeConfigs_result(event)
        var n = 0
        guard let res = rd_kafka_DescribeConfigs_result_resources(result, &n), n > 0, let r = res[0] else { return [:] }
        let rerr = rd_kafka_ConfigResource_error(r)
        if rerr != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(rerr, operation: "describe_configs \(topic)", detail: rd_kafka_ConfigResource_error_string(r).map { String(cString: $0) })
        }
        var cnt = 0
        let entries = rd_kafka_ConfigResource_configs(r, &cnt)
        var out: [String: String] = [:]
        for i in 0..<cnt {
            guard let e = entries?[i] else { continue }
            out[String(cString: rd_kafka_ConfigEntry_name(e))] = rd_kafka_ConfigEntry_value(e).map { String(cString: $0) } ?? ""
        }
        return out
    }
}
