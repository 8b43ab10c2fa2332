import CRdKafka
import Foundation
import XCTest
@testable import StrataKafka

/// Round trips against the real broker the test command starts (STRATA_TEST_BROKERS).
final class KafkaWrapperTests: XCTestCase {
    let brokers = ProcessInfo.processInfo.environment["STRATA_TEST_BROKERS"] ?? "127.0.0.1:9092"

    func uniqueTopic(_ prefix: String) -> String { "test.\(prefix).\(UUID().uuidString.prefix(8))" }

    func createTopic(_ name: String, partitions: Int = 1) throws {
        let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": brokers]))
        let result = try admin.createTopics([NewTopic(name: name, partitions: partitions)])
        XCTAssertNotNil(result[name], "the broker answered for \(name)")
        if let e = result[name] ?? nil { XCTFail("create \(name): \(e)") }
    }

    /// Reads `topic` from the beginning with a manual assignment until `expected` records or the deadline.
    func readAll(_ topic: String, partitions: Int = 1, expected: Int, isolation: String = "read_committed",
                 idleMs: Int = 3_000) throws -> [(key: [UInt8]?, value: [UInt8], headers: [(String, [UInt8])])] {
        var cfg = KafkaConfig.consumer(bootstrapServers: brokers, groupId: nil)
        cfg["isolation.level"] = isolation
        let consumer = try KafkaConsumer(config: cfg)
        try consumer.assign((0..<partitions).map { TopicPartitionOffset(topic: topic, partition: Int32($0), offset: TopicPartitionOffset.beginning) })
        var out: [(key: [UInt8]?, value: [UInt8], headers: [(String, [UInt8])])] = []
        var lastNew = Date()
        while out.count < expected || Date().timeIntervalSince(lastNew) < 0.5 {
            let batch = try consumer.poll(maxMessages: 500, timeoutMs: 100)
            for m in batch where m.error == nil {
                out.append((m.key.map { Array($0) }, Array(m.value), m.headers))
                lastNew = Date()
            }
            if Date().timeIntervalSince(lastNew) * 1000 > Double(idleMs) { break }
        }
        return out
    }

    func testVersionIsSupported() throws {
        XCTAssertGreaterThanOrEqual(Librdkafka.version, Librdkafka.minimumVersion, Librdkafka.versionString)
        XCTAssertNoThrow(try Librdkafka.requireSupportedVersion())
    }

    func testBadPropertyIsAClearError() {
        XCTAssertThrowsError(try KafkaProducer(config: KafkaConfig(["no.such.property": "1"]))) { error in
            XCTAssertTrue("\(error)".contains("no.such.property"), "\(error)")
        }
    }

    func testPassThroughSecurityPropertiesAreAccepted() throws {
        // librdkafka validates these at configuration time; they must reach it untouched.
        let cfg = KafkaConfig.producer(bootstrapServers: brokers).merging([
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
            "sasl.username": "u", "sasl.password": "p",
        ])
        XCTAssertNoThrow(try KafkaProducer(config: cfg))
        XCTAssertThrowsError(try KafkaProducer(config: cfg.merging(["security.protocol": "NOPE"])))
    }

