import StrataCore

/// The continuous evaluator: applies upsert rows to windowed, grouped aggregate state and decides
/// what to emit.
///
/// Upsert semantics. A row's identity is (minute, content_id, user_id) — user_id is null for DWS
/// rows — and `rev` orders its versions. Per identity the `SourceTable` keeps the rev (one table
/// serves every query of a `QuerySet`) and the engine the row's *contribution* (its group key and
/// aggregate arguments, or nothing if WHERE rejected it). A newer
/// rev retracts the old contribution from every open window of that minute and adds the new one;
/// a rev at or below the stored one is stale and ignored. A row without rev replaces whatever is
/// stored. Rows without minute or content_id have no identity and are only ever added.
///
/// Time. The watermark is the highest `minute` seen (the minimum over partitions when partitions
/// are given). In an upsert layer (rows with a `final` flag, as DWS and DWM) only final rows move
/// it: a final row of minute M says the producing job's watermark passed M, and later rows can only
/// be corrections of minutes its allowed lateness still covers, so a subscriber reading a topic a
/// job wrote while catching up (early rows of minutes far ahead) does not close windows early.
/// A window [start, end) is closed once watermark ≥ end + grace: it emits its final
/// table and its state is dropped. Rows that only belong to closed windows are late and dropped
/// (counted in `stats.lateRows`); identities whose windows are all closed are forgotten. Within a
/// batch every row is judged against the watermark as it was when the batch started, so the order
/// of rows inside a batch does not matter.
public final class QueryEngine {
    public let query: Query
    public let limits: QueryLimits
    public let options: QueryOptions
    @exclusivity(unchecked) public private(set) var stats = QueryStats()
    /// Set once the query failed (a limit); every later `ingest` throws it again.
    public private(set) var failure: QueryError?
    /// Highest minute seen (epoch ms), or the partition minimum; nil before any row.
    public var watermark: Int64? { source.wm }
    /// Windows currently holding state.
    public var openWindowCount: Int { windows.count }
    /// Groups currently alive, over all open windows.
    public var groupCount: Int { totalGroups }

    /// The query's plan bound to `layout` (fields read as slots).
    private var plan: Plan
    /// The layout of the rows this engine reads; a batch in another layout rebinds it.
    public private(set) var layout: RowLayout
    private var slots: EngineSlots
    /// Time and identities (the source table): the engine's own, or its `QuerySet`'s (then `inSet`, and the set
    /// drives it: ingest, tick and finish go through the set).
    let source: SourceTable
    /// Its WHERE conjuncts, keys and arguments, computed per row (its own, or shared in a set).
    let terms: RowTerms
    let binding: RowTerms.Binding
    private let inSet: Bool
    // The per-row state skips the run-time exclusivity checks (about a tenth of the per-row time):
    // an engine is used by one thread at a time and no access to these overlaps another.
    @exclusivity(unchecked) private var windows: [Int64: WindowState] = [:]
    /// What each live identity (by its index in the table) gave this query: the groups its row
    /// went to (the group key is theirs; the arguments it gave are its revision's, which `terms`
    /// keeps once for every query). Kept flat, so a new identity allocates nothing here and a
    /// forgotten one frees nothing.
    @exclusivity(unchecked) private var contributions: [GroupLink] = []
    @exclusivity(unchecked) private var totalGroups = 0
    private var validated = false
    private var pendingFinal: [QueryResult] = []
    private var nextDue: Int64?
    private var sequence: Int64 = 0
    /// A row's group key and its hash, from the terms (see `fillKey`; filled on first use, as a
    /// query whose group number another query already found for the row needs neither).
    @exclusivity(unchecked) private var scratchKey: [Value] = []
    private var scratchHash = 0
    private var scratchKeyRow = -1
    /// Its group numbers, shared with the set's queries of the same window and key list.
    private let groupIndex: GroupIndex
    /// The window the last row went to (TUMBLING), and the last `lastEnd` with the times it holds
    /// for [from, to).
    @exclusivity(unchecked) private var lastWindow: WindowState?
    private var lastEndMemo: (from: Int64, to: Int64, end: Int64) = (0, 0, 0)
    /// The values of the row `scratchKey` came from, while it is applied (valid only then: it
    /// points into the batch being applied).
    private var scratchRow = UnsafeBufferPointer<Value>(start: nil, count: 0)
    private let heldBudget = HeldBudget()

    /// Key of the single window of a query without WINDOW.
    private static let globalKey = Int64.min

