/// Several continuous queries over one source, run as one: each batch is decoded once (into one
/// `RowLayout` covering every query's fields), and the upsert bookkeeping — each row's time, the
/// watermark, the stored revision per identity or the events already seen — is done once per row
/// for all of them (`SourceTable`). So are the row terms the queries compute alike — each
/// distinct WHERE conjunct, GROUP BY list and aggregate argument (`RowTerms`). Each query keeps
/// only its own windows, groups and the groups each identity went to. A dashboard's panels over
/// one topic are such a set.
///
/// The queries share the evaluation options (grace, idle-partition timeout, distinct threshold)
/// and the kind of source (an upsert layer or events); each has its own limits, and a query that
/// fails (a limit) stops alone. A query added while the set runs reads the rows from then on.
public final class QuerySet {
    public var options: QueryOptions { table.options }
    public private(set) var layout: RowLayout
    /// The member queries, in the order added (results come in this order).
    public private(set) var engines: [QueryEngine] = []
    let table: SourceTable
    let terms: RowTerms

    /// `events`: the source is an append stream of raw events (`ods.*`), else an upsert layer.
    public init(layout: RowLayout, events: Bool, options: QueryOptions = .init()) {
        self.layout = layout
        table = SourceTable(layout: layout, events: events, options: options)
        terms = RowTerms(layout: layout, events: events)
    }

    /// A set of `queries` (at least one), over a layout of all their fields.
    public convenience init(_ queries: [Query], limits: QueryLimits = .init(), options: QueryOptions = .init()) {
        precondition(!queries.isEmpty, "a query set needs a query to know its source's kind")
        self.init(layout: RowLayout(queries), events: queries[0].readsEvents, options: options)
        for q in queries { add(q, limits: limits) }
    }

    /// Adds a query reading this set's rows; it must read the same kind of source. Fields the
    /// layout lacks are added to it: batches are then to be decoded in the new `layout`.
    @discardableResult
    public func add(_ query: Query, limits: QueryLimits = .init()) -> QueryEngine {
        precondition(query.plan.events == table.events, "\(query.plan.source): a set's queries read one kind of source")
        if !layout.covers(query) { rebind(RowLayout(engines.map(\.query) + [query])) }
        let engine = QueryEngine(query, limits: limits, layout: layout, table: table, terms: terms, inSet: true)
        engines.append(engine)
        return engine
    }

    /// Stops evaluating `engine`.
    public func remove(_ engine: QueryEngine) {
        guard engines.contains(where: { $0 === engine }) else { return }
        engines.removeAll { $0 === engine }
        engine.leave()
        terms.unregister(engine.binding)
    }

    /// Reads batches of `layout` from now on (it must cover every query).
    public func rebind(_ layout: RowLayout) {
        self.layout = layout
        table.bind(layout)
        terms.bind(layout)
        for e in engines { e.bind(layout) }
    }

    /// Declares the input partitions (see `QueryEngine.expectPartitions`).
    public func expectPartitions(_ partitions: [Int], nowMs: Int64) {
        table.expectPartitions(partitions, nowMs: nowMs)
    }

    /// The watermark all member queries share.
    public var watermark: Int64? { table.wm }

    /// Applies a batch to every query; returns what each emits, in `engines` order. A query that
    /// fails on it (a limit) emits nothing from now on, and its `failure` says why.
    public func ingest(_ batch: RowBatch) -> [[QueryResult]] {
        if batch.layout !== layout { rebind(batch.layout) }
        let w0 = table.wm
        table.resolve(batch)
        terms.applyInChunks(batch, table) { rows in
            for e in engines where e.failure == nil {
                try? e.run { () throws(QueryError) in try e.apply(batch, rows: rows, w0) }
            }
        }
        table.advance()
        let out = engines.map { e in
            e.failure == nil ? (try? e.run { () throws(QueryError) in try e.concludeBatch() }) ?? [] : []
        }
        forget()
        return out
    }

    /// `QueryEngine.tick` for every query, with one clock and one watermark.
    public func tick(nowMs: Int64) -> [[QueryResult]] {
        let moved = table.tick(nowMs: nowMs)
        let out = engines.map { $0.failure == nil ? $0.ticked(watermarkMoved: moved, nowMs: nowMs) : [] }
        if moved { forget() }
        return out
    }

    /// End of input for every query (see `QueryEngine.finish`).
    public func finish() -> [[QueryResult]] {
        table.reset()
        terms.reset()
        return engines.map { $0.finished() }
    }

    /// Forgets identities no live query can use any more.
    private func forget() {
        let live = engines.filter { $0.failure == nil }
        table.forget(held: { m, w in live.contains { $0.holds(m, w) } },
                     release: { indexes in
                         for e in self.engines { e.release(indexes) }
                         self.terms.release(indexes)
                     })
    }
}