    func testProduceConsumeRoundTripWithKeysHeadersAndEmptyValue() throws {
        let topic = uniqueTopic("roundtrip")
        try createTopic(topic, partitions: 3)
        let producer = try KafkaProducer(config: .producer(bootstrapServers: brokers))
        for i in 0..<300 {
            try producer.produce(topic: topic, key: Array("k\(i % 7)".utf8), value: Array("value-\(i)".utf8),
                                 headers: i % 100 == 0 ? [("reason", Array("r\(i)".utf8))] : [])
        }
        try producer.produce(topic: topic, key: Array("empty".utf8), value: [])
        try producer.flush()
        XCTAssertEqual(producer.deliveryCounts.delivered, 301)
        XCTAssertEqual(producer.deliveryCounts.failed, 0)

        let got = try readAll(topic, partitions: 3, expected: 301)
        XCTAssertEqual(got.count, 301)
        XCTAssertEqual(Set(got.map { String(decoding: $0.value, as: UTF8.self) }),
                       Set((0..<300).map { "value-\($0)" } + [""]))
        let withHeaders = got.filter { !$0.headers.isEmpty }
        XCTAssertEqual(withHeaders.count, 3)
        XCTAssertTrue(withHeaders.allSatisfy { $0.headers[0].0 == "reason" })
        // Same key, same partition: per-key order is kept.
        let k0 = got.filter { $0.key == Array("k0".utf8) }.map { String(decoding: $0.value, as: UTF8.self) }
        XCTAssertEqual(k0, (0..<300).filter { $0 % 7 == 0 }.map { "value-\($0)" })
    }

    /// read_committed hides a transaction's records until it commits (the last stable offset),
    /// then shows all of them; read_uncommitted shows them at once.
    func testOpenTransactionIsInvisibleToReadCommittedUntilCommit() throws {
        let topic = uniqueTopic("txn")
        try createTopic(topic)
        var cfg = KafkaConfig.producer(bootstrapServers: brokers)
        cfg.transactionalId = "test-txn-\(UUID().uuidString.prefix(8))"
        let producer = try KafkaProducer(config: cfg)
        try producer.initTransactions()
        try producer.beginTransaction()
        for i in 0..<10 { try producer.produce(topic: topic, key: nil, value: Array("txn-\(i)".utf8)) }
        try producer.flush()

        XCTAssertEqual(try readAll(topic, expected: 0, idleMs: 1_500).count, 0, "uncommitted records are hidden")
        XCTAssertEqual(try readAll(topic, expected: 10, isolation: "read_uncommitted").count, 10, "but they are in the log")
        try producer.commitTransaction()
        XCTAssertEqual(try readAll(topic, expected: 10).map { String(decoding: $0.value, as: UTF8.self) },
                       (0..<10).map { "txn-\($0)" })
    }

    /// A producer that outlives its welcome is fenced by its successor (same transactional.id):
    /// the zombie cannot commit, the successor can. (Whether the zombie's records are hidden from
    /// read_committed readers is the broker's part; see the note below.)
    func testSuccessorFencesZombieProducer() throws {
        let topic = uniqueTopic("fenced")
        try createTopic(topic)
        var cfg = KafkaConfig.producer(bootstrapServers: brokers)
        cfg.transactionalId = "test-fenced-\(UUID().uuidString.prefix(8))"
        let zombie = try KafkaProducer(config: cfg)
        try zombie.initTransactions()
        try zombie.beginTransaction()
        for i in 0..<10 { try zombie.produce(topic: topic, key: nil, value: Array("zombie-\(i)".utf8)) }
        try zombie.flush()
        let successor = try KafkaProducer(config: cfg)
        try successor.initTransactions()
        XCTAssertThrowsError(try zombie.commitTransaction(timeoutMs: 10_000), "a fenced producer must not commit")
        try successor.beginTransaction()
        try successor.produce(topic: topic, key: nil, value: Array("successor".utf8))
        try successor.commitTransaction()
        let got = try readAll(topic, expected: 1).map { String(decoding: $0.value, as: UTF8.self) }
        XCTAssertTrue(got.contains("successor"))
    }

