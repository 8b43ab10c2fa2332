/// What the queries reading one source compute from each row — their WHERE conjuncts, GROUP BY
/// keys and aggregate arguments — registered once per distinct expression and computed once per
/// row of a batch, before any query applies it. Fifty dashboard panels that differ in a threshold
/// or a category list evaluate each distinct condition once per row, read their keys and
/// arguments from one place, and keep nothing per identity beyond the groups it went to.
///
/// Per batch (`compute`, after the `SourceTable` resolved it):
/// - `truths[row]`: a bit per shared WHERE conjunct (the first 64 distinct ones), set when the
///   conjunct is TRUE. A query's WHERE holds when all its bits are set and its residual (its
///   conjuncts beyond those 64) is TRUE: `passes`.
/// - per key list (queries with the same GROUP BY share one): the row's key (plain fields are
///   read from the row itself), its hash, and for a new revision whether it equals the key of
///   the identity's previous revision (`sameKey`; hash and comparison made by the first query
///   that needs them).
/// - per argument term: the row's value (a plain field: from the row), and for a new revision
///   the previous revision's (`previousArgument`), which is what a query that took the previous
///   revision retracts.
///
/// Why "previous revision" is every query's previous contribution: every query applies every
/// revision the table accepts, unless the revision is late for its windows — and then every later
/// revision of that minute is late for it too (the watermark only rises), so what it holds for the
/// identity is in closed windows nobody retracts from. A query added later has no contribution for
/// identities seen before it; a forgotten identity's index comes back with no contribution.
///
/// A query alone owns its terms (as it owns its source table); a `QuerySet`'s queries share one.
final class RowTerms {
    /// A query's view of the terms.
    struct Binding {
        /// Bits of `truths` its WHERE needs set.
        var mask: UInt64 = 0
        /// Its conjunct terms.
        var conjuncts: [Int] = []
        /// Its conjunct terms that got no bit (past the 64th): evaluated by the query itself.
        var residual: [Int] = []
        /// Its key list.
        var keys: Int
        var keyCount: Int
        /// Per aggregate, its argument term (-1: count(*), no argument).
        var arguments: [Int]
        /// Its bit in `holders` (0 past the 64th query: it always looks).
        var holder: UInt64 = 0
        /// Its group numbers (shared with the queries of the same window and key list).
        var groups: Int = 0
    }

    enum ArgumentKind {
        case value(CExpr)
        /// count_distinct: the value's 64-bit hash.
        case distinct(CExpr)
        case sequence(SequenceSpec)
    }

    private struct Term<T> {
        let key: String?
        let unbound: T
        var bound: T
        var users = 0
    }

    private var layout: RowLayout
    private var slots: EngineSlots
    private let events: Bool

    private var conjuncts: [Term<CExpr>] = []
    private var keyLists: [Term<[CExpr]>] = []
    private var argumentTerms: [Term<ArgumentKind>] = []
    private var conjunctIndex: [String: Int] = [:]
    private var keyListIndex: [String: Int] = [:]
    private var argumentIndex: [String: Int] = [:]
    /// Group numbers per (window, key list): see `GroupIndex`.
    private var groupIndexes: [Term<GroupIndex>] = []
    private var groupIndexIndex: [String: Int] = [:]
    private var activeGroupIndexes: [GroupIndex] = []
    /// The registered queries' masks (how many have each).
    private var masks: [UInt64: Int] = [:]
    /// What `prepare` took out of the registry for a batch.
    private var active: [(UInt64, CExpr)] = []
    private var activeArguments: [(Int, ArgumentKind, Int)] = []
    private var hashedKeys: [Int] = []
    private var activeKeys: [(Int, [CExpr])] = []
    private var activeMasks: [UInt64] = []

