public import Foundation
import Yams

/// Where every command gets its addresses. Precedence, per setting:
/// flag > environment > config file > default.
///
/// Environment: STRATA_BROKERS, STRATA_REDIS_URL, STRATA_STORE, STRATA_TOPOLOGY, STRATA_CONFIG, and
/// STRATA_KAFKA_<PROP> (rest lower-cased, `_` -> `.`: STRATA_KAFKA_SECURITY_PROTOCOL -> security.protocol).
/// Config file: `--config` flag, else $STRATA_CONFIG, else ./strata.yaml if it exists. YAML keys:
/// `brokers` (string or list), `redis`, `store`, `topology`, `kafka` (mapping of librdkafka properties).
public struct StrataConfig: Sendable, Equatable {
    public var brokers: String = "127.0.0.1:9092"
    public var redisURL: String = "redis://127.0.0.1:6379"
    public var store: String = "sqlite:data/strata.db"
    public var topologyPath: String? = nil
    /// librdkafka pass-through properties (security.protocol, sasl.*, ssl.* ...).
    public var kafka: [String: String] = [:]
    /// For each setting, where it came from: "flag", "env", "file <path>" or "default".
    /// Keys: "brokers", "redis", "store", "topology", and "kafka.<property>" for each kafka property.
    public var sources: [String: String] = StrataConfig.defaultSources
    /// The config file that was read, if any.
    public var configFile: String? = nil

    public static let defaultSources: [String: String] = [
        "brokers": "default", "redis": "default", "store": "default", "topology": "default",
    ]

    public init() {}

    public struct Overrides: Sendable {
        public var brokers: String?
        public var redisURL: String?
        public var store: String?
        public var topologyPath: String?
        public var configFile: String?
        public var kafka: [String: String] = [:]

        public init(brokers: String? = nil, redisURL: String? = nil, store: String? = nil,
                    topologyPath: String? = nil, configFile: String? = nil, kafka: [String: String] = [:]) {
            self.brokers = brokers
            self.redisURL = redisURL
            self.store = store
            self.topologyPath = topologyPath
            self.configFile = configFile
            self.kafka = kafka
        }
    }

    /// Resolves the configuration. `workingDirectory` is where `strata.yaml` is looked for when no
    /// file is named (tests pass a temporary directory).
    public static func resolve(
        _ overrides: Overrides = .init(),
        environment: [String: String] = ProcessInfo.processInfo.environment,
        workingDirectory: String = FileManager.default.currentDirectoryPath
    ) throws -> StrataConfig {
        // Empty environment values count as unset, so `STRATA_BROKERS= strata …` falls back.
        func env(_ key: String) -> String? {
            guard let v = environment[key], !v.isEmpty else { return nil }
            return v
        }

        var config = StrataConfig()

        // Lowest precedence first; each layer overwrites what it sets.
        if let file = try locateFile(overrides.configFile, env("STRATA_CONFIG"), workingDirectory: workingDirectory) {
            let values = try ConfigFile.load(path: file.path, readPath: file.readPath)
            let src = "file \(file.path)"
            config.configFile = file.path
            if let v = values.brokers { config.brokers = v; config.sources["brokers"] = src }
            if let v = values.redis { config.redisURL = v; config.sources["redis"] = src }
            if let v = values.store { config.store = v; config.sources["store"] = src }
            if let v = values.topology { config.topologyPath = v; config.sources["topology"] = src }
            for (k, v) in values.kafka { config.kafka[k] = v; config.sources["kafka." + k] = src }
        }

        if let v = env("STRATA_BROKERS") { config.brokers = v; config.sources["brokers"] = "env" }
        if let v = env("STRATA_REDIS_URL") { config.redisURL = v; config.sources["redis"] = "env" }
        if let v = env("STRATA_STORE") { config.store = v; config.sources["store"] = "env" }
        if let v = env("STRATA_TOPOLOGY") { config.topologyPath = v; config.sources["topology"] = "env" }
        let prefix = "STRATA_KAFKA_"
        for (key, value) in environment where key.hasPrefix(prefix) && key.count > prefix.count && !value.isEmpty {
            let prop = String(key.dropFirst(prefix.count)).lowercased().replacingOccurrences(of: "_", with: ".")
            config.kafka[prop] = value
            config.sources["kafka." + prop] = "env"
        }

        if let v = overrides.brokers { config.brokers = v; config.sources["brokers"] = "flag" }
        if let v = overrides.redisURL { config.redisURL = v; config.sources["redis"] = "flag" }
        if let v = overrides.store { config.store = v; config.sources["store"] = "flag" }
        if let v = overrides.topologyPath { config.topologyPath = v; config.sources["topology"] = "flag" }
        for (k, v) in overrides.kafka { config.kafka[k] = v; config.sources["kafka." + k] = "flag" }

        if config.brokers.trimmingCharacters(in: .whitespaces).isEmpty {
            throw StrataConfigError.invalidValue(key: "brokers", source: config.sources["brokers"] ?? "", reason: "empty broker list")
        }
        return config
    }