    /// `layout`: the layout of the batches it will read (several queries over one source share
    /// one, see `RowLayout`); by default one of exactly the fields this query reads.
    public convenience init(_ query: Query, limits: QueryLimits = .init(), options: QueryOptions = .init(), layout: RowLayout? = nil) {
        let layout = layout ?? RowLayout(plans: [query.plan])
        self.init(query, limits: limits, layout: layout,
                  table: SourceTable(layout: layout, events: query.plan.events, options: options),
                  terms: RowTerms(layout: layout, events: query.plan.events), inSet: false)
    }

    /// A query of a `QuerySet`, reading through the set's source and terms.
    init(_ query: Query, limits: QueryLimits, layout: RowLayout, table: SourceTable, terms: RowTerms, inSet: Bool) {
        precondition(layout.covers(query.plan), "the row layout lacks fields this query reads")
        self.query = query
        self.layout = layout
        self.plan = layout.bind(query.plan)
        self.slots = EngineSlots(layout, events: query.plan.events)
        self.limits = limits
        self.options = table.options
        self.source = table
        self.terms = terms
        binding = terms.register(query.plan)
        groupIndex = terms.groupIndex(binding)
        self.inSet = inSet
        resetGlobalWindow()
    }

    /// Reads batches of `layout` from now on. The state is kept: it holds values, not slots.
    func bind(_ layout: RowLayout) {
        precondition(layout.covers(query.plan), "the row layout lacks fields this query reads")
        self.layout = layout
        plan = layout.bind(query.plan)
        slots = EngineSlots(layout, events: query.plan.events)
    }

    /// Checks the limits that depend only on the query (window length, windows per row).
    /// `ingest` calls it first; callers may call it up front to fail fast.
    public func validate() throws(QueryError) {
        guard let w = plan.window else { return }
        if w.lengthMs > limits.maxWindowLengthMs {
            throw .limitExceeded(.windowLength, limit: limits.maxWindowLengthMs,
                                 detail: "the window is \(w.lengthText), longer than \(Explain.formatMs(limits.maxWindowLengthMs))")
        }
        if w.windowsPerRow > Int64(limits.maxOpenWindows) {
            throw .limitExceeded(.openWindows, limit: Int64(limits.maxOpenWindows),
                                 detail: "SLIDING \(w.lengthText) EVERY \(w.everyText) keeps \(w.windowsPerRow) windows open per row; use a larger EVERY")
        }
    }

    // MARK: - Input

    /// Applies a batch of rows and returns what to emit now (EMIT CHANGES: changed windows and
    /// windows that just closed; EMIT FINAL: windows that just closed; EMIT EVERY: nothing, see
    /// `tick`). A thrown error (a limit) fails this query for good.
    public func ingest(_ rows: [[String: Value]]) throws(QueryError) -> [QueryResult] {
        try ingest(RowBatch(layout: layout, rows: rows))
    }

    /// All rows from one input partition.
    public func ingest(_ rows: [[String: Value]], partition: Int) throws(QueryError) -> [QueryResult] {
        try ingest(RowBatch(layout: layout, rows: rows, partitions: [Int](repeating: partition, count: rows.count)))
    }

    /// `partitions[i]` is the input partition of `rows[i]`; the watermark is then the minimum over
    /// partitions of their highest minute (idle partitions excepted, see `QueryOptions`).
    public func ingest(_ rows: [[String: Value]], partitions: [Int]?) throws(QueryError) -> [QueryResult] {
        try ingest(RowBatch(layout: layout, rows: rows, partitions: partitions))
    }

    /// Applies a batch of decoded rows (the fast path: see `RowLayout`); its partitions, if it
    /// has them, as above.
    public func ingest(_ batch: RowBatch) throws(QueryError) -> [QueryResult] {
        precondition(!inSet, "a query of a QuerySet reads through its set")
        if let failure { throw failure }
        if batch.layout !== layout {
            bind(batch.layout)
            source.bind(batch.layout)
            terms.bind(batch.layout)
        }
        let w0 = source.wm
        source.resolve(batch)
        try terms.applyInChunks(batch, source) { (rows) throws(QueryError) in
            try run { () throws(QueryError) in try apply(batch, rows: rows, w0) }
        }
        source.advance()
        let out = try run { () throws(QueryError) in try concludeBatch() }
        forgetIdentities()
        return out
    }

