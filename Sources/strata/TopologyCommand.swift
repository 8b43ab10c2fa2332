import ArgumentParser
import StrataCore
import StrataKafka

struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Create and describe the topics declared in topology/.",
        subcommands: [Apply.self, Show.self])

    struct Apply: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create missing topics; report drift (partitions, configs) of existing ones.",
            discussion: "Exits non-zero when a topic cannot be created. Drift is reported, never changed: "
                + "shrinking partitions is impossible and adding them moves keys, so that is an operator's decision.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let config = try global.resolve()
            let topology = try global.loadTopology(config)
            let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": config.brokers]).merging(config.kafka))
            let existing = Dictionary(try admin.listTopics().map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            let missing = topology.topics.filter { existing[$0.name] == nil }
            var failed = 0
            if !missing.isEmpty {
                let results = try admin.createTopics(missing.map {
                    NewTopic(name: $0.name, partitions: $0.partitions, replicationFactor: $0.replicationFactor, configs: $0.brokerConfigs)
                })
                for topic in missing {
                    switch results[topic.name] {
                    case .some(.none): print("created  \(topic.name) (\(topic.partitions) partitions)")
                    case .some(.some(let error)) where error.code == .topicAlreadyExists: print("exists   \(topic.name)")
                    case .some(.some(let error)): print("FAILED   \(topic.name): \(error)"); failed += 1
                    case .none: print("FAILED   \(topic.name): no answer from the broker"); failed += 1
                    }
                }
            }
            for topic in topology.topics {
                guard let live = existing[topic.name] else { continue }
                var drift: [String] = []
                if live.partitions != topic.partitions { drift.append("partitions \(live.partitions) (declared \(topic.partitions))") }
                if let configs = try? admin.describeConfigs(topic: topic.name) {
                    for (name, value) in topic.brokerConfigs.sorted(by: { $0.key < $1.key }) where configs[name] != nil && configs[name] != value {
                        drift.append("\(name)=\(configs[name]!) (declared \(value))")
                    }
                }
                print(drift.isEmpty ? "ok       \(topic.name)" : "DRIFT    \(topic.name): \(drift.joined(separator: "; "))")
            }
            if failed > 0 { throw ExitCode(1) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the declared topology and what the broker has.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Only the declaration; do not ask the broker.") var offline = false

        func run() throws {
            let config = try global.resolve()
            let topology = try global.loadTopology(config)
            var live: [String: TopicMetadata] = [:]
            if !offline {
                let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": config.brokers]).merging(config.kafka))
                live = Dictionary(try admin.listTopics().map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            }
            print("actions: \(topology.actions.joined(separator: ", "))")
            print("content id pattern: \(topology.contentIdPattern)")
            let rows = topology.topics.map { topic -> [String] in
                let state = offline ? "" : (live[topic.name].map { "\($0.partitions) partitions" } ?? "missing")
                return [topic.name, "\(topic.partitions)", topic.key, topic.cleanupPolicy, topic.retentionMs.map { "\($0 / 3_600_000)h" } ?? "-", state]
            }
            print(TextTable.render(header: ["topic", "partitions", "key", "cleanup", "retention", offline ? "" : "broker"], rows: rows))
        }
    }
}
