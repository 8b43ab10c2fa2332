import StrataCore

/// The public face of the language: a parsed, checked query, its limits and its result tables.

/// A parsed and planned query. Parsing runs the lexer, parser and planner, so a `Query` that
/// exists is valid (limits are checked when it runs, see `QueryEngine.validate()`).
public struct Query: Sendable {
    /// The text as given.
    public let text: String
    /// Topic name from FROM (dotted parts joined, e.g. "dws.content").
    public var source: String { plan.source }
    /// Every topic FROM names (a union of event streams has several; `source` is the first).
    public var sources: [String] { plan.sources }
    /// One-line normalized text: upper-case keywords, explicit defaults, minimal parentheses.
    public var canonical: String { statement.canonical }
    /// Output column names: the select-list aliases, else the expressions' text.
    public var columns: [String] { plan.columns }
    /// True when the source is a stream of raw events (time is `ts`), false for upsert rows (`minute`).
    public var readsEvents: Bool { plan.events }
    /// True when the query has a WINDOW clause (its results carry window bounds).
    public var isWindowed: Bool { plan.window != nil }

    let statement: SelectStatement
    let plan: Plan

    /// With a catalog, FROM names one of its sources (by short name or topic) and every column
    /// and type is checked against that source's schema; `source` is then the topic to read.
    /// Without one, FROM is taken as a topic name and columns are not checked.
    public static func parse(_ text: String, catalog: Catalog? = nil) throws(QueryError) -> Query {
        var parser = try Parser(text)
        let stmt = try parser.parseStatement()
        var schema: SourceSchema?
        var topics = [stmt.source.joined(separator: ".")] + stmt.moreSources.map { $0.name.joined(separator: ".") }
        if let catalog {
            let first = try resolve(stmt.source, at: stmt.sourceLocation, in: catalog, text: text)
            schema = first
            topics = [first.topic]
            for (name, location) in stmt.moreSources {
                let other = try resolve(name, at: location, in: catalog, text: text)
                guard first.isEventStream && other.fields == first.fields else {
                    throw semantic(text, at: location, name, "only event streams with the same schema can be combined in FROM",
                                   hint: "e.g. FROM ods.expose, ods.click; \(first.name) and \(other.name) differ")
                }
                if !topics.contains(other.topic) { topics.append(other.topic) }
            }
        } else if let (name, location) = stmt.moreSources.first {
            throw semantic(text, at: location, name, "several sources need a catalog of schemas")
        }
        var planner = Planner(stmt, text: text, schema: schema, topics: topics)
        let plan = try planner.plan()
        return Query(text: text, statement: stmt, plan: plan)
    }

    /// For readers of one topic (the dashboard's feeds): a union of sources is an error there.
    public func requireSingleSource() throws(QueryError) {
        guard let (name, location) = statement.moreSources.first else { return }
        throw Self.semantic(text, at: location, name, "this reader takes one source per query",
                            hint: "query a union of event streams with strata query")
    }

    /// `DESCRIBE <source>`: the source's schema; nil when the text is not a DESCRIBE statement.
    public static func describe(_ text: String, catalog: Catalog) throws(QueryError) -> SourceSchema? {
        var parser = try Parser(text)
        guard let (name, location) = try parser.parseDescribe() else { return nil }
        return try resolve(name, at: location, in: catalog, text: text)
    }

    private static func resolve(_ source: [String], at location: SourceLocation, in catalog: Catalog,
                                text: String) throws(QueryError) -> SourceSchema {
        let name = source.joined(separator: ".")
        if let schema = catalog.source(named: name) { return schema }
        let names = catalog.names
        let all = names + catalog.sources.map(\.declaredTopic).filter { !names.contains($0) }
        var hint = "sources: " + names.joined(separator: ", ")
        if let guess = closest(name, among: all, maxDistance: max(2, name.count / 4)) { hint = "did you mean \(guess)? " + hint }
        throw semantic(text, at: location, source, "unknown source '\(name)'", hint: hint)
    }

    /// A planning error about the source named `source` at `location`, underlined.
    private static func semantic(_ text: String, at location: SourceLocation, _ source: [String], _ message: String,
                                 hint: String? = nil) -> QueryError {
        .semantic(Diagnostic(location: location, length: max(1, source.joined(separator: ".").unicodeScalars.count),
                             message: message, hint: hint, sourceLine: Lexer(text).sourceLine(location.line)))
    }

    /// A human-readable plan: source, filter, window, grouping, aggregates, output, emit mode, limits.
    public func explain() -> String { explain(limits: QueryLimits(), options: QueryOptions()) }

    public func explain(limits: QueryLimits, options: QueryOptions) -> String {
        Explain.text(self, limits: limits, options: options)
    }
}