    /// Runs one step of this query; a thrown error (a limit) fails it for good.
    func run<T>(_ step: () throws(QueryError) -> T) throws(QueryError) -> T {
        do throws(QueryError) {
            if !validated { try validate(); validated = true }
            return try step()
        } catch {
            failure = error
            throw error
        }
    }

    /// Applies `rows` of `batch` as the table judged them (`source.verdicts`) and the terms computed
    /// them, against the watermark `w0` the batch started with.
    func apply(_ batch: RowBatch, rows: Range<Int>, _ w0: Int64?) throws(QueryError) {
        let grace = options.graceMs
        stats.rowsIn += rows.count
        if contributions.count < source.capacity {
            contributions.append(contentsOf: repeatElement(.none, count: source.capacity - contributions.count))
        }
        let width = layout.width
        let slots = self.slots
        let windowed = plan.window != nil
        try batch.values.withUnsafeBufferPointer { (base) throws(QueryError) in
            try source.verdicts.withUnsafeBufferPointer { (verdicts) throws(QueryError) in
                for index in rows {
                    let row = UnsafeBufferPointer(rebasing: base[(index * width)..<(index * width + width)])
                    let verdict = verdicts[index]
                    switch verdict.kind {
                    case .plain:
                        if windowed {
                            guard let m = verdict.time else { stats.rowsWithoutMinute += 1; continue }
                            if let w0, lastEnd(m) &+ grace <= w0 { stats.lateRows += 1; continue }
                        }
                        sequence += 1
                        if terms.passes(binding, row: index, row) {
                            fillKey(index, row, identity: { [.int(self.sequence)] })
                            try add(minute: verdict.time, w0, row: index, recording: false)
                        }
                    case .event, .duplicate:
                        let t = verdict.time!
                        if let w0, lastEnd(t) &+ grace <= w0 { stats.lateRows += 1; continue }
                        if verdict.kind == .duplicate { stats.duplicateEvents += 1; continue }
                        if terms.passes(binding, row: index, row) {
                            fillKey(index, row, identity: { [slots.eventId.map { row[$0] } ?? .null, .int(t)] })
                            try add(minute: t, w0, row: index, recording: false)
                        }
                    case .revision, .stale:
                        let m = verdict.time!
                        if let w0, lastEnd(m) &+ grace <= w0 { stats.lateRows += 1; continue }
                        if verdict.kind == .stale { stats.staleRevisions += 1; continue }
                        try upsert(Int(verdict.identity), fresh: verdict.fresh, row: index, row, minute: m, w0)
                    }
                    stats.rowsApplied += 1
                }
            }
        }
    }

    /// After the table advanced the watermark: closes windows and says what to emit.
    func concludeBatch() throws(QueryError) -> [QueryResult] {
        // No emitted table may exceed maxRowsOut; checking here keeps tick/finish non-throwing.
        for ws in windows.values where ws.changed { try checkRowsOut(ws) }

        var out = closeWindows()
        if plan.emit == .changes {
            for ws in windows.values.sorted(by: { $0.sortKey < $1.sortKey }) where ws.changed {
                if let r = changedResult(ws) { out.append(r) }
            }
            out.sort { ($0.windowStart ?? Int64.min, $0.final ? 0 : 1) < ($1.windowStart ?? Int64.min, $1.final ? 0 : 1) }
        }
        if windows.count > limits.maxOpenWindows {
            throw .limitExceeded(.openWindows, limit: Int64(limits.maxOpenWindows),
                                 detail: "\(windows.count) windows hold state (rows span more time than the window and grace allow)")
        }
        if heldBudget.events > limits.maxSequenceEvents {
            throw .limitExceeded(.sequenceEvents, limit: Int64(limits.maxSequenceEvents),
                                 detail: "\(heldBudget.events) events are held for sessions, funnels or paths (every actor's events of every open window); use a shorter window, a larger EVERY, or a WHERE")
        }
        if heldBudget.distinctValues > limits.maxExactDistinctValues {
            throw .limitExceeded(.exactDistinctValues, limit: Int64(limits.maxExactDistinctValues),
                                 detail: "\(heldBudget.distinctValues) distinct values are held for exact_count_distinct over the open windows and groups; use count_distinct (bounded memory, ~0.8 % error), a shorter window or a WHERE")
        }
        stats.emissions += out.count
        return out
    }

    /// True while a row of `minute` can still reach one of this query's windows at watermark `w`,
    /// so its identity must be remembered (events: for their minute plus the grace, however long
    /// the window — duplicates carry the original's ts, and this bounds memory to grace × rate).
    func holds(_ minute: Int64, _ w: Int64) -> Bool {
        (plan.events ? minute &+ 60_000 : lastEnd(minute)) &+ options.graceMs > w
    }