    // Per batch.
    @exclusivity(unchecked) private var truths: [UInt64] = []
    /// Per key list (not all plain fields): `count * keyCount` values, row-major.
    @exclusivity(unchecked) private var keyValues: [[Value]] = []
    /// Per key list whose keys are all plain fields, their slots, and per argument term that is a
    /// plain field, its slot (else -1): such values are read from the row, not copied per row.
    private var keySlots: [[Int]?] = []
    private var argumentSlots: [Int] = []
    /// Per key list, per row: `GroupKey.hash` of the row's key, computed by the first query that
    /// looks a group up (0: not yet; most rows are new revisions in the same group, found without).
    @exclusivity(unchecked) private var keyHashes: [[Int]] = []
    /// Per row, a bit per key list (the first 64): whether a query already compared the key with
    /// its previous revision's (`known`), and found it the same (`unchanged`). See `sameKey`.
    @exclusivity(unchecked) private var known: [UInt64] = []
    @exclusivity(unchecked) private var unchanged: [UInt64] = []
    /// `count * argumentTerms.count` values, row-major; `previousArguments` alike, for new revisions.
    /// The per-batch arrays are only grown, never cleared: a slot is written for every row a query
    /// reads it for (rows no query takes are not read; a first revision's previous arguments
    /// neither).
    @exclusivity(unchecked) private var argumentValues: [Value] = []
    @exclusivity(unchecked) private var previousArguments: [Value] = []
    /// Distinct WHERE conjuncts registered (the first 64 get a bit).
    var conjunctCount: Int { conjuncts.count }

    /// Per identity (by its table index), a bit per query holding a contribution for it: a query
    /// whose bit is clear has none and need not read its own storage (a cache miss per query
    /// and row, for the queries a row's previous revision did not pass). Cleared for forgotten
    /// identities; a set bit only means "look".
    @exclusivity(unchecked) private var holders: [UInt64] = []
    private var holderBitsInUse: UInt64 = 0

    // Per identity (by its table index): its latest revision's arguments.
    @exclusivity(unchecked) private var storedArguments: [Value] = []
    private var storedStride = 0

    init(layout: RowLayout, events: Bool) {
        self.layout = layout
        self.events = events
        slots = EngineSlots(layout, events: events)
    }

    /// Registers a query's row-level expressions (its unbound `plan`) and says where to read them.
    func register(_ plan: Plan) -> Binding {
        var binding = Binding(keys: 0, keyCount: plan.keys.count, arguments: [])
        for c in plan.filter.map(Self.conjuncts) ?? [] {
            let i = intern(c, key: c.sharingKey, in: &conjuncts, index: &conjunctIndex) { layout.bind($0) }
            binding.conjuncts.append(i)
            if i < 64 { binding.mask |= 1 << UInt64(i) } else { binding.residual.append(i) }
        }
        masks[binding.mask, default: 0] += 1
        if holderBitsInUse != .max {
            binding.holder = 1 << UInt64((~holderBitsInUse).trailingZeroBitCount)
            holderBitsInUse |= binding.holder
        }
        let keyKey = plan.keys.allSatisfy { $0.sharingKey != nil } ? plan.keys.map { $0.sharingKey! }.joined(separator: "\u{1}") : nil
        binding.keys = intern(plan.keys, key: keyKey, in: &keyLists, index: &keyListIndex) { $0.map(layout.bind) }
        binding.arguments = plan.aggregates.map { spec in
            let kind: ArgumentKind
            let key: String?
            if let seq = spec.sequence {
                kind = .sequence(seq); key = seq.sharingKey
            } else if let a = spec.argument {
                let distinct = spec.kind == .countDistinct || spec.kind == .exactCountDistinct
                kind = distinct ? .distinct(a) : .value(a)
                key = a.sharingKey.map { (distinct ? "d" : "v") + $0 }
            } else {
                return -1
            }
            return intern(kind, key: key, in: &argumentTerms, index: &argumentIndex) { self.bind($0) }
        }
        // A projection's group key carries a per-query row number: its numbers are its own.
        let window = plan.window.map { "\($0.kind) \($0.lengthMs) \($0.everyMs)" } ?? "none"
        let groupsKey = plan.projection ? nil : "\(binding.keys)\u{1}\(window)"
        binding.groups = intern(GroupIndex(sharesRows: !plan.projection), key: groupsKey, in: &groupIndexes, index: &groupIndexIndex) { $0 }
        restride()
        refreshSlots()
        return binding
    }

