public import StrataCore

/// What a query may read: each source's name, topic and row schema. The planner resolves FROM
/// and checks every column and type against it, so a typo is an error instead of a column of nulls.

/// A column's type as the record contracts state it.
public enum ColumnType: String, Sendable, Equatable {
    case integer, number, string, boolean, object
}

/// One field of a row; an object's fields are known when the contract lists them.
public struct Field: Sendable, Equatable {
    public var name: String
    public var type: ColumnType
    /// May be null or absent (optional fields, unknown dimensions).
    public var nullable: Bool
    /// An object's fields; empty for other types (and for objects of unknown shape).
    public var fields: [Field]

    public init(_ name: String, _ type: ColumnType, nullable: Bool = false, fields: [Field] = []) {
        self.name = name
        self.type = type
        self.nullable = nullable
        self.fields = fields
    }
}

/// A queryable topic: the name(s) FROM accepts, the topic read and its rows' fields.
public struct SourceSchema: Sendable, Equatable {
    /// The short name (`dws`), or the topic name when it has none.
    public var name: String
    /// The topic as the topology declares it (FROM accepts it too).
    public var declaredTopic: String
    /// The topic read: `declaredTopic` with the run's topic prefix.
    public var topic: String
    public var fields: [Field]

    public init(name: String, topic: String, fields: [Field], declaredTopic: String? = nil) {
        self.name = name
        self.topic = topic
        self.declaredTopic = declaredTopic ?? topic
        self.fields = fields
    }

    /// Raw events (the event contract: `event_id`, `ts`) rather than upsert rows (`minute`, `rev`).
    public var isEventStream: Bool { field(at: ["ts"]) != nil && field(at: ["event_id"]) != nil && field(at: ["minute"]) == nil }

    /// The field at a dotted path (`content.title`); nil when the schema does not have it.
    public func field(at path: [String]) -> Field? {
        var level = fields
        var found: Field?
        for (i, part) in path.enumerated() {
            guard let f = level.first(where: { $0.name == part }) else { return nil }
            found = f
            if i < path.count - 1 {
                guard f.type == .object, !f.fields.isEmpty else { return nil }
                level = f.fields
            }
        }
        return found
    }

    /// Every path the schema knows (`content`, `content.title`, …), for hints.
    public var paths: [String] {
        func walk(_ fs: [Field], _ prefix: String) -> [String] {
            fs.flatMap { f in [prefix + f.name] + walk(f.fields, prefix + f.name + ".") }
        }
        return walk(fields, "")
    }

    /// `DESCRIBE`: one line per path with its type.
    public var description: String {
        var lines = ["source \(name) (topic \(topic))"]
        func walk(_ fs: [Field], _ prefix: String) {
            for f in fs {
                let path = prefix + f.name
                lines.append("  " + path + String(repeating: " ", count: max(2, 24 - path.count))
                             + f.type.rawValue + (f.nullable ? ", nullable" : ""))
                walk(f.fields, path + ".")
            }
        }
        walk(fields, "")
        return lines.joined(separator: "\n")
    }
}

/// The sources of one topology: every topic with a schema, by topic name and by source name.
public struct Catalog: Sendable, Equatable {
    public var sources: [SourceSchema]

    public init(sources: [SourceSchema]) { self.sources = sources }

    /// The topics of `topology` that declare a schema; `topicPrefix` is prepended to topic names
    /// (isolated runs), not to source names.
    public init(topology: Topology, topicPrefix: String = "") {
        sources = topology.topics.compactMap { t in
            guard let schema = t.schema else { return nil }
            let fields: [Field]
            switch schema {
            case .contract("dws"): fields = RecordContracts.dws(actions: topology.actions)
            case .contract("dwm"): fields = RecordContracts.dwm(actions: topology.actions)
            case .contract: fields = RecordContracts.event
            case .fields(let map):
                fields = map.sorted { $0.key < $1.key }.map { Field($0.key, ColumnType(rawValue: $0.value) ?? .string, nullable: true) }
            }
            return SourceSchema(name: t.source ?? t.name, topic: topicPrefix + t.name, fields: fields, declaredTopic: t.name)
        }
    }

    /// The source FROM names: its short name, or its topic name (without the prefix).
    public func source(named name: String) -> SourceSchema? {
        sources.first { $0.name == name } ?? sources.first { $0.declaredTopic == name }
    }

    /// Every name FROM accepts, short names first.
    public var names: [String] {
        var out: [String] = []
        for s in sources where !out.contains(s.name) { out.append(s.name) }
        return out
    }
}

/// Strata's record contracts as fields (docs/schemas; DESIGN.md "Record contracts").
public enum RecordContracts {
    static let content = Field("content", .object, nullable: true, fields: [
        Field("title", .string), Field("category", .string), Field("author_id", .string), Field("region", .string)])
    static let user = Field("user", .object, nullable: true, fields: [
        Field("gender", .string), Field("age_band", .string), Field("province", .string), Field("city_tier", .integer)])

    static func metrics(_ actions: [String]) -> [Field] {
        var out = actions.map { Field($0, .integer) }
        out.insert(Field("play_ms", .integer), at: (actions.firstIndex(of: "play") ?? actions.count - 1) + 1)
        return out
    }

    public static func dws(actions: [String]) -> [Field] {
        [Field("minute", .integer), Field("content_id", .string)] + metrics(actions)
            + [Field("uv", .integer), content, Field("final", .boolean), Field("rev", .integer), Field("emitted_at", .integer)]
    }

    public static func dwm(actions: [String]) -> [Field] {
        [Field("minute", .integer), Field("content_id", .string), Field("user_id", .string)] + metrics(actions)
            + [Field("strategy", .string, nullable: true), content, user,
               Field("final", .boolean), Field("rev", .integer), Field("emitted_at", .integer)]
    }

    /// The raw event: required fields, then the optional ones the contract names.
    public static let event: [Field] = [
        Field("event_id", .string), Field("ts", .integer), Field("action", .string),
        Field("content_id", .string), Field("user_id", .string),
        Field("strategy", .string, nullable: true),
        Field("device", .object, nullable: true, fields: [Field("os", .string, nullable: true), Field("app_ver", .string, nullable: true)]),
        Field("page", .string, nullable: true), Field("duration_ms", .integer, nullable: true),
    ]
}