    /// Gives back the group numbers this query holds (it leaves its set).
    func leave() {
        for ws in windows.values { ws.releaseGroups() }
    }

    /// Drops what this query kept for identities the table forgot.
    func release(_ indexes: [Int32]) {
        // Back to none: a new identity given the index writes its slot without reading it (`upsert`).
        for i in indexes where Int(i) < contributions.count { contributions[Int(i)] = .none }
    }

    private func forgetIdentities() {
        source.forget(held: holds, release: { indexes in
            self.release(indexes)
            self.terms.release(indexes)
        })
    }

    /// Applies a new revision of identity `i` (row `r` of the batch): retracts what its previous
    /// revision gave, adds this.
    private func upsert(_ i: Int, fresh: Bool, row r: Int, _ row: UnsafeBufferPointer<Value>, minute m: Int64, _ w0: Int64?) throws(QueryError) {
        let passes = terms.passes(binding, row: r, row)
        // A new identity's index holds nothing (forgotten ones were released), nor does one the
        // query holds no contribution for: not read.
        let old = fresh || !terms.mayHold(binding, identity: i) ? .none : contributions[i]
        if case .none = old {} else {
            if passes, let first = old.first, terms.sameKey(binding, row: r, row, as: first) {
                // A new revision in the same groups (the common case): swap its values in place,
                // with no lookup and no allocation.
                let arguments = binding.arguments
                old.forEach { g in
                    guard isLive(g, w0) else { return }
                    let accumulators = g.accumulators
                    for a in accumulators.indices {
                        let t = arguments[a]
                        if t >= 0 { accumulators[a].replace(terms.previousArgument(t, row: r), with: terms.argument(t, row: r, row)) }
                    }
                    g.touch()
                }
                return
            }
            retract(old, row: r, w0)
        }
        if passes {
            let slots = self.slots
            fillKey(r, row, identity: { [.int(m), slots.content.map { row[$0] } ?? .null, slots.user.map { row[$0] } ?? .null] })
            let link = try add(minute: m, w0, row: r, recording: true)
            if case .none = link {} else { terms.setHolds(binding, identity: i, true) }
            if fresh {
                // The slot holds none (see `release`): written without reading it.
                contributions.withUnsafeMutableBufferPointer { ($0.baseAddress! + i).initialize(to: link) }
            } else {
                contributions[i] = link
            }
        } else if case .none = old {
        } else {
            contributions[i] = .none
            terms.setHolds(binding, identity: i, false)
        }
    }

    /// Notes row `r` (whose values are `row`) as the one being applied. A projection's group key
    /// (its listed values, then the row's identity, which keeps equal-looking rows apart) is
    /// filled now; a grouped query's on first use (`ensureKey`).
    private func fillKey(_ r: Int, _ row: UnsafeBufferPointer<Value>, identity: () -> [Value]) {
        scratchRow = row
        if plan.projection {
            scratchKey.removeAll(keepingCapacity: true)
            for j in 0..<binding.keyCount { scratchKey.append(terms.key(binding, j, row: r, row)) }
            scratchKey.append(contentsOf: identity())
            scratchHash = GroupKey.hash(scratchKey)
            scratchKeyRow = r
            return
        }
        scratchKeyRow = -1
    }

    /// Copies row `r`'s group key (noted by `fillKey`) from the terms into `scratchKey`, in place
    /// (nothing allocated per row), unless it holds it.
    private func ensureKey(_ r: Int) {
        guard scratchKeyRow != r else { return }
        scratchKeyRow = r
        let n = binding.keyCount
        let row = scratchRow
        scratchHash = terms.keyHash(binding, row: r, row)
        if scratchKey.count != n { scratchKey = Array(repeating: .null, count: n) }
        scratchKey.withUnsafeMutableBufferPointer { key in
            for j in 0..<n { key[j] = terms.key(binding, j, row: r, row) }
        }
    }

    /// Aggregate `a`'s argument in row `r` (`previous`: the previous revision's).
    @inline(__always) private func argument(_ a: Int, row r: Int, previous: Bool = false) -> Value {
        let t = binding.arguments[a]
        guard t >= 0 else { return .null }
        return previous ? terms.previousArgument(t, row: r) : terms.argument(t, row: r, scratchRow)
    }