    /// The group numbers of `binding`'s window and key list.
    @inline(__always) func groupIndex(_ binding: Binding) -> GroupIndex { groupIndexes[binding.groups].unbound }

    /// Gives back what `register` took (the terms no query uses are no longer computed).
    func unregister(_ binding: Binding) {
        for c in binding.conjuncts { conjuncts[c].users -= 1 }
        holderBitsInUse &= ~binding.holder
        masks[binding.mask]! -= 1
        if masks[binding.mask] == 0 { masks[binding.mask] = nil }
        keyLists[binding.keys].users -= 1
        for a in binding.arguments where a >= 0 { argumentTerms[a].users -= 1 }
        groupIndexes[binding.groups].users -= 1
    }

    /// Reads batches of `layout` from now on: every term is bound to its slots again.
    func bind(_ layout: RowLayout) {
        self.layout = layout
        slots = EngineSlots(layout, events: events)
        for i in conjuncts.indices { conjuncts[i].bound = layout.bind(conjuncts[i].unbound) }
        for i in keyLists.indices { keyLists[i].bound = keyLists[i].unbound.map(layout.bind) }
        for i in argumentTerms.indices { argumentTerms[i].bound = bind(argumentTerms[i].unbound) }
        refreshSlots()
    }

    private func refreshSlots() {
        func slot(_ e: CExpr) -> Int? { if case .slot(let s) = e { s } else { nil } }
        keySlots = keyLists.map { list in
            let slots = list.bound.compactMap(slot)
            return slots.count == list.bound.count ? slots : nil
        }
        argumentSlots = argumentTerms.map { term in
            if case .value(let e) = term.bound, let s = slot(e) { s } else { -1 }
        }
    }

    /// Rows handed to the queries at a time: a chunk's terms are still in the first-level cache
    /// when the queries read them.
    static let chunk = 256

    /// Computes the terms of `batch`, which `table` has resolved, a chunk of rows at a time, and
    /// hands each chunk's rows to `apply` (the queries) once its terms are ready.
    func applyInChunks<E: Error>(_ batch: RowBatch, _ table: SourceTable, _ apply: (Range<Int>) throws(E) -> Void) throws(E) {
        prepare(batch, capacity: table.capacity)
        for start in stride(from: 0, to: batch.count, by: Self.chunk) {
            let rows = start..<min(start + Self.chunk, batch.count)
            compute(batch, table.verdicts, rows: rows)
            try apply(rows)
        }
    }