    /// `(path as named, path to read)`; nil when no file is named and ./strata.yaml does not exist.
    private static func locateFile(_ flag: String?, _ env: String?, workingDirectory: String) throws
        -> (path: String, readPath: String)? {
        func absolute(_ p: String) -> String {
            p.hasPrefix("/") ? p : (workingDirectory as NSString).appendingPathComponent(p)
        }
        if let named = flag ?? env {
            // A file the user named explicitly must exist: silently using defaults would hide a typo.
            guard FileManager.default.fileExists(atPath: absolute(named)) else {
                throw StrataConfigError.fileNotFound(path: named)
            }
            return (named, absolute(named))
        }
        let implicit = absolute("strata.yaml")
        return FileManager.default.fileExists(atPath: implicit) ? ("strata.yaml", implicit) : nil
    }

    /// Human-readable listing for `strata config show` and start-up logs; secrets are masked.
    public func describe(redactSecrets: Bool = true) -> String {
        var lines = [
            "brokers   = \(brokers)  (\(sources["brokers"] ?? "default"))",
            "redis     = \(redisURL)  (\(sources["redis"] ?? "default"))",
            "store     = \(store)  (\(sources["store"] ?? "default"))",
            "topology  = \(topologyPath ?? "-")  (\(sources["topology"] ?? "default"))",
        ]
        for k in kafka.keys.sorted() {
            let secret = k.contains("password") || k.contains("secret") || k.hasSuffix(".key.pem")
            let v = redactSecrets && secret ? "******" : kafka[k]!
            lines.append("kafka.\(k) = \(v)  (\(sources["kafka." + k] ?? "?"))")
        }
        return lines.joined(separator: "\n")
    }
}

public enum StrataConfigError: Error, Equatable, CustomStringConvertible {
    case fileNotFound(path: String)
    case unreadable(path: String, reason: String)
    case unknownKey(key: String, path: String)
    case invalidValue(key: String, source: String, reason: String)

    public var description: String {
        switch self {
        case .fileNotFound(let p): return "config file not found: \(p)"
        case .unreadable(let p, let r): return "cannot read config file \(p): \(r)"
        case .unknownKey(let k, let p):
            return "unknown key '\(k)' in config file \(p) (known keys: \(ConfigFile.knownKeys.joined(separator: ", ")))"
        case .invalidValue(let k, let s, let r): return "invalid value for '\(k)' (\(s)): \(r)"
        }
    }
}

/// The YAML config file. Scalars are read as their literal text (not YAML-typed), so values such as
/// `sasl.password: 0123` or `1:20` keep their exact spelling.
enum ConfigFile {
    static let knownKeys = ["brokers", "redis", "store", "topology", "kafka"]

    struct Values {
        var brokers: String?
        var redis: String?
        var store: String?
        var topology: String?
        var kafka: [String: String] = [:]
    }

    static func load(path: String, readPath: String) throws -> Values {
        let text: String
        do {
            text = try String(contentsOfFile: readPath, encoding: .utf8)
        } catch {
            throw StrataConfigError.unreadable(path: path, reason: error.localizedDescription)
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw StrataConfigError.unreadable(path: path, reason: "\(error)")
        }
        var values = Values()
        guard let root else { return values }          // empty file: nothing set
        guard let mapping = root.mapping else {
            throw StrataConfigError.unreadable(path: path, reason: "top level must be a mapping of settings")
        }
        let src = "file \(path)"
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.scalar?.string else {
                throw StrataConfigError.unreadable(path: path, reason: "keys must be plain strings")
            }
            switch key {
            case "brokers":
                if let seq = valueNode.sequence {
                    let list = try seq.map { try scalarText($0, key: "brokers", source: src) }
                    guard !list.isEmpty else {
                        throw StrataConfigError.invalidValue(key: key, source: src, reason: "empty broker list")
                    }
                    values.brokers = list.joined(separator: ",")
                } else {
                    values.brokers = try scalarText(valueNode, key: key, source: src)
                }
            case "redis": values.redis = try scalarText(valueNode, key: key, source: src)
            case "store": values.store = try scalarText(valueNode, key: key, source: src)
            case "topology": values.topology = try scalarText(valueNode, key: key, source: src)
            case "kafka":
                if valueNode.null != nil { continue }   // `kafka:` with nothing under it
                guard let props = valueNode.mapping else {
                    throw StrataConfigError.invalidValue(key: key, source: src,
                                                         reason: "expected a mapping of librdkafka properties")
                }
                for (pk, pv) in props {
                    guard let prop = pk.scalar?.string, !prop.isEmpty else {
                        throw StrataConfigError.invalidValue(key: key, source: src, reason: "property names must be strings")
                    }
                    values.kafka[prop] = try scalarText(pv, key: "kafka." + prop, source: src)
                }
            default:
                throw StrataConfigError.unknownKey(key: key, path: path)
            }
        }
        return values
    }

    private static func scalarText(_ node: Node, key: String, source: String) throws -> String {
        guard let scalar = node.scalar else {
            throw StrataConfigError.invalidValue(key: key, source: source, reason: "expected a single value")
        }
        if node.null != nil {
            throw StrataConfigError.invalidValue(key: key, source: source, reason: "no value given")
        }
        return scalar.string
    }
}