    private func lastEnd(_ minute: Int64) -> Int64 {
        guard let spec = plan.window else { return minute &+ 60_000 }
        // Rows come mostly in time order: the last answer holds for a range of times (a division
        // per query and row saved).
        if minute >= lastEndMemo.from && minute < lastEndMemo.to { return lastEndMemo.end }
        let end = spec.lastEnd(containing: minute)
        switch spec.kind {
        case .tumbling: lastEndMemo = (end &- spec.lengthMs, end, end)
        case .sliding: lastEndMemo = (end &- spec.lengthMs, end &- spec.lengthMs &+ spec.everyMs, end)
        }
        return end
    }

    private func isClosed(_ end: Int64, _ w0: Int64?) -> Bool {
        guard let w0 else { return false }
        return end &+ options.graceMs <= w0
    }

    /// Adds `scratchKey` and row `r`'s arguments to every open window of `minute`; with
    /// `recording`, returns the groups it went to (so a later revision can be swapped or
    /// retracted without lookups).
    @discardableResult
    private func add(minute: Int64?, _ w0: Int64?, row r: Int, recording: Bool) throws(QueryError) -> GroupLink {
        guard let spec = plan.window else {
            guard let ws = windows[Self.globalKey] else { return .none }
            let g = try add(to: ws, row: r)
            return recording ? .one(g) : .none
        }
        guard let m = minute else { return .none }
        if spec.kind == .tumbling, let ws = lastWindow, let start = ws.start, let end = ws.end, m >= start && m < end {
            // The window of the last row (rows come mostly in time order): no division, no lookup.
            guard !isClosed(end, w0) else { return .none }
            let g = try add(to: ws, row: r)
            return recording ? .one(g) : .none
        }
        var link = GroupLink.none
        try spec.forEachWindow(containing: m) { (start, end) throws(QueryError) in
            guard !isClosed(end, w0) else { return }
            let g = try add(to: try window(start, end), row: r)
            if recording { link.append(g) }
        }
        return link
    }

    private func window(_ start: Int64, _ end: Int64) throws(QueryError) -> WindowState {
        if let existing = windows[start] {
            lastWindow = existing
            return existing
        }
        let ws = WindowState(start: start, end: end, index: groupIndex.window(start))
        windows[start] = ws
        if plan.singleGroup { _ = try group(ws, ws.index.id([], hash: GroupKey.hash([]))) }
        lastWindow = ws
        return ws
    }

    private func add(to ws: WindowState, row r: Int) throws(QueryError) -> GroupState {
        // The row's group number: found by another query of the same window and key list, or
        // looked up (and remembered for the others).
        let id: Int32
        if let known = groupIndex.remembered(row: r, in: ws.index) {
            id = known
        } else {
            ensureKey(r)
            id = ws.index.id(scratchKey, hash: scratchHash)
            groupIndex.remember(row: r, in: ws.index, id)
        }
        let g = try group(ws, id)
        let accumulators = g.accumulators
        for i in accumulators.indices { accumulators[i].add(argument(i, row: r)) }
        g.rows += 1
        g.touch()
        return g
    }

    /// This query's group numbered `id` in `ws`, created if it has none.
    private func group(_ ws: WindowState, _ id: Int32) throws(QueryError) -> GroupState {
        if let g = ws.group(id) { return g }
        if totalGroups >= limits.maxGroups {
            throw .limitExceeded(.groups, limit: Int64(limits.maxGroups),
                                 detail: "more than \(limits.maxGroups) groups over \(windows.count) open window(s); narrow GROUP BY or WHERE")
        }
        let g = GroupState(id: id, key: ws.index.keys[Int(id)], window: ws, accumulators: plan.aggregates.map {
            Accumulators.make($0, distinctThreshold: options.distinctExactThreshold, budget: heldBudget)
        })
        ws.insert(g)
        totalGroups += 1
        return g
    }

    /// A group still counts: its window is open (by the watermark the batch started with) and it
    /// was not dropped.
    private func isLive(_ g: GroupState, _ w0: Int64?) -> Bool {
        !g.detached && !(g.window.end.map { isClosed($0, w0) } ?? false)
    }

    /// Takes back what the previous revision of row `r`'s identity gave.
    private func retract(_ link: GroupLink, row r: Int, _ w0: Int64?) {
        link.forEach { g in
            guard isLive(g, w0) else { return }
            let accumulators = g.accumulators
            for i in accumulators.indices { accumulators[i].remove(argument(i, row: r, previous: true)) }
            g.rows -= 1
            g.touch()
            if g.rows <= 0 && !plan.singleGroup {
                g.window.remove(g)
                g.detached = true
                totalGroups -= 1
            }
        }
    }