    /// Readies the terms for `batch` (`capacity`: the table's identity indexes): sizes the
    /// storage and takes the terms some query uses out of the registry.
    private func prepare(_ batch: RowBatch, capacity: Int) {
        let count = batch.count
        let stride = argumentTerms.count
        while keyValues.count < keyLists.count { keyValues.append([]); keyHashes.append([]) }
        for k in keyLists.indices where keyLists[k].users > 0 {
            let n = keyLists[k].bound.count
            if keyValues[k].count < count * n { keyValues[k].append(contentsOf: repeatElement(.null, count: count * n - keyValues[k].count)) }
            if keyHashes[k].count < count { keyHashes[k].append(contentsOf: repeatElement(0, count: count - keyHashes[k].count)) }
        }
        if holders.count < capacity { holders.append(contentsOf: repeatElement(0, count: capacity - holders.count)) }
        if storedArguments.count < capacity * stride {
            storedArguments.append(contentsOf: repeatElement(.null, count: capacity * stride - storedArguments.count))
        }
        if truths.count < count {
            truths.append(contentsOf: repeatElement(0, count: count - truths.count))
            unchanged.append(contentsOf: repeatElement(0, count: count - unchanged.count))
            known.append(contentsOf: repeatElement(0, count: count - known.count))
        }
        if argumentValues.count < count * stride {
            argumentValues.append(contentsOf: repeatElement(.null, count: count * stride - argumentValues.count))
            previousArguments.append(contentsOf: repeatElement(.null, count: count * stride - previousArguments.count))
        }
        active = conjuncts.prefix(64).indices.filter { conjuncts[$0].users > 0 }.map { (UInt64(1) << UInt64($0), conjuncts[$0].bound) }
        activeArguments = argumentTerms.indices.filter { argumentTerms[$0].users > 0 }.map { ($0, argumentTerms[$0].bound, argumentSlots[$0]) }
        activeKeys = keyLists.indices.filter { keyLists[$0].users > 0 && keySlots[$0] == nil }.map { ($0, keyLists[$0].bound) }
        hashedKeys = keyLists.indices.filter { keyLists[$0].users > 0 }
        activeMasks = Array(masks.keys)
        activeGroupIndexes = groupIndexes.filter { $0.users > 0 }.map(\.unbound)
        for g in activeGroupIndexes { g.prepare(count: count) }
    }

    /// Computes every used term for `rows` of `batch` the table judged (`verdicts`), after
    /// `prepare`. Keys and arguments only for rows some query may take: a revision no query takes
    /// leaves no query a contribution whose keys or arguments a later revision would need (its
    /// previous arguments are still handed over: whoever took the previous revision retracts them).
    private func compute(_ batch: RowBatch, _ verdicts: [RowVerdict], rows: Range<Int>) {
        let width = batch.layout.width
        let stride = argumentTerms.count
        let active = self.active, arguments = activeArguments, keys = activeKeys, masks = activeMasks
        let groupNumbers = activeGroupIndexes
        let everyRow = masks.contains(0)
        batch.values.withUnsafeBufferPointer { base in
            truths.withUnsafeMutableBufferPointer { truths in
                for r in rows {
                    let verdict = verdicts[r]
                    // Duplicates and stale revisions reach no query.
                    if verdict.kind == .duplicate || verdict.kind == .stale { continue }
                    let ctx = EvalContext(row: UnsafeBufferPointer(rebasing: base[(r * width)..<(r * width + width)]))
                    var t: UInt64 = 0
                    for (bit, c) in active {
                        if case .bool(true) = c.eval(ctx) { t |= bit }
                    }
                    truths[r] = t
                    known[r] = 0
                    unchanged[r] = 0
                    for g in groupNumbers { g.clear(row: r) }
                    let identity = verdict.kind == .revision ? Int(verdict.identity) : -1
                    // A first revision has no previous one to retract or compare with.
                    let hasPrevious = identity >= 0 && !verdict.fresh
                    guard everyRow || masks.contains(where: { t & $0 == $0 }) else {
                        // Nobody takes it, but a query that took the previous revision retracts that.
                        if hasPrevious {
                            for (a, _, _) in arguments { previousArguments[r * stride + a] = storedArguments[identity * stride + a] }
                            // (What is stored stays: no query takes this revision, so none will retract it.)
                        }
                        continue
                    }
                    for (a, term, slot) in arguments {
                        let v: Value
                        if slot >= 0 {
                            v = ctx.row[slot]
                        } else {
                            v = evaluate(term, ctx)
                            argumentValues[r * stride + a] = v
                        }
                        if hasPrevious {
                            previousArguments[r * stride + a] = storedArguments[identity * stride + a]
                            storedArguments[identity * stride + a] = v
                        } else if identity >= 0 {
                            // A new identity's slots hold null (see `release`): written without reading them.
                            storedArguments.withUnsafeMutableBufferPointer { ($0.baseAddress! + identity * stride + a).initialize(to: v) }
                        }
                    }
                    for (k, exprs) in keys {
                        let n = exprs.count
                        for j in 0..<n { keyValues[k][r * n + j] = exprs[j].eval(ctx) }
                    }
                    for k in hashedKeys { keyHashes[k][r] = 0 }
                }
            }
        }
    }

