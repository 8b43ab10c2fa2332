// The topology contract (topology/topology.yaml): every topic, its partitions, key and retention,
// the list of actions (one ods.<action> micro-queue each) and the content-id pattern. Every job
// and the `strata topology apply|show` commands read it through this model.

public import Foundation
import Yams

public struct TopicSpec: Sendable, Equatable {
    public var name: String
    public var partitions: Int
    public var replicationFactor: Int
    /// Documentation: which record field is the Kafka message key.
    public var key: String
    /// nil: broker default (for compacted topics: keep the latest value per key forever).
    public var retentionMs: Int64?
    /// "delete", "compact" or "compact,delete".
    public var cleanupPolicy: String
    /// Extra broker topic configs, passed through verbatim.
    public var config: [String: String]
    /// The name queries use in FROM besides the topic's own (e.g. `dws` for dws.content).
    public var source: String?
    /// The row schema queries check columns and types against; nil: the topic is not queryable.
    public var schema: TopicSchema?

    public init(name: String, partitions: Int, replicationFactor: Int = 1, key: String,
                retentionMs: Int64? = nil, cleanupPolicy: String = "delete", config: [String: String] = [:],
                source: String? = nil, schema: TopicSchema? = nil) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.key = key
        self.retentionMs = retentionMs
        self.cleanupPolicy = cleanupPolicy
        self.config = config
        self.source = source
        self.schema = schema
    }

    /// What to send to the broker when creating the topic: `config` plus retention.ms and
    /// cleanup.policy.
    public var brokerConfigs: [String: String] {
        var c = config
        c["cleanup.policy"] = cleanupPolicy
        if let r = retentionMs { c["retention.ms"] = String(r) }
        return c
    }
}

/// A topic's row schema in the topology: one of Strata's record contracts by name (`dws`, `dwm`:
/// docs/schemas; `event`: the raw event contract), or a map of top-level field → type for a topic
/// of the user's own (integer, number, string, boolean, object).
public enum TopicSchema: Sendable, Equatable {
    case contract(String)
    case fields([String: String])

    public static let contracts = ["dws", "dwm", "event"]
    public static let fieldTypes = ["integer", "number", "string", "boolean", "object"]
}

public struct TopologyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file path (or "<string>") the topology came from.
    public let source: String
    public let message: String

    public init(source: String, message: String) {
        self.source = source
        self.message = message
    }

    public var description: String { "\(source): \(message)" }
}

public struct Topology: Sendable, Equatable {
    public var actions: [String]
    public var contentIdPattern: String
    public var topics: [TopicSpec]

    public static let raw = "ods.raw"
    public static let deadLetter = "ods.dlq"
    public static let late = "ods.late"
    public static let dwm = "dwm.content_user"
    public static let dws = "dws.content"
    public static let dimChangelog = "dim.changelog"
    /// The dwm job's replay checkpoints (internal; written in its transactions).
    public static let dwmCheckpoint = "dwm.checkpoint"
    /// The split job's per-partition event-time progress (internal; written in its transactions).
    public static let splitCheckpoint = "split.checkpoint"

    /// The jobs' default consumer group ids (`--group`), known to the jobs and to whatever reads
    /// their lag; `strata run --topic-prefix P` prefixes them.
    public static let splitGroup = "strata-split"
    public static let dwmGroup = "strata-dwm"
    public static let archiveGroup = "strata-archive"
    public static let sinkGroup = "strata-sink"
    public static let defaultRelativePath = "topology/topology.yaml"
    public static let cleanupPolicies: Set<String> = ["delete", "compact", "compact,delete", "delete,compact"]

    public init(actions: [String], contentIdPattern: String = IdPattern.defaultContentId, topics: [TopicSpec]) {
        self.actions = actions
        self.contentIdPattern = contentIdPattern
        self.topics = topics
    }

    /// The micro-queue an action's events are routed to.
    public static func microQueue(for action: String) -> String { "ods." + action }

    public func topic(named name: String) -> TopicSpec? { topics.first { $0.name == name } }

    /// The compiled content-id pattern (validated by `parse`/`load`, so this only throws for a
    /// hand-built Topology).
    public func compiledContentIdPattern() throws(IdPatternError) -> IdPattern {
        try IdPattern(contentIdPattern)
    }