    // MARK: - Time

    /// Declares the input partitions before reading: until each has delivered a row (or stayed
    /// silent for the idle-partition timeout), the watermark does not move. Without this, reading
    /// a backlog partition by partition lets the first one close windows the others still feed.
    public func expectPartitions(_ partitions: [Int], nowMs: Int64) {
        precondition(!inSet, "a query of a QuerySet reads through its set")
        source.expectPartitions(partitions, nowMs: nowMs)
    }

    /// Closes windows the watermark has passed (plus grace). Returns their final tables (EMIT
    /// EVERY parks them until the next tick).
    private func closeWindows() -> [QueryResult] {
        guard let w = source.wm, plan.window != nil else { return [] }
        var out: [QueryResult] = []
        let closing = windows.values.filter { ws in ws.end.map { isClosed($0, w) } ?? false }
            .sorted { $0.sortKey < $1.sortKey }
        for ws in closing {
            out.append(result(ws, final: true))
            ws.detachGroups()
            windows[ws.sortKey] = nil
            // No row reaches it any more, for any query of the set (see `GroupIndex`).
            groupIndex.drop(ws.sortKey)
            if lastWindow === ws { lastWindow = nil }
            totalGroups -= ws.count
        }
        if case .every = plan.emit {
            pendingFinal.append(contentsOf: out)
            return []
        }
        return out
    }

    /// Drives EMIT EVERY (emits the windows that changed since their last emission, plus the final
    /// tables of windows closed since the last tick, at most once per period) and idle-partition
    /// detection. Call it regularly with a wall clock in epoch ms.
    public func tick(nowMs: Int64) -> [QueryResult] {
        precondition(!inSet, "a query of a QuerySet reads through its set")
        guard failure == nil else { return [] }
        let moved = source.tick(nowMs: nowMs)
        let out = ticked(watermarkMoved: moved, nowMs: nowMs)
        if moved { forgetIdentities() }
        return out
    }

    /// `tick` after the table took the clock.
    func ticked(watermarkMoved: Bool, nowMs: Int64) -> [QueryResult] {
        var out: [QueryResult] = []
        if watermarkMoved { out += closeWindows() }
        if case .every(let period) = plan.emit, period > 0 {
            if nextDue.map({ nowMs >= $0 }) ?? true {
                out += pendingFinal
                pendingFinal = []
                for ws in windows.values.sorted(by: { $0.sortKey < $1.sortKey }) where ws.changed {
                    if let r = changedResult(ws) { out.append(r) }
                }
                nextDue = (floorDiv(nowMs, period) &+ 1) &* period
            }
        }
        stats.emissions += out.count
        return out
    }

    /// End of input: the final table of every open window (and any parked final tables). State is
    /// cleared; rows ingested afterwards start new windows.
    public func finish() -> [QueryResult] {
        precondition(!inSet, "a query of a QuerySet reads through its set")
        source.reset()
        terms.reset()
        return finished()
    }

    /// `finish` without the table (a set resets its table once).
    func finished() -> [QueryResult] {
        contributions = []
        guard failure == nil else { return [] }
        var out = pendingFinal
        pendingFinal = []
        for ws in windows.values.sorted(by: { $0.sortKey < $1.sortKey }) {
            out.append(result(ws, final: true))
            ws.detachGroups()
        }
        windows = [:]
        lastWindow = nil
        totalGroups = 0
        resetGlobalWindow()
        stats.emissions += out.count
        return out
    }

    private func resetGlobalWindow() {
        guard plan.window == nil else { return }
        let ws = WindowState(start: nil, end: nil, index: groupIndex.window(Self.globalKey))
        windows[Self.globalKey] = ws
        if plan.singleGroup {
            // SQL: an aggregate without GROUP BY yields one row even over no input.
            ws.insert(GroupState(id: ws.index.id([], hash: GroupKey.hash([])), key: [], window: ws, accumulators: plan.aggregates.map {
                Accumulators.make($0, distinctThreshold: options.distinctExactThreshold, budget: heldBudget)
            }))
            totalGroups = 1
        }
    }

    // MARK: - Output

    /// The window's table if it differs from what was last emitted for it.
    private func changedResult(_ ws: WindowState) -> QueryResult? {
        ws.changed = false
        let rows = table(ws)
        if let last = ws.lastEmitted, last == rows { return nil }
        ws.lastEmitted = rows
        return QueryResult(windowStart: ws.start, windowEnd: ws.end, final: false, columns: plan.columns, rows: rows)
    }