    /// Clears what is stored for forgotten identities, so their indexes, when handed out again,
    /// are written without reading what was there (a new identity's first row).
    func release(_ indexes: [Int32]) {
        for i in indexes where Int(i) < holders.count { holders[Int(i)] = 0 }
        let stride = argumentTerms.count
        let count = storedArguments.count
        storedArguments.withUnsafeMutableBufferPointer { stored in
            for i in indexes where (Int(i) + 1) * stride <= count {
                for a in 0..<stride { stored[Int(i) * stride + a] = .null }
            }
        }
    }

    /// Forgets every identity (the table was reset: indexes start again).
    func reset() {
        storedArguments = []
        holders = []
        for g in groupIndexes { g.unbound.reset() }
    }

    /// Key `j` of `binding`'s list for row `r` (whose values are `row`).
    @inline(__always) func key(_ binding: Binding, _ j: Int, row r: Int, _ row: UnsafeBufferPointer<Value>) -> Value {
        if let slots = keySlots[binding.keys] { return row[slots[j]] }
        return keyValues[binding.keys][r * binding.keyCount + j]
    }

    /// Argument term `t` of row `r` (whose values are `row`).
    @inline(__always) func argument(_ t: Int, row r: Int, _ row: UnsafeBufferPointer<Value>) -> Value {
        let slot = argumentSlots[t]
        return slot >= 0 ? row[slot] : argumentValues[r * argumentTerms.count + t]
    }

    /// Argument term `t` of the previous revision of row `r`'s identity.
    @inline(__always) func previousArgument(_ t: Int, row r: Int) -> Value {
        previousArguments[r * argumentTerms.count + t]
    }

    /// Whether row `r`'s key for `binding` is its identity's previous revision's, which is `group`'s
    /// (the group the query's contribution of the previous revision went to). Every query with
    /// such a contribution took that same revision (see the type's notes), so the first query of
    /// a key list to compare answers for the others.
    @inline(__always) func sameKey(_ binding: Binding, row r: Int, _ row: UnsafeBufferPointer<Value>, as group: GroupState) -> Bool {
        let k = binding.keys, n = binding.keyCount
        let bit: UInt64 = k < 64 ? 1 << UInt64(k) : 0
        if known[r] & bit != 0 { return unchanged[r] & bit != 0 }
        var same = true
        // Compared as group maps compare keys (1 and 1.0 are one key); a projection's group key
        // carries the identity after the listed values.
        group.key.withUnsafeBufferPointer { groupKey in
            for j in 0..<n where groupKey[j] != key(binding, j, row: r, row) { same = false; break }
        }
        known[r] |= bit
        if same { unchanged[r] |= bit }
        return same
    }

    /// Whether the query of `binding` may hold a contribution for identity `i`.
    @inline(__always) func mayHold(_ binding: Binding, identity i: Int) -> Bool {
        binding.holder == 0 || holders[i] & binding.holder != 0
    }

    /// Notes whether the query of `binding` holds a contribution for identity `i`.
    @inline(__always) func setHolds(_ binding: Binding, identity i: Int, _ holds: Bool) {
        if holds { holders[i] |= binding.holder } else { holders[i] &= ~binding.holder }
    }

    /// Row `r`'s `GroupKey.hash` for `binding`'s key list.
    @inline(__always) func keyHash(_ binding: Binding, row r: Int, _ row: UnsafeBufferPointer<Value>) -> Int {
        let k = binding.keys
        if keyHashes[k][r] != 0 { return keyHashes[k][r] }
        var hasher = Hasher()
        for j in 0..<binding.keyCount { key(binding, j, row: r, row).hash(into: &hasher) }
        let h = hasher.finalize()
        keyHashes[k][r] = h
        return h
    }

