import Foundation
import StrataCore
import StrataGen
import StrataKafka
import StrataTestSupport
import XCTest

/// An isolated corner of the shared test broker: every topic of the topology under a unique prefix.
struct SplitSandbox {
    let brokers = ProcessInfo.processInfo.environment["STRATA_TEST_BROKERS"] ?? "127.0.0.1:9092"
    let prefix = "t\(UUID().uuidString.prefix(8).lowercased())."
    let topology: Topology
    let partitions: Int

    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
    static var topologyPath: String { packageRoot.appendingPathComponent("topology/topology.yaml").path }

    init(partitions: Int = 4) throws {
        topology = try Topology.load(path: Self.topologyPath)
        self.partitions = partitions
        let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": brokers]))
        let results = try admin.createTopics(topology.topics.map { NewTopic(name: prefix + $0.name, partitions: partitions) })
        for (_, error) in results { if let error { throw error } }
    }

    func produce(_ lines: [[UInt8]]) throws {
        let producer = try KafkaProducer(config: .producer(bootstrapServers: brokers))
        let t = producer.topic(prefix + Topology.raw)
        for (i, line) in lines.enumerated() {
            try line.withUnsafeBytes { try producer.produce(to: t, key: nil, value: $0) }
            if i % 10_000 == 0 { producer.poll() }
        }
        try producer.flush(timeoutMs: 120_000)
    }

    struct Record { let value: [UInt8]; let key: [UInt8]?; let headers: [(String, [UInt8])] }

    /// Everything committed in `topic` (read_committed), read until `idle` passes with nothing new.
    func readAll(_ topic: String, idle: TimeInterval = 2) throws -> [Record] {
        let consumer = try KafkaConsumer(config: .consumer(bootstrapServers: brokers, groupId: nil))
        try consumer.assign((0..<partitions).map { TopicPartitionOffset(topic: prefix + topic, partition: Int32($0), offset: TopicPartitionOffset.beginning) })
        var out: [Record] = []
        var last = Date()
        while Date().timeIntervalSince(last) < idle {
            let batch = try consumer.poll(maxMessages: 5_000, timeoutMs: 100)
            for m in batch where m.error == nil {
                out.append(Record(value: Array(m.value), key: m.key.map { Array($0) }, headers: m.headers))
                last = Date()
            }
        }
        return out
    }

    /// Every micro-queue's records, by action.
    func readMicroQueues() throws -> [String: [Record]] {
        var out: [String: [Record]] = [:]
        for a in topology.actions { out[a] = try readAll(Topology.microQueue(for: a), idle: 1) }
        return out
    }
}

/// Generated lines and the generator's own accounting.
func generate(_ n: Int, seed: UInt64 = 7, shares: (EventWorkload) -> EventWorkload = { $0 }) -> (lines: [[UInt8]], kinds: [GeneratedKind], stats: GeneratorStats) {
    var w = EventWorkload()
    w.seed = seed
    w.contents = 2_000
    w.users = 20_000
    w.invalidIdShare = 0.02; w.malformedShare = 0.02; w.duplicateShare = 0.02
    w = shares(w)
    var gen = EventGenerator(w)
    var lines: [[UInt8]] = [], kinds: [GeneratedKind] = []
    var line: [UInt8] = []
    for _ in 0..<n {
        line.removeAll(keepingCapacity: true)
        kinds.append(gen.next(into: &line))
        lines.append(line)
    }
    return (lines, kinds, gen.stats)
}

var strataBinary: String { StrataTestSupport.strataBinary(packageRoot: SplitSandbox.packageRoot) }