    /// Kafka filters an aborted (or fenced) transaction's records for read_committed consumers with
    /// the aborted-transaction ranges of its Fetch responses. Neither Tansu 0.6 nor librdkafka's mock
    /// cluster sends those ranges (checked: both show aborted records), so here an abort is only
    /// checked to complete and leave the producer usable; the invisibility itself needs a full Kafka
    /// broker (docs/exactly-once.md).
    func testAbortCompletesAndTheNextTransactionCommits() throws {
        let topic = uniqueTopic("abort")
        try createTopic(topic)
        var cfg = KafkaConfig.producer(bootstrapServers: brokers)
        cfg.transactionalId = "test-abort-\(UUID().uuidString.prefix(8))"
        let producer = try KafkaProducer(config: cfg)
        try producer.initTransactions()
        try producer.beginTransaction()
        for i in 0..<10 { try producer.produce(topic: topic, key: nil, value: Array("aborted-\(i)".utf8)) }
        try producer.abortTransaction()
        try producer.beginTransaction()
        for i in 0..<5 { try producer.produce(topic: topic, key: nil, value: Array("committed-\(i)".utf8)) }
        try producer.commitTransaction()
        let got = try readAll(topic, expected: 5).map { String(decoding: $0.value, as: UTF8.self) }
        XCTAssertEqual(got.filter { $0.hasPrefix("committed-") }, (0..<5).map { "committed-\($0)" })
    }

    func testConsumerGroupCommitsAndResumes() throws {
        let topic = uniqueTopic("group")
        try createTopic(topic, partitions: 2)
        let producer = try KafkaProducer(config: .producer(bootstrapServers: brokers))
        for i in 0..<100 { try producer.produce(topic: topic, key: Array("\(i)".utf8), value: Array("\(i)".utf8)) }
        try producer.flush()

        let group = "test-group-\(UUID().uuidString.prefix(8))"
        final class Events: @unchecked Sendable { var assigned: [TopicPartitionOffset] = [] }
        let events = Events()
        var firstHalf: [String] = []
        do {
            let consumer = try KafkaConsumer(config: .consumer(bootstrapServers: brokers, groupId: group)) { ev in
                if case .assigned(let p) = ev { events.assigned += p }
            }
            try consumer.subscribe([topic])
            var next: [Int32: Int64] = [:]
            let deadline = Date().addingTimeInterval(30)
            while firstHalf.count < 50 && Date() < deadline {
                for m in try consumer.poll(maxMessages: 50 - firstHalf.count, timeoutMs: 200) where m.error == nil {
                    firstHalf.append(String(decoding: m.value, as: UTF8.self))
                    next[m.partition] = m.offset + 1
                }
            }
            try consumer.commit(next.map { TopicPartitionOffset(topic: topic, partition: $0.key, offset: $0.value) })
            consumer.close()
        }
        XCTAssertEqual(firstHalf.count, 50)
        XCTAssertEqual(Set(events.assigned.map(\.partition)), [0, 1], "the rebalance callback saw both partitions")

        let consumer = try KafkaConsumer(config: .consumer(bootstrapServers: brokers, groupId: group))
        try consumer.subscribe([topic])
        var rest: [String] = []
        let deadline = Date().addingTimeInterval(30)
        while rest.count < 50 && Date() < deadline {
            for m in try consumer.poll(maxMessages: 100, timeoutMs: 200) where m.error == nil {
                rest.append(String(decoding: m.value, as: UTF8.self))
            }
        }
        XCTAssertEqual(Set(firstHalf + rest), Set((0..<100).map { "\($0)" }), "committed offsets resume with no loss")
        XCTAssertEqual(firstHalf.count + rest.count, 100, "and no record read twice")
    }

    func testPauseStopsDeliveryAndResumeRestartsIt() throws {
        let topic = uniqueTopic("pause")
        try createTopic(topic)
        let producer = try KafkaProducer(config: .producer(bootstrapServers: brokers))
        for i in 0..<20 { try producer.produce(topic: topic, key: nil, value: Array("\(i)".utf8)) }
        try producer.flush()
        let consumer = try KafkaConsumer(config: .consumer(bootstrapServers: brokers, groupId: nil))
        let tp = TopicPartitionOffset(topic: topic, partition: 0, offset: TopicPartitionOffset.beginning)
        try consumer.assign([tp])
        try consumer.pause([tp])
        var seen = 0
        for _ in 0..<5 { seen += try consumer.poll(maxMessages: 100, timeoutMs: 100).filter { $0.error == nil }.count }
        XCTAssertEqual(seen, 0, "a paused partition delivers nothing")
        try consumer.resume([tp])
        let deadline = Date().addingTimeInterval(15)
        while seen < 20 && Date() < deadline { seen += try consumer.poll(maxMessages: 100, timeoutMs: 100).filter { $0.error == nil }.count }
        XCTAssertEqual(seen, 20)
    }

