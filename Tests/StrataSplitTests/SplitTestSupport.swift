import Foundation
import StrataCore
import StrataGen
import StrataKafka
import StrataTestSupport
import XCTest

/// An isolated corner of the shared test broker: every topic of the topology under a unique prefix.
struct SplitSandbox {
    let brokers: String
    let prefix = "t\(UUID().uuidString.prefix(8).lowercased())."
    let topology: Topology
    let partitions: Int

    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
    static var topologyPath: String { packageRoot.appendingPathComponent("topology/topology.yaml").path }

    init(partitions: Int = 4) throws {
        brokers = try TestEnvironment.brokers
        topology = try Topology.load(path: Self.topologyPath)
        self.partitions = partitions
        let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": brokers]))
        let results = try admin.createTopics(topology.topics.map { NewTopic(name: prefix + $0.name, partitions: partitions) })
        for (_, error) in results { if let error { throw error } }
    }

    /// Produces unkeyed lines; `partition(i)` pins line i to a partition (nil: the client picks).
    func produce(_ lines: [[UInt8]], partition: (Int) -> Int32? = { _ in nil }) throws {
        let producer = try KafkaProducer(config: .producer(bootstrapServers: brokers))
        let t = producer.topic(prefix + Topology.raw)
        for (i, line) in lines.enumerated() {
            try line.withUnsafeBytes { try producer.produce(to: t, partition: partition(i) ?? -1, key: nil, value: $0) }
            if i % 10_000 == 0 { producer.poll() }
        }
        try producer.flush(timeoutMs: 120_000)
    }

    struct Record {
        let value: [UInt8]
        let key: [UInt8]?
        let headers: [(String, [UInt8])]
        let partition: Int32
        /// A split watermark marker (null key, `strata.wm` header), not an event.
        var isMarker: Bool { key == nil && headers.contains { $0.0 == SourceProgress.markerHeader } }
        var stamp: SourceProgress.Stamp? {
            headers.last { $0.0 == SourceProgress.stampHeader }.flatMap { h in h.1.withUnsafeBytes { SourceProgress.Stamp($0) } }
        }
    }

    /// Everything committed in `topic` (read_committed) before the call, markers included: an end
    /// marker is appended to every partition and the topic is read until each comes back, so the
    /// read is complete without waiting for silence. Fails after `timeout`.
    func readAll(_ topic: String, includeMarkers: Bool = false, timeout: Duration = .seconds(120)) throws -> [Record] {
        try readToEndMarkers(brokers: brokers, topic: prefix + topic, partitions: partitions, timeout: timeout)
            .map { Record(value: $0.value, key: $0.key, headers: $0.headers, partition: $0.partition) }
            .filter { includeMarkers || !$0.isMarker }
    }

    /// A reader of `group`'s committed offsets (it never joins the group).
    func offsetReader(group: String) throws -> KafkaConsumer {
        try KafkaConsumer(config: .consumer(bootstrapServers: brokers, groupId: group))
    }

    /// Sum of the group's committed offsets on ods.raw (records the split has committed).
    func committedTotal(_ consumer: KafkaConsumer) throws -> Int {
        let offsets = try consumer.committed((0..<partitions).map {
            TopicPartitionOffset(topic: prefix + Topology.raw, partition: Int32($0), offset: TopicPartitionOffset.invalid)
        })
        return offsets.reduce(0) { $0 + max(0, Int($1.offset)) }
    }

    /// Every micro-queue's events (markers left out), by action.
    func readMicroQueues() throws -> [String: [Record]] {
        var out: [String: [Record]] = [:]
        for action in topology.actions { out[action] = try readAll(Topology.microQueue(for: action)) }
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
