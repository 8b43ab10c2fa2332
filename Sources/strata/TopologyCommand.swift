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
            let existing = Dictionary(try admin.listTopics().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            let missing = topology.topics.filter { existing[$0.name] == nil }
            var failed = 0
            if !missing.isEmpty {
                let results = try admin.createTopics(missing.map {
                    NewTopic(name: $0.name, partitions: $0.partitions, replicationFactor: $0.replicationFactor, configs: $0.brokerConfigs)
                })
                for t in missing {
                    switch results[t.name] {
                    case .some(.none): print("created  \(t.name) (\(t.partitions) partitions)")
                    case .some(.some(let e)) where e.code == .topicAlreadyExists: print("exists   \(t.name)")
                    case .some(.some(let e)): print("FAILED   \(t.name): \(e)"); failed += 1
                    case .none: print("FAILED   \(t.name): no answer from the broker"); failed += 1
                    }
                }
            }
            for t in topology.topics {
                guard let live = existing[t.name] else { continue }
                var drift: [String] = []
                if live.partitions != t.partitions { drift.append("partitions \(live.partitions) (declared \(t.partitions))") }
                if let configs = try? admin.describeConfigs(topic: t.name) {
                    for (k, v) in t.brokerConfigs.sorted(by: { $0.key < $1.key }) where configs[k] != nil && configs[k] != v {
                        drift.append("\(k)=\(configs[k]!) (declared \(v))")
                    }
                }
                print(drift.isEmpty ? "ok       \(t.name)" : "DRIFT    \(t.name): \(drift.joined(separator: "; "))")
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
                live = Dictionary(try admin.listTopics().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            }
            print("actions: \(topology.actions.joined(separator: ", "))")
            print("content id pattern: \(topology.contentIdPattern)")
            let rows = topology.topics.map { t -> [String] in
                let state = offline ? "" : (live[t.name].map { "\($0.partitions) partitions" } ?? "missing")
                return [t.name, "\(t.partitions)", t.key, t.cleanupPolicy, t.retentionMs.map { "\($0 / 3_600_000)h" } ?? "-", state]
            }
            print(TextTable.render(header: ["topic", "partitions", "key", "cleanup", "retention", offline ? "" : "broker"], rows: rows))
        }
    }
}
