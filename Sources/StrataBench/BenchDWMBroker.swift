import ArgumentParser
import Foundation
import StrataCLI
import StrataCore
import StrataDims
import StrataGen
import StrataJobs
import StrataKafka
import StrataRedis
import StrataSplit
import StrataDWM

/// `strata bench dwm --broker-events N`: the dwm job through the broker beside a copy baseline.
extension BenchCommand.DWM {
    func broker(config: StrataConfig, topology: Topology) throws {
        let prefix = "bench-\(UUID().uuidString.prefix(8))."
        let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": config.brokers]).merging(config.kafka))
        var topics = topology.topics.map { NewTopic(name: prefix + $0.name, partitions: $0.partitions) }
        topics.append(NewTopic(name: prefix + "copy", partitions: 4))
        for (name, error) in try admin.createTopics(topics) { if let error { throw ValidationError("cannot create \(name): \(error)") } }

        // Dimensions of the workload in a temporary SQLite store; Redis under a fresh key prefix.
        let workload = EventWorkload()
        let gen = DimensionGenerator(contents: workload.contents, users: workload.users, seed: workload.seed)
        let storePath = NSTemporaryDirectory() + "strata-bench-dwm-\(prefix)db"
        defer { try? FileManager.default.removeItem(atPath: storePath) }
        let store = try DimensionStoreFactory.open("sqlite:" + storePath)
        try store.migrate()
        try store.upsert(contents: gen.allContents())
        try store.upsert(users: gen.allUsers())
        var cc = DimensionCacheConfig()
        cc.keyPrefix = "bench:\(prefix)"
        cc.redisTTL = StaggeredTTL(baseSeconds: 600, jitter: 0.2)    // bench keys expire on their own
        var rc = try RedisConfig(url: config.redisURL)
        rc.maxAttempts = 2
        let cache = try DimensionCache(store: store, redisConfig: rc, config: cc)

        // The micro-queues, filled by the split job (not timed).
        let (arena, offsets) = BenchCommand.Split.generate(brokerEvents, actions: topology.actions)
        let producer = try KafkaProducer(config: config.producerConfig(clientId: "strata-bench"))
        let raw = producer.topic(prefix + Topology.raw)
        try arena.withUnsafeBytes { src in
            for i in 0..<(offsets.count - 1) {
                try producer.produce(to: raw, key: nil, value: UnsafeRawBufferPointer(rebasing: src[offsets[i]..<offsets[i + 1]]))
                if i % 10_000 == 0 { producer.poll() }
            }
        }
        try producer.flush(timeoutMs: 300_000)
        var splitOptions = SplitJob.Options(brokers: config.brokers)
        splitOptions.kafka = config.kafka; splitOptions.topicPrefix = prefix; splitOptions.groupId = prefix + "split"; splitOptions.instanceId = prefix + "split"
        splitOptions.untilIdle = .seconds(3)
        let split = try SplitJob(options: splitOptions, topology: topology)
        try split.run()
        let routed = split.stats.routedTotal
        print("{\"bench\":\"dwm.broker.load\",\"events\":\(brokerEvents),\"routed_to_micro_queues\":\(routed)}")

        let queues = topology.actions.map { prefix + Topology.microQueue(for: $0) }
        let copy = try copyLoop(config: config, from: queues, to: prefix + "copy", group: prefix + "copy", expected: routed)

        var dwmOptions = DWMJob.Options(brokers: config.brokers)
        dwmOptions.kafka = config.kafka; dwmOptions.topicPrefix = prefix; dwmOptions.groupId = prefix + "dwm"; dwmOptions.instanceId = prefix + "dwm"
        dwmOptions.untilIdle = .seconds(3)
        dwmOptions.earlyIntervalMs = earlyIntervalMs
        let job = DWMJob(options: dwmOptions, topology: topology, cache: cache)
        try job.run()
        guard let first = job.firstRecordAt, let last = job.lastRecordAt, let done = job.lastCommitAt,
              job.stats.accounting.consumed == routed else {
            throw ValidationError("dwm consumed \(job.stats.accounting.consumed) of \(routed)")
        }
        let dwmRate = Double(routed) / (last - first).seconds
        let flush = (done - last).seconds - 3     // the idle wait is not work
        let stats = job.stats
        print("{\"bench\":\"dwm.broker\",\"events\":\(routed),\"copy_baseline_events_per_s\":\(Int(copy)),\"dwm_events_per_s\":\(Int(dwmRate)),"
              + "\"dwm_over_baseline\":\(String(format: "%.3f", dwmRate / copy)),\"final_flush_s\":\(String(format: "%.2f", flush)),"
              + "\"dwm_with_flush_events_per_s\":\(Int(Double(routed) / ((last - first).seconds + flush))),"
              + "\"dwm_rows\":\(stats.dwmRows),\"dws_rows\":\(stats.dwsRows),\"transactions\":\(stats.transactions),\"balanced\":\(stats.accounting.isBalanced)}")
    }

    /// The baseline: the same micro-queues consumed and copied to one topic by the same kind of loop
    /// as the dwm job (one transaction per early-revision interval with the consumer positions).
    /// Events per second from the first record to the last.
    private func copyLoop(config: StrataConfig, from topics: [String], to target: String, group: String, expected: Int) throws -> Double {
        var pcfg = config.producerConfig(clientId: "strata-bench-copy")
        pcfg.transactionalId = group
        var ccfg = config.consumerConfig(groupId: group, clientId: "strata-bench-copy")
        ccfg["partition.assignment.strategy"] = "range"
        let producer = try KafkaProducer(config: pcfg)
        let consumer = try KafkaConsumer(config: ccfg)
        defer { consumer.close() }
        try producer.initTransactions()
        try consumer.subscribe(topics)
        let out = producer.topic(target)
        var positions: [String: TopicPartitionOffset] = [:]
        var copied = 0
        var first: ContinuousClock.Instant?, last = ContinuousClock.now, lastCommit = ContinuousClock.now
        var open = false
        func commit() throws {
            guard open else { return }
            try producer.sendOffsets(Array(positions.values), consumer: consumer)
            try producer.commitTransaction()
            open = false
            lastCommit = .now
        }
        while copied < expected || open {
            let batch = try consumer.poll(maxMessages: 10_000, timeoutMs: 100)
            for message in batch where message.error == nil {
                if !open { try producer.beginTransaction(); open = true }
                try producer.produce(to: out, key: message.key, value: message.value, copy: true)
                positions["\(message.topic)|\(message.partition)"] = TopicPartitionOffset(topic: message.topic, partition: message.partition, offset: message.offset + 1)
                copied += 1
                if first == nil { first = .now }
                last = .now
            }
            if copied >= expected || ContinuousClock.now - lastCommit >= .milliseconds(earlyIntervalMs) { try commit() }
            if first != nil, ContinuousClock.now - last > .seconds(30) { throw ValidationError("copy baseline stalled at \(copied) of \(expected)") }
        }
        guard let first else { throw ValidationError("copy baseline read nothing") }
        return Double(copied) / (last - first).seconds
    }
}