/// Per-query resource limits. Exceeding one fails that query with `QueryError.limitExceeded`;
/// nothing else in the process is affected.
public struct QueryLimits: Sendable, Equatable {
    /// Groups alive at once, summed over all open windows.
    public var maxGroups: Int
    /// Longest WINDOW length.
    public var maxWindowLengthMs: Int64
    /// Rows in one emitted table (after HAVING and LIMIT).
    public var maxRowsOut: Int
    /// Windows holding state at once (SLIDING 1 HOUR EVERY 1 MINUTE alone keeps 60 open).
    public var maxOpenWindows: Int
    /// Events the sequence aggregates (sessions, funnel, top_paths) hold at once, over all windows
    /// and groups (each keeps every actor's events of its window; ≈ 100 bytes each).
    public var maxSequenceEvents: Int
    /// Distinct values exact_count_distinct holds at once, over all windows and groups (a
    /// refcount each, ≈ 30 bytes).
    public var maxExactDistinctValues: Int

    public init(maxGroups: Int = 100_000, maxWindowLengthMs: Int64 = 24 * 3_600_000,
                maxRowsOut: Int = 10_000, maxOpenWindows: Int = 1_000, maxSequenceEvents: Int = 5_000_000,
                maxExactDistinctValues: Int = 10_000_000) {
        self.maxGroups = maxGroups
        self.maxWindowLengthMs = maxWindowLengthMs
        self.maxRowsOut = maxRowsOut
        self.maxOpenWindows = maxOpenWindows
        self.maxSequenceEvents = maxSequenceEvents
        self.maxExactDistinctValues = maxExactDistinctValues
    }
}

/// Evaluation settings that are not limits.
public struct QueryOptions: Sendable, Equatable {
    /// A window is final once the watermark (highest `minute` seen) reaches window_end + grace.
    /// The default matches the DWM job's allowed lateness, so corrected DWS/DWM revisions land
    /// before a window is declared final.
    public var graceMs: Int64
    /// count_distinct is exact (refcounted hashes) up to this many distinct values per group,
    /// then switches to a counting HyperLogLog (precision 14, ~0.8 % standard error).
    public var distinctExactThreshold: Int
    /// With several input partitions (see `QueryEngine.ingest(_:partitions:)`), the watermark is
    /// the minimum over partitions; a partition without rows for this long (by the clock given
    /// to `tick(nowMs:)`) stops holding it back.
    public var idlePartitionTimeoutMs: Int64

    public init(graceMs: Int64 = 120_000, distinctExactThreshold: Int = 1024, idlePartitionTimeoutMs: Int64 = 30_000) {
        self.graceMs = graceMs
        self.distinctExactThreshold = distinctExactThreshold
        self.idlePartitionTimeoutMs = idlePartitionTimeoutMs
    }
}

/// One emission: the current table of one window (or of everything, without WINDOW).
public struct QueryResult: Sendable, Equatable {
    /// Epoch ms; nil without WINDOW.
    public var windowStart: Int64?
    public var windowEnd: Int64?
    /// True when this window will not change any more (watermark passed end + grace, or end of input).
    public var final: Bool
    public var columns: [String]
    /// ORDER BY and LIMIT applied.
    public var rows: [[Value]]

    public init(windowStart: Int64?, windowEnd: Int64?, final: Bool, columns: [String], rows: [[Value]]) {
        self.windowStart = windowStart; self.windowEnd = windowEnd; self.final = final
        self.columns = columns; self.rows = rows
    }

    /// Rows as objects keyed by column name.
    public var objects: [[String: Value]] {
        rows.map { r in
            var o: [String: Value] = [:]
            for (i, c) in columns.enumerated() where i < r.count { o[c] = r[i] }
            return o
        }
    }

    /// `{"window_start":…,"window_end":…,"final":…,"rows":[{…},…]}` with row keys in select order.
    public var ndjson: String {
        var s = "{\"window_start\":"
        s += windowStart.map { String($0) } ?? "null"
        s += ",\"window_end\":"
        s += windowEnd.map { String($0) } ?? "null"
        s += ",\"final\":" + (final ? "true" : "false")
        s += ",\"rows\":"
        appendRowsJSON(to: &s)
        s += "}"
        return s
    }

    /// The rows as a JSON array of objects, keys in select order (a missing cell is null).
    public func appendRowsJSON(to s: inout String) {
        s += "["
        for (n, r) in rows.enumerated() {
            if n > 0 { s += "," }
            s += "{"
            for (i, c) in columns.enumerated() {
                if i > 0 { s += "," }
                JSONString.append(c, to: &s)
                s += ":"
                (i < r.count ? r[i] : .null).appendJSON(to: &s)
            }
            s += "}"
        }
        s += "]"
    }
}

/// Counters a subscriber can show (how much input was used, dropped and why).
public struct QueryStats: Sendable, Equatable {
    public var rowsIn: Int = 0
    /// Rows that changed the state (new identities, newer revs, rows without identity).
    public var rowsApplied: Int = 0
    /// Revisions at or below the rev already held for their identity.
    public var staleRevisions: Int = 0
    /// Rows whose windows had all closed (watermark ≥ end + grace) when they arrived.
    public var lateRows: Int = 0
    /// Events (sources of the event contract) whose (event_id, ts) was already counted.
    public var duplicateEvents: Int = 0
    /// Rows without an integer `minute` in a windowed query.
    public var rowsWithoutMinute: Int = 0
    public var emissions: Int = 0
    public init() {}
}