    private func result(_ ws: WindowState, final: Bool) -> QueryResult {
        QueryResult(windowStart: ws.start, windowEnd: ws.end, final: final, columns: plan.columns, rows: table(ws))
    }

    private func checkRowsOut(_ ws: WindowState) throws(QueryError) {
        guard ws.count > limits.maxRowsOut else { return }
        if let l = plan.limit, l <= limits.maxRowsOut { return }
        var n = ws.count
        if plan.having != nil {
            n = 0
            ws.forEachGroup { g in
                evaluate(g, ws)
                if g.passes { n += 1 }
            }
        }
        if n > limits.maxRowsOut {
            let span = ws.start.map { "window starting \($0)" } ?? "the result"
            throw .limitExceeded(.rowsOut, limit: Int64(limits.maxRowsOut),
                                 detail: "\(span) has \(n) rows; add LIMIT (at most \(limits.maxRowsOut)) or narrow GROUP BY/WHERE")
        }
    }

    /// Recomputes a changed group's output values, HAVING verdict and ORDER BY keys.
    private func evaluate(_ g: GroupState, _ ws: WindowState) {
        guard g.dirty else { return }
        var ctx = EvalContext()
        ctx.keys = g.key
        ctx.aggregates = g.accumulators.map(\.result)
        if let s = ws.start { ctx.windowStart = .int(s) }
        if let e = ws.end { ctx.windowEnd = .int(e) }
        var outputs: [Value] = []
        outputs.reserveCapacity(plan.outputs.count)
        for o in plan.outputs { outputs.append(o.eval(ctx)) }
        ctx.outputs = outputs
        var passes = true
        if let h = plan.having, case .bool(true) = h.eval(ctx) {} else if plan.having != nil { passes = false }
        g.outputs = outputs
        g.passes = passes
        g.orderKeys = plan.order.map { $0.expr.eval(ctx) }
        g.dirty = false
    }

    /// HAVING, ORDER BY (ties broken by group key, so output is deterministic) and LIMIT.
    private func table(_ ws: WindowState) -> [[Value]] {
        var entries: [GroupState] = []
        entries.reserveCapacity(ws.count)
        ws.forEachGroup { g in
            evaluate(g, ws)
            if g.passes { entries.append(g) }
        }
        let order = plan.order
        let less: (GroupState, GroupState) -> Bool = { a, b in
            for i in order.indices {
                var c = Self.compareForOrder(a.orderKeys[i], b.orderKeys[i])
                if order[i].descending { c = -c }
                if c != 0 { return c < 0 }
            }
            return Self.compareKeys(a.key, b.key) < 0
        }
        let selected: [GroupState]
        if let limit = plan.limit, limit < entries.count {
            selected = topK(entries, limit, less)
        } else {
            selected = entries.sorted(by: less)
        }
        return selected.map(\.outputs)
    }

    /// NULLs sort after every value ascending (first descending), as in PostgreSQL.
    static func compareForOrder(_ a: Value, _ b: Value) -> Int {
        switch (a.isNull, b.isNull) {
        case (true, true): return 0
        case (true, false): return 1
        case (false, true): return -1
        default: return Value.order(a, b)
        }
    }

    static func compareKeys(_ a: [Value], _ b: [Value]) -> Int {
        for (x, y) in zip(a, b) {
            let c = Value.order(x, y)
            if c != 0 { return c }
        }
        return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
    }
}

/// The k smallest elements by `less`, sorted: a bounded max-heap, O(n log k).
func topK<T>(_ items: [T], _ k: Int, _ less: (T, T) -> Bool) -> [T] {
    guard k > 0 else { return [] }
    var heap: [T] = []
    heap.reserveCapacity(k)
    // A max-heap: the largest kept element sits on top, ready to be replaced.
    func above(_ a: T, _ b: T) -> Bool { less(b, a) }
    for item in items {
        if heap.count < k {
            BinaryHeap.push(item, onto: &heap, above: above)
        } else if less(item, heap[0]) {
            BinaryHeap.replaceTop(&heap, with: item, above: above)
        }
    }
    return heap.sorted(by: less)
}

// MARK: - State

/// Where the engine's own fields sit in the layout.
struct EngineSlots {
    /// `minute` (upsert rows) or `ts` (events).
    let time: Int
    let final, content, user, rev, eventId: Int?

