import Foundation
public import ArgumentParser
import Logging
public import StrataCore
public import StrataKafka

/// Options every command that talks to the stack accepts.
public struct GlobalOptions: ParsableArguments, Sendable {
    public init() {}

    @Option(name: .long, help: "Config file (YAML). Default: $STRATA_CONFIG, else ./strata.yaml if present.")
    public var config: String?

    @Option(name: .long, help: "Kafka bootstrap servers, e.g. 127.0.0.1:9092 (env STRATA_BROKERS).")
    public var brokers: String?

    @Option(name: .long, help: "Redis URL, redis://[user:pass@]host:port[/db] (env STRATA_REDIS_URL).")
    public var redis: String?

    @Option(name: .long, help: "Topology file (env STRATA_TOPOLOGY). Default: ./topology/topology.yaml.")
    public var topology: String?

    @Option(name: [.customShort("X"), .customLong("kafka")], parsing: .unconditionalSingleValue,
            help: ArgumentHelp("A librdkafka property passed through untouched, e.g. -X security.protocol=SASL_SSL (repeatable); prefixed with producer. or consumer. it applies to that client only, e.g. -X consumer.max.poll.interval.ms=120000.",
                               valueName: "key=value"))
    public var kafka: [String] = []

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error (env STRATA_LOG_LEVEL).")
    public var logLevel: String = ProcessInfo.processInfo.environment["STRATA_LOG_LEVEL"] ?? "info"

    @Option(name: .long, help: "Log format: auto (text on a terminal, JSON lines otherwise), json, text.")
    public var logFormat: StrataLogging.Format = .auto

    public func resolve() throws -> StrataConfig {
        var props: [String: String] = [:]
        for kv in kafka {
            guard let eq = kv.firstIndex(of: "="), eq != kv.startIndex else {
                throw ValidationError("-X expects key=value, got \"\(kv)\"")
            }
            props[String(kv[..<eq])] = String(kv[kv.index(after: eq)...])
        }
        StrataLogging.bootstrap(level: Logger.Level(rawValue: logLevel) ?? .info, format: logFormat)
        MetricsRegistry.bootstrap()
        return try StrataConfig.resolve(.init(brokers: brokers, redisURL: redis, topologyPath: topology,
                                              configFile: config, kafka: props))
    }

    public func loadTopology(_ config: StrataConfig) throws -> Topology {
        try Topology.load(path: config.topologyPath ?? Topology.defaultPath())
    }
}

extension StrataLogging.Format: ExpressibleByArgument {}

extension StrataConfig {
    public func producerConfig(clientId: String = "strata") -> KafkaConfig {
        KafkaConfig.producer(bootstrapServers: brokers, clientId: clientId).merging(kafka)
    }
    public func consumerConfig(groupId: String?, clientId: String = "strata") -> KafkaConfig {
        KafkaConfig.consumer(bootstrapServers: brokers, groupId: groupId, clientId: clientId).merging(kafka)
    }
}

/// "500ms", "5s", "2m", "1h", or a plain number of seconds.
public struct DurationArgument: ExpressibleByArgument, Sendable {
    public let duration: Duration
    public var seconds: Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }

    public init(_ duration: Duration) { self.duration = duration }

    public init?(argument: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var text = argument.lowercased()
        var scale = 1.0
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            text.removeLast(suffix.count); scale = factor; break
        }
        guard let v = Double(text), v >= 0 else { return nil }
        duration = .milliseconds(Int64((v * scale * 1000).rounded()))
    }
}