    func testAdminReportsExistingTopicAndMetadata() throws {
        let topic = uniqueTopic("admin")
        try createTopic(topic, partitions: 4)
        let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": brokers]))
        let again = try admin.createTopics([NewTopic(name: topic, partitions: 4)])
        XCTAssertEqual((again[topic] ?? nil)?.code, RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS.rawValue)
        let md = try admin.listTopics().first { $0.name == topic }
        XCTAssertEqual(md?.partitions, 4)
    }
}

/// Broker faults, injected with librdkafka's mock cluster.
final class KafkaFaultTests: XCTestCase {
    func testDeliveryFailureSurfacesAsSwiftError() throws {
        var cfg = KafkaConfig.producer(bootstrapServers: "")
        cfg.properties.removeValue(forKey: "bootstrap.servers")
        cfg["test.mock.num.brokers"] = "1"
        cfg["enable.idempotence"] = "false"
        cfg["message.timeout.ms"] = "2000"
        cfg["retries"] = "0"
        let producer = try KafkaProducer(config: cfg)
        let mock = try XCTUnwrap(rd_kafka_handle_mock_cluster(producer.client.handle))
        XCTAssertEqual(rd_kafka_mock_topic_create(mock, "faulty", 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR)
        // Produce works, then the broker refuses the next produce requests.
        try producer.produce(topic: "faulty", key: nil, value: Array("ok".utf8))
        try producer.flush(timeoutMs: 10_000)
        var errors = [rd_kafka_resp_err_t](repeating: RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, count: 5)
        rd_kafka_mock_push_request_errors_array(mock, 0 /* Produce */, errors.count, &errors)
        try producer.produce(topic: "faulty", key: nil, value: Array("refused".utf8))
        XCTAssertThrowsError(try producer.flush(timeoutMs: 10_000)) { error in
            let e = error as? KafkaError
            XCTAssertEqual(e?.code, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE.rawValue, "\(error)")
        }
        XCTAssertEqual(producer.deliveryCounts.delivered, 1)
        XCTAssertEqual(producer.deliveryCounts.failed, 1)
    }

    func testBrokerDownTimesOutThenRecovers() throws {
        var cfg = KafkaConfig.producer(bootstrapServers: "")
        cfg.properties.removeValue(forKey: "bootstrap.servers")
        cfg["test.mock.num.brokers"] = "1"
        let producer = try KafkaProducer(config: cfg)
        let mock = try XCTUnwrap(rd_kafka_handle_mock_cluster(producer.client.handle))
        XCTAssertEqual(rd_kafka_mock_topic_create(mock, "t", 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR)
        try producer.produce(topic: "t", key: nil, value: Array("first".utf8))
        try producer.flush(timeoutMs: 10_000)
        XCTAssertEqual(rd_kafka_mock_broker_set_down(mock, 1), RD_KAFKA_RESP_ERR_NO_ERROR)
        try producer.produce(topic: "t", key: nil, value: Array("while down".utf8))
        XCTAssertThrowsError(try producer.flush(timeoutMs: 1_000)) { error in
            XCTAssertEqual((error as? KafkaError)?.code, RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue, "\(error)")
        }
        XCTAssertEqual(rd_kafka_mock_broker_set_up(mock, 1), RD_KAFKA_RESP_ERR_NO_ERROR)
        try producer.flush(timeoutMs: 15_000)
        XCTAssertEqual(producer.deliveryCounts.delivered, 2, "the idempotent producer delivered once the broker returned")
    }
}