    init(_ layout: RowLayout, events: Bool) {
        time = layout.slot(events ? "ts" : "minute")!
        final = events ? nil : layout.slot("final")
        content = events ? nil : layout.slot("content_id")
        user = events ? nil : layout.slot("user_id")
        rev = events ? nil : layout.slot("rev")
        eventId = events ? layout.slot("event_id") : nil
    }
}

struct IdentityKey: Hashable {
    let content: Value
    let user: Value
}

/// The groups one live row went to: one per open window of its minute (one for TUMBLING and
/// without WINDOW, the common case, held without an array).
enum GroupLink {
    case none
    case one(GroupState)
    case many([GroupState])

    var first: GroupState? {
        switch self {
        case .none: nil
        case .one(let g): g
        case .many(let gs): gs.first
        }
    }

    @inline(__always) func forEach(_ body: (GroupState) -> Void) {
        switch self {
        case .none: break
        case .one(let g): body(g)
        case .many(let gs): for g in gs { body(g) }
        }
    }

    mutating func append(_ g: GroupState) {
        switch self {
        case .none: self = .one(g)
        case .one(let first): self = .many([first, g])
        case .many(var gs):
            self = .none
            gs.append(g)
            self = .many(gs)
        }
    }
}

final class GroupState {
    /// Its number in its window's `GroupIndex.Window`, which holds its key too.
    let id: Int32
    let key: [Value]
    /// Its window; valid while `detached` is false (a window detaches its groups when dropped).
    unowned(unsafe) let window: WindowState
    /// Dropped: its window closed, or its last row left.
    var detached = false
    var rows = 0
    let accumulators: [any Accumulator]
    /// Something was added or retracted since `outputs`, `passes` and `orderKeys` were computed.
    var dirty = true
    var outputs: [Value] = []
    var passes = true
    var orderKeys: [Value] = []

    init(id: Int32, key: [Value], window: WindowState, accumulators: [any Accumulator]) {
        self.id = id
        self.key = key
        self.window = window
        self.accumulators = accumulators
    }

    /// Marks the group and its window changed.
    @inline(__always) func touch() {
        dirty = true
        window.changed = true
    }
}

/// A group's key in its window's map, with its hash computed once per row for every query of a
/// set (`RowTerms`) rather than by each query's map.
struct GroupKey: Hashable {
    let values: [Value]
    let hash: Int

    init(_ values: [Value], hash: Int) {
        self.values = values
        self.hash = hash
    }

    /// Consistent with `Value`'s equality (1 and 1.0 hash alike).
    static func hash(_ values: some Collection<Value>) -> Int {
        var h = Hasher()
        for v in values { v.hash(into: &h) }
        return h.finalize()
    }

    static func == (a: GroupKey, b: GroupKey) -> Bool { a.hash == b.hash && a.values == b.values }
    func hash(into h: inout Hasher) { h.combine(hash) }
}

final class WindowState {
    let start: Int64?
    let end: Int64?
    /// The numbers of its keys, shared with the set's queries of the same window and key list.
    let index: GroupIndex.Window
    /// This query's groups by number (nil: none for that number).
    @exclusivity(unchecked) private var groups: [GroupState?] = []
    private(set) var count = 0
    /// Something was added or retracted since the last emission.
    var changed = false
    var lastEmitted: [[Value]]?

    init(start: Int64?, end: Int64?, index: GroupIndex.Window) {
        self.start = start
        self.end = end
        self.index = index
    }

    @inline(__always) func group(_ id: Int32) -> GroupState? {
        Int(id) < groups.count ? groups[Int(id)] : nil
    }

    func insert(_ g: GroupState) {
        let i = Int(g.id)
        if groups.count <= i { groups.append(contentsOf: repeatElement(nil, count: max(index.capacity, i + 1) - groups.count)) }
        groups[i] = g
        count += 1
        index.hold(g.id)
    }

    /// Drops `g` (its last row left).
    func remove(_ g: GroupState) {
        groups[Int(g.id)] = nil
        count -= 1
        index.release(g.id)
    }

    func forEachGroup(_ body: (GroupState) -> Void) {
        for case let g? in groups { body(g) }
    }

    /// The window was dropped.
    func detachGroups() { forEachGroup { $0.detached = true } }

    /// Gives back its numbers (the query left its set).
    func releaseGroups() { forEachGroup { index.release($0.id) } }

    var sortKey: Int64 { start ?? Int64.min }
}