    /// Whether a row's WHERE holds for `binding`.
    @inline(__always) func passes(_ binding: Binding, row r: Int, _ row: UnsafeBufferPointer<Value>) -> Bool {
        guard truths[r] & binding.mask == binding.mask else { return false }
        // Bound to the current layout (`bind` rebinds the terms, not the bindings).
        for c in binding.residual {
            guard case .bool(true) = conjuncts[c].bound.eval(EvalContext(row: row)) else { return false }
        }
        return true
    }

    // MARK: - Registration

    private func intern<T>(_ unbound: T, key: String?, in terms: inout [Term<T>], index: inout [String: Int],
                           bind: (T) -> T) -> Int {
        if let key, let i = index[key] {
            terms[i].users += 1
            return i
        }
        terms.append(Term(key: key, unbound: unbound, bound: bind(unbound), users: 1))
        if let key { index[key] = terms.count - 1 }
        return terms.count - 1
    }

    private func bind(_ kind: ArgumentKind) -> ArgumentKind {
        switch kind {
        case .value(let e): return .value(layout.bind(e))
        case .distinct(let e): return .distinct(layout.bind(e))
        case .sequence(var seq):
            seq.actor = layout.bind(seq.actor)
            seq.conditions = seq.conditions.map(layout.bind)
            seq.page = seq.page.map(layout.bind)
            return .sequence(seq)
        }
    }

    /// New argument terms widen each identity's stored arguments: keep what is stored.
    private func restride() {
        let stride = argumentTerms.count
        guard stride != storedStride else { return }
        if storedStride > 0 && !storedArguments.isEmpty {
            let identities = storedArguments.count / storedStride
            var widened = [Value](repeating: .null, count: identities * stride)
            for i in 0..<identities {
                for a in 0..<storedStride { widened[i * stride + a] = storedArguments[i * storedStride + a] }
            }
            storedArguments = widened
        } else {
            storedArguments = []
        }
        storedStride = stride
    }

    private static func conjuncts(_ e: CExpr) -> [CExpr] {
        if case .and(let l, let r) = e { return conjuncts(l) + conjuncts(r) }
        return [e]
    }

    // MARK: - Arguments

    private func evaluate(_ kind: ArgumentKind, _ ctx: EvalContext) -> Value {
        switch kind {
        case .value(let e): return e.eval(ctx)
        case .distinct(let e):
            let v = e.eval(ctx)
            return v.isNull ? .null : .int(Int64(bitPattern: ValueHash.hash(v)))
        case .sequence(let seq): return sequenceContribution(seq, ctx)
        }
    }

    /// What an event gives a sequence aggregate: its actor, time and id, and the funnel steps it
    /// matches or its page (null when it matters to none).
    private func sequenceContribution(_ seq: SequenceSpec, _ ctx: EvalContext) -> Value {
        guard let ts = ctx.row[slots.time].exactInt else { return .null }
        let info: Value
        switch seq.kind {
        case .sessions: info = .null
        case .funnel:
            var mask: Int64 = 0
            for (i, c) in seq.conditions.enumerated() where c.eval(ctx) == .bool(true) { mask |= 1 << i }
            if mask == 0 { return .null }
            info = .int(mask)
        case .paths:
            guard let page = seq.page?.eval(ctx), case .string = page else { return .null }
            info = page
        }
        return SequenceAccumulator.contribution(actor: seq.actor.eval(ctx), ts: ts, eventId: slots.eventId.map { ctx.row[$0] } ?? .null, info: info)
    }
}

extension RowLayout {
    /// `e` with each field reference turned into its slot.
    func bind(_ e: CExpr) -> CExpr {
        e.rewritingFields { path in
            guard let s = slots[path] else { preconditionFailure("layout lacks \(path)") }
            return .slot(s)
        }
    }
}