    public static func load(path: String) throws -> Topology {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let why = FileManager.default.fileExists(atPath: path)
                ? "cannot read topology file (\(error.localizedDescription))"
                : "topology file not found (set STRATA_TOPOLOGY or run from the repository root)"
            throw TopologyError(source: path, message: why)
        }
        return try parse(yaml: text, source: path)
    }

    public static func parse(yaml: String, source: String = "<string>") throws -> Topology {
        let file: _TopologyFile
        do {
            file = try YAMLDecoder().decode(_TopologyFile.self, from: yaml)
        } catch let e as TopologyError {
            throw TopologyError(source: source, message: e.message)
        } catch let e as DecodingError {
            throw TopologyError(source: source, message: Self.describe(e))
        } catch {
            throw TopologyError(source: source, message: "invalid YAML: \(String(describing: error).trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        let topology = Topology(actions: file.actions, contentIdPattern: file.contentIdPattern,
                                topics: file.topics.map(\.spec))
        try topology.validate(source: source)
        return topology
    }

    /// Checks the invariants the jobs rely on; throws the first problem found.
    public func validate(source: String = "<string>") throws {
        func fail(_ m: String) -> TopologyError { TopologyError(source: source, message: m) }

        var names = Set<String>()
        for t in topics {
            guard !t.name.isEmpty, t.name.count <= 249,
                  t.name.utf8.allSatisfy({ $0 == 0x2E || $0 == 0x5F || $0 == 0x2D || (0x30...0x39).contains($0)
                      || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) else {
                throw fail("topic name '\(t.name)' is not a valid Kafka topic name ([A-Za-z0-9._-], 1-249 chars)")
            }
            guard names.insert(t.name).inserted else { throw fail("topic '\(t.name)' is declared more than once") }
            guard t.partitions >= 1 else { throw fail("topic '\(t.name)': partitions must be >= 1, got \(t.partitions)") }
            guard t.replicationFactor >= 1 else {
                throw fail("topic '\(t.name)': replication_factor must be >= 1, got \(t.replicationFactor)")
            }
            guard !t.key.isEmpty else { throw fail("topic '\(t.name)': key must not be empty") }
            guard Self.cleanupPolicies.contains(t.cleanupPolicy) else {
                throw fail("topic '\(t.name)': cleanup_policy must be delete, compact or compact,delete, got '\(t.cleanupPolicy)'")
            }
            if let r = t.retentionMs, r < -1 {
                throw fail("topic '\(t.name)': retention_ms must be -1 (forever) or >= 0, got \(r)")
            }
            for k in ["retention.ms", "cleanup.policy"] where t.config[k] != nil {
                throw fail("topic '\(t.name)': set \(k) with the \(k.replacingOccurrences(of: ".", with: "_")) field, not in config")
            }
            switch t.schema {
            case .contract(let c)? where !TopicSchema.contracts.contains(c):
                throw fail("topic '\(t.name)': schema '\(c)' is not a record contract (\(TopicSchema.contracts.joined(separator: ", "))) or a map of field: type")
            case .fields(let f)?:
                if f.isEmpty { throw fail("topic '\(t.name)': schema lists no fields") }
                for (field, type) in f.sorted(by: { $0.key < $1.key }) where !TopicSchema.fieldTypes.contains(type) {
                    throw fail("topic '\(t.name)': field '\(field)' has type '\(type)'; types are \(TopicSchema.fieldTypes.joined(separator: ", "))")
                }
            default: break
            }
            if t.source != nil && t.schema == nil { throw fail("topic '\(t.name)': a source name needs a schema") }
        }
        var sourceNames = Set(topics.map(\.name))
        for t in topics {
            guard let s = t.source else { continue }
            guard sourceNames.insert(s).inserted else { throw fail("topic '\(t.name)': source name '\(s)' is already a topic or another source") }
        }
        // An upsert row's identity is (minute, content_id[, user_id]) but the Kafka key is only
        // content_id: compaction would keep one row per content and silently drop the rest.
        for name in [Self.dwm, Self.dws] {
            if let t = topic(named: name), t.cleanupPolicy.contains("compact") {
                throw fail("topic '\(name)' must not be compacted: its key is content_id but a row's identity includes the minute (and user), so compaction would delete live rows")
            }
        }

        guard !actions.isEmpty else { throw fail("actions must list at least one action") }
        var seenActions = Set<String>()
        for a in actions {
            guard let first = a.utf8.first, (0x61...0x7A).contains(first),
                  a.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F }) else {
                throw fail("action '\(a)' must be lowercase [a-z][a-z0-9_]* (it names the ods.\(a) topic)")
            }
            guard seenActions.insert(a).inserted else { throw fail("action '\(a)' is listed more than once") }
            guard topic(named: Self.microQueue(for: a)) != nil else {
                throw fail("action '\(a)' has no micro-queue: declare topic '\(Self.microQueue(for: a))'")
            }
        }
        // Co-partitioning: the dwm job reads all micro-queues in one consumer group, and a cell
        // (minute, content, user) must see every action of that content in one instance, so
        // partition p of every micro-queue (and of dwm/dws) must hold the same contents.
        let coPartitioned = actions.map(Self.microQueue(for:)) + [Self.dwm, Self.dws]
        let counts = coPartitioned.compactMap { n in topic(named: n).map { (n, $0.partitions) } }
        if let (firstName, p) = counts.first, let (other, q) = counts.first(where: { $0.1 != p }) {
            throw fail("topics '\(firstName)' (\(p) partitions) and '\(other)' (\(q) partitions) must have the same partition count: micro-queues, \(Self.dwm) and \(Self.dws) are co-partitioned by content_id")
        }

        do {
            _ = try IdPattern(contentIdPattern)
        } catch {
            throw fail("content_id_pattern: \(error)")
        }
    }

    /// $STRATA_TOPOLOGY, else ./topology/topology.yaml, else the first topology/topology.yaml found
    /// walking up from the executable's directory (so a built binary or test bundle inside the
    /// repository finds the repository's file). Falls back to the relative path, which `load`
    /// then reports as not found.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let p = environment["STRATA_TOPOLOGY"], !p.isEmpty { return p }
        let fm = FileManager.default
        if fm.fileExists(atPath: defaultRelativePath) {
            return URL(fileURLWithPath: fm.currentDirectoryPath).appendingPathComponent(defaultRelativePath).path
        }
        let executable = Bundle.main.executableURL
            ?? CommandLine.arguments.first.map { URL(fileURLWithPath: $0) }
        if var dir = executable?.resolvingSymlinksInPath().deletingLastPathComponent() {
            while true {
                let candidate = dir.appendingPathComponent(defaultRelativePath)
                if fm.fileExists(atPath: candidate.path) { return candidate.path }
                let parent = dir.deletingLastPathComponent()
                if parent.path == dir.path || dir.path == "/" { break }
                dir = parent
            }
        }
        return defaultRelativePath
    }

    static func describe(_ e: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            var s = ""
            for k in keys {
                if let i = k.intValue { s += "[\(i)]" } else { s += s.isEmpty ? k.stringValue : "." + k.stringValue }
            }
            return s.isEmpty ? "top level" : s
        }
        switch e {
        case .keyNotFound(let key, let ctx):
            let at = path(ctx.codingPath)
            return "missing required key '\(key.stringValue)'" + (ctx.codingPath.isEmpty ? "" : " in \(at)")
        case .typeMismatch(let type, let ctx):
            return "\(path(ctx.codingPath)): expected \(typeName(type))"
        case .valueNotFound(let type, let ctx):
            return "\(path(ctx.codingPath)): expected \(typeName(type)), found null"
        case .dataCorrupted(let ctx):
            // Yams wraps parser errors and errors thrown by our own init(from:) here.
            if let t = ctx.underlyingError as? TopologyError { return t.message }
            if let y = ctx.underlyingError as? YamlError {
                return "invalid YAML: " + String(describing: y).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return "\(path(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default:
            return String(describing: e)
        }
    }

    private static func typeName(_ t: Any.Type) -> String {
        switch t {
        case is Int.Type, is Int64.Type: "an integer"
        case is String.Type: "a string"
        case is [String].Type: "a list of strings"
        default:
            // Yams names its node kinds (Node.Sequence, Node.Mapping) in type mismatches.
            "\(t)".hasSuffix("Sequence") ? "a list" : "\(t)".hasSuffix("Mapping") ? "a mapping" : "\(t)"
        }
    }
}

