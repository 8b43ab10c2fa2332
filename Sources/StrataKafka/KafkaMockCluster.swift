internal import CRdKafka
import Synchronization

/// librdkafka's in-process mock cluster, for fault injection: real TCP listeners on loopback that
/// speak the Kafka protocol (produce, fetch, groups, transactions), whose brokers can be taken
/// down, whose partition leaders and coordinators can be moved, and whose next responses can be
/// made errors. Clients connect to `bootstrapServers` like to any cluster. It shows aborted
/// transactions to read_committed readers (as Tansu does). For tests and chaos runs only.
public final class KafkaMockCluster: @unchecked Sendable {
    /// The producer whose handle owns the cluster (it lives as long as this object).
    private let owner: KafkaProducer
    private let cluster: OpaquePointer
    private let lock = Mutex(())

    public let brokerIds: [Int32]
    public let bootstrapServers: String

    public init(brokers: Int = 3) throws(KafkaError) {
        var cfg = KafkaConfig.producer(bootstrapServers: "")
        cfg.properties.removeValue(forKey: "bootstrap.servers")
        cfg["test.mock.num.brokers"] = "\(brokers)"
        owner = try KafkaProducer(config: cfg)
        guard let c = rd_kafka_handle_mock_cluster(owner.client.handle) else {
            throw KafkaError(RD_KAFKA_RESP_ERR__FAIL, operation: "mock cluster", detail: "no mock cluster on the handle")
        }
        cluster = c
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(c))
        brokerIds = (1...Int32(brokers)).map { $0 }
    }

    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws(KafkaError) {
        try check(rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replicationFactor)), "mock topic create")
    }

    /// The broker stops answering (its connections are closed) until `setUp`.
    public func setDown(broker: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_down(cluster, broker), "mock broker down")
    }

    public func setUp(broker: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_up(cluster, broker), "mock broker up")
    }

    /// Moves a partition's leadership (clients learn it from NOT_LEADER answers and metadata).
    public func setLeader(topic: String, partition: Int32, broker: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_partition_set_leader(cluster, topic, partition, broker), "mock set leader")
    }

    /// Moves the group or transaction coordinator for `key` (a group id or transactional id).
    public func setCoordinator(_ kind: CoordinatorKind, key: String, broker: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_coordinator_set(cluster, kind.rawValue, key, broker), "mock coordinator")
    }

    public enum CoordinatorKind: String, Sendable { case group, transaction }

    /// The next `count` requests of API `apiKey` (0 Produce, 1 Fetch, 8 OffsetCommit, 26 EndTxn, …)
    /// to any broker are answered with `error` (e.g. `.requestTimedOut`, `.notLeaderForPartition`).
    public func failNext(apiKey: Int16, count: Int, with error: KafkaError.Code) {
        var errors = [rd_kafka_resp_err_t](repeating: rd_kafka_resp_err_t(rawValue: error.rawValue), count: count)
        lock.withLock { _ in rd_kafka_mock_push_request_errors_array(cluster, apiKey, count, &errors) }
    }

    private func check(_ err: rd_kafka_resp_err_t, _ operation: String) throws(KafkaError) {
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, operation: operation) }
    }
}