extension CExpr {
    /// A text that two expressions share only when they compute the same thing from a row (so
    /// one evaluation serves both); nil for an expression not worth or not safe to share.
    /// Literals carry their type: `x + 1` and `x + 1.0` differ.
    var sharingKey: String? {
        func k(_ e: CExpr) -> String? { e.sharingKey }
        func all(_ es: [CExpr]) -> String? {
            var parts: [String] = []
            for e in es { guard let p = e.sharingKey else { return nil }; parts.append(p) }
            return parts.joined(separator: ",")
        }
        func join(_ tag: String, _ parts: String?...) -> String? {
            var out = tag + "("
            for (i, p) in parts.enumerated() { guard let p else { return nil }; out += (i > 0 ? "," : "") + p }
            return out + ")"
        }
        switch self {
        case .literal(let v): return v.sharingKey
        case .field(let p): return "f(" + p.map { "\($0.utf8.count):\($0)" }.joined() + ")"
        case .slot(let i): return "s\(i)"
        case .key, .aggregate, .output, .windowStart, .windowEnd: return nil
        case .negate(let e): return join("neg", k(e))
        case .not(let e): return join("not", k(e))
        case .arith(let op, let a, let b): return join("a\(op)", k(a), k(b))
        case .compare(let op, let a, let b): return join("c\(op)", k(a), k(b))
        case .and(let a, let b): return join("and", k(a), k(b))
        case .or(let a, let b): return join("or", k(a), k(b))
        case .inSet(let e, let set, let hasNull, let negated):
            let members = set.members.compactMap(\.sharingKey).sorted()
            guard members.count == set.members.count else { return nil }
            return join("in\(hasNull)\(negated)", k(e), "[" + members.joined(separator: ",") + "]")
        case .inList(let e, let list, let negated): return join("inl\(negated)", k(e), all(list))
        case .between(let e, let lo, let hi, let negated): return join("btw\(negated)", k(e), k(lo), k(hi))
        case .like(let e, let p, let negated): return join("like\(negated)", k(e), Value.string(p.pattern).sharingKey)
        case .likeDynamic(let e, let p, let negated): return join("liked\(negated)", k(e), k(p))
        case .isNull(let e, let negated): return join("null\(negated)", k(e))
        case .coalesce(let list): return join("coalesce", all(list))
        case .lower(let e): return join("lower", k(e))
        case .upper(let e): return join("upper", k(e))
        case .round(let e, let d): return join("round", k(e), d.map(k) ?? "none")
        case .conversion(let e): return join("conv", k(e))
        }
    }
}

extension SequenceSpec {
    /// What an event contributes depends on the actor and on the funnel's conditions or the page,
    /// not on the measure or the gap: `sessions(user_id, 30 MINUTES)` and
    /// `session_seconds(user_id, 30 MINUTES)` share one contribution per event.
    var sharingKey: String? {
        guard let actor = actor.sharingKey else { return nil }
        switch kind {
        case .sessions: return "qs(" + actor + ")"
        case .funnel:
            var parts: [String] = []
            for c in conditions { guard let k = c.sharingKey else { return nil }; parts.append(k) }
            return "qf(" + actor + ";" + parts.joined(separator: ",") + ")"
        case .paths:
            guard let page = page?.sharingKey else { return nil }
            return "qp(" + actor + ";" + page + ")"
        }
    }
}

extension Value {
    /// A literal's text with its type (see `CExpr.sharingKey`); nil for objects and arrays.
    var sharingKey: String? {
        switch self {
        case .null: return "n"
        case .bool(let b): return b ? "t" : "f"
        case .int(let i): return "i\(i)"
        case .double(let d): return "d\(d.bitPattern)"
        case .string(let s): return "s\(s.utf8.count):\(s)"
        case .object, .array: return nil
        }
    }
}