// MARK: - File format (snake_case, unknown keys rejected so typos do not pass silently)

struct _AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { stringValue = String(intValue); self.intValue = intValue }
}

private func rejectUnknownKeys(_ decoder: any Decoder, allowed: Set<String>, in what: String) throws {
    let c = try decoder.container(keyedBy: _AnyKey.self)
    for k in c.allKeys where !allowed.contains(k.stringValue) {
        throw TopologyError(source: "", message: "unknown key '\(k.stringValue)' in \(what) (allowed: \(allowed.sorted().joined(separator: ", ")))")
    }
}

struct _TopologyFile: Decodable {
    var actions: [String]
    var contentIdPattern: String
    var topics: [_TopicFile]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case actions, contentIdPattern = "content_id_pattern", topics
    }

    init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, allowed: Set(CodingKeys.allCases.map(\.rawValue)), in: "topology")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        actions = try c.decode([String].self, forKey: .actions)
        contentIdPattern = try c.decodeIfPresent(String.self, forKey: .contentIdPattern) ?? IdPattern.defaultContentId
        topics = try c.decode([_TopicFile].self, forKey: .topics)
    }
}

struct _TopicFile: Decodable {
    var spec: TopicSpec

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, partitions, replicationFactor = "replication_factor", key
        case retentionMs = "retention_ms", cleanupPolicy = "cleanup_policy", config, source, schema
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = try c.decode(String.self, forKey: .name)
        try rejectUnknownKeys(decoder, allowed: Set(CodingKeys.allCases.map(\.rawValue)), in: "topic '\(name)'")
        spec = TopicSpec(
            name: name,
            partitions: try c.decode(Int.self, forKey: .partitions),
            replicationFactor: try c.decodeIfPresent(Int.self, forKey: .replicationFactor) ?? 1,
            key: try c.decode(String.self, forKey: .key),
            retentionMs: try c.decodeIfPresent(Int64.self, forKey: .retentionMs),
            cleanupPolicy: try c.decodeIfPresent(String.self, forKey: .cleanupPolicy) ?? "delete",
            config: try c.decodeIfPresent([String: String].self, forKey: .config) ?? [:],
            source: try c.decodeIfPresent(String.self, forKey: .source),
            schema: try Self.schema(c))
    }

    /// `schema: dws` or `schema: {field: type, …}`.
    private static func schema(_ c: KeyedDecodingContainer<CodingKeys>) throws -> TopicSchema? {
        guard c.contains(.schema) else { return nil }
        if let name = try? c.decode(String.self, forKey: .schema) { return .contract(name) }
        return .fields(try c.decode([String: String].self, forKey: .schema))
    }
}
