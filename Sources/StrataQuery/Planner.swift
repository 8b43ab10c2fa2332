/// Semantic checks and compilation of a parsed statement into a `Plan`.
///
/// Rules enforced here:
///  - aggregates only in SELECT, HAVING and ORDER BY; never nested; never in WHERE or GROUP BY;
///  - with GROUP BY or aggregates, every column outside an aggregate must be (part of) a GROUP BY
///    expression; GROUP BY may name a select alias or a select position (GROUP BY 1);
///  - HAVING and ORDER BY may use select aliases (an alias shadows a column of the same name)
///    and positions (ORDER BY 2 DESC);
///  - window_start()/window_end() need a WINDOW and are per-window values (not allowed in WHERE
///    or inside aggregates; in GROUP BY they are accepted and ignored, results are per window);
///  - SLIDING's EVERY must not exceed its length; conditions must be boolean where that is known.
struct Planner {
    private(set) var stmt: SelectStatement
    let lexer: Lexer
    /// The source's row schema when the query was planned against a catalog: columns and types
    /// are checked against it, and `SELECT *` expands to its fields.
    let schema: SourceSchema?
    /// The topics FROM resolved to (the first is the schema's).
    let topics: [String]

    private var aggregates: [AggregateSpec] = []
    private var aggregateIndex: [String: Int] = [:]
    private var keyExprs: [CExpr] = []
    private var keyTexts: [String] = []
    private var projection = false

    init(_ stmt: SelectStatement, text: String, schema: SourceSchema?, topics: [String]) {
        self.stmt = stmt
        self.lexer = Lexer(text)
        self.schema = schema
        self.topics = topics
    }

    private func error(_ e: Expr, _ message: String, hint: String? = nil) -> QueryError {
        .semantic(Diagnostic(location: e.location, length: e.length, message: message, hint: hint,
                             sourceLine: lexer.sourceLine(e.location.line)))
    }

    private func error(at loc: SourceLocation, length: Int = 1, _ message: String, hint: String? = nil) -> QueryError {
        .semantic(Diagnostic(location: loc, length: length, message: message, hint: hint, sourceLine: lexer.sourceLine(loc.line)))
    }

    mutating func plan() throws(QueryError) -> Plan {
        try expandStar()
        try checkColumns()
        let window = try planWindow()
        let emit = try planEmit()

        // WHERE: row-level only.
        var filter: CExpr? = nil
        if let w = stmt.filter {
            try forbidAggregates(w, "aggregate in WHERE is not allowed", hint: "use HAVING")
            try forbidWindowFunctions(w, "is not allowed in WHERE", hint: "filter on the minute column instead")
            try requireBoolean(w, "WHERE")
            filter = try compileRow(w)
        }

        // Output names: alias, else the expression's text.
        var names: [String] = []
        for item in stmt.items {
            let name = item.alias ?? item.expr.text(quoted: false)
            if names.contains(name) {
                throw error(at: item.aliasLocation ?? item.expr.location,
                            length: item.alias?.unicodeScalars.count ?? item.expr.length,
                            "duplicate output column '\(name)'", hint: "give one of them a different alias with AS")
            }
            names.append(name)
        }
        let aliases = Dictionary(stmt.items.enumerated().compactMap { i, item in item.alias.map { ($0, i) } },
                                 uniquingKeysWith: { a, _ in a })

        // GROUP BY: resolve aliases and positions; aggregates are not allowed.
        for g in stmt.groupBy {
            var e = g
            if case .literal(.int(let n)) = g.kind {
                guard n >= 1, n <= stmt.items.count else {
                    throw error(g, "GROUP BY position \(n) is not in the select list", hint: "positions go from 1 to \(stmt.items.count)")
                }
                e = stmt.items[Int(n) - 1].expr
            } else if case .column(let p) = g.kind, p.count == 1, let i = aliases[p[0]] {
                e = stmt.items[i].expr
            }
            if Self.containsAggregate(e) {
                throw error(g, "aggregate in GROUP BY is not allowed",
                            hint: e.location == g.location ? "group by the columns and aggregate in SELECT" : "the alias names an aggregate")
            }
            if case .call(let f, _) = e.kind, f == ScalarFunction.windowStart.rawValue || f == ScalarFunction.windowEnd.rawValue {
                if window == nil { throw error(e, "\(f)() needs a WINDOW clause") }
                continue // results are per window already
            }
            try forbidWindowFunctions(e, "is not allowed in a GROUP BY expression", hint: "group by window_start() on its own")
            if keyTexts.contains(e.key) { continue }
            keyTexts.append(e.key)
            keyExprs.append(try compileRow(e))
        }

        let hasAggregates = stmt.items.contains { Self.containsAggregate($0.expr) }
            || stmt.having.map(Self.containsAggregate) == true
            || stmt.orderBy.contains { Self.containsAggregate($0.expr) }
        projection = !hasAggregates && stmt.groupBy.isEmpty
        if projection, let h = stmt.having {
            throw error(h, "HAVING needs GROUP BY or an aggregate", hint: "use WHERE to filter rows")
        }

        var outputs: [CExpr] = []
        for item in stmt.items {
            outputs.append(try compileOutput(item.expr, window: window != nil, aliases: nil))
        }

        var having: CExpr? = nil
        if let h = stmt.having {
            try requireBoolean(h, "HAVING")
            having = try compileOutput(h, window: window != nil, aliases: aliases)
        }

        var order: [OrderSpec] = []
        for o in stmt.orderBy {
            let c: CExpr
            if case .literal(.int(let n)) = o.expr.kind {
                guard n >= 1, n <= stmt.items.count else {
                    throw error(o.expr, "ORDER BY position \(n) is not in the select list", hint: "positions go from 1 to \(stmt.items.count)")
                }
                c = .output(Int(n) - 1)
            } else {
                c = try compileOutput(o.expr, window: window != nil, aliases: aliases)
            }
            order.append(OrderSpec(expr: c, descending: o.descending, text: o.expr.text() + (o.descending ? " DESC" : "")))
        }

        try typeCheckAll()

        var limit: Int? = nil
        if let l = stmt.limit { limit = Int(clamping: l) }

        return Plan(sources: topics, filter: filter, filterText: stmt.filter?.text(),
                    window: window, keys: keyExprs, keyTexts: keyTexts, aggregates: aggregates,
                    columns: names, outputs: outputs, outputTexts: stmt.items.map { $0.expr.text() },
                    having: having, havingText: stmt.having?.text(), order: order, limit: limit,
                    emit: emit.0, emitText: emit.1, projection: projection, events: schema?.isEventStream ?? false)
    }

    // MARK: clauses

    private func planWindow() throws(QueryError) -> WindowSpec? {
        switch stmt.window {
        case nil: return nil
        case .tumbling(let d)?:
            return WindowSpec(kind: .tumbling, lengthMs: d.ms, everyMs: d.ms, lengthText: d.text, everyText: d.text)
        case .sliding(let d, let e)?:
            if e.ms > d.ms {
                throw error(at: e.location, "EVERY \(e.text) is longer than the window (\(d.text))",
                            hint: "rows between windows would be skipped; the step must be at most the length")
            }
            return WindowSpec(kind: .sliding, lengthMs: d.ms, everyMs: e.ms, lengthText: d.text, everyText: e.text)
        }
    }

    private func planEmit() throws(QueryError) -> (EmitMode, String) {
        switch stmt.emit {
        case .changes: return (.changes, "CHANGES")
        case .final: return (.final, "FINAL")
        case .every(let d): return (.every(d.ms), "EVERY \(d.text)")
        }
    }

    // MARK: schema

    /// `SELECT *`: every top-level field of the source, in schema order.
    private mutating func expandStar() throws(QueryError) {
        guard let star = stmt.items.first(where: { if case .star = $0.expr.kind { true } else { false } }) else { return }
        guard let schema else {
            throw error(star.expr, "SELECT * needs a source with a known schema", hint: "list the columns, e.g. SELECT content_id, click")
        }
        stmt.items = stmt.items.flatMap { item -> [SelectItem] in
            guard case .star = item.expr.kind else { return [item] }
            return schema.fields.map {
                SelectItem(expr: Expr(kind: .column([$0.name]), location: item.expr.location, length: 1), alias: nil, aliasLocation: nil)
            }
        }
    }

    /// Every column a clause names is a field of the source (aliases may stand in for columns in
    /// GROUP BY, HAVING and ORDER BY).
    private func checkColumns() throws(QueryError) {
        guard let schema else { return }
        let aliases = Set(stmt.items.compactMap(\.alias))
        let selected = stmt.items.map(\.expr) + [stmt.filter].compactMap { $0 }
        let aliasable = stmt.groupBy + [stmt.having].compactMap { $0 } + stmt.orderBy.map(\.expr)
        for (roots, aliasOK) in [(selected, false), (aliasable, true)] {
            for root in roots {
                var failure: QueryError?
                root.visit { x in
                    guard failure == nil, case .column(let p) = x.kind else { return }
                    if aliasOK && p.count == 1 && aliases.contains(p[0]) { return }
                    if Self.resolves(p, in: schema) { return }
                    failure = unknownColumn(x, p, schema)
                }
                if let failure { throw failure }
            }
        }
    }

    /// A path the schema has, or one below an object whose fields the schema does not list.
    private static func resolves(_ p: [String], in schema: SourceSchema) -> Bool {
        if schema.field(at: p) != nil { return true }
        for n in stride(from: p.count - 1, through: 1, by: -1) {
            if let f = schema.field(at: Array(p[..<n])) { return f.type == .object && f.fields.isEmpty }
        }
        return false
    }

    private func unknownColumn(_ x: Expr, _ p: [String], _ schema: SourceSchema) -> QueryError {
        let name = p.joined(separator: ".")
        let known = schema.paths
        var hint: String
        if let n = (1..<max(1, p.count)).first(where: { schema.field(at: Array(p[..<$0])).map { $0.type != .object } ?? false }),
           let parent = schema.field(at: Array(p[..<n])) {
            hint = "\(p[..<n].joined(separator: ".")) is a\(parent.type == .integer ? "n" : "") \(parent.type.rawValue), not an object"
        } else if let guess = closest(name, among: known, maxDistance: name.count <= 3 ? 1 : max(2, name.count / 4)) {
            hint = "did you mean \(guess)?"
        } else {
            hint = "\(schema.name) has " + schema.fields.map(\.name).joined(separator: ", ")
        }
        if p.count == 1, let parent = schema.fields.first(where: { $0.fields.contains { $0.name == p[0] } }) {
            hint = "did you mean \(parent.name).\(p[0])?"
        }
        return error(x, "unknown column '\(name)' in \(schema.name)", hint: hint + " (DESCRIBE \(schema.name) lists every column)")
    }

    /// The static type of an expression, with the schema's column types when there is one.
    private func type(of e: Expr) -> StaticType? {
        StaticType.of(e) { p in
            switch schema?.field(at: p)?.type {
            case .integer?, .number?: .number
            case .string?: .string
            case .boolean?: .bool
            case .object?: .object
            case nil: nil
            }
        }
    }

    static func path(_ e: Expr) -> [String]? { if case .column(let p) = e.kind { p } else { nil } }

    // MARK: checks

    static func containsAggregate(_ e: Expr) -> Bool {
        var found = false
        e.visit { x in
            if case .call(let f, _) = x.kind, AggregateKind(rawValue: f) != nil { found = true }
        }
        return found
    }

    private func forbidAggregates(_ e: Expr, _ message: String, hint: String?) throws(QueryError) {
        var bad: Expr?
        e.visit { x in if bad == nil, case .call(let f, _) = x.kind, AggregateKind(rawValue: f) != nil { bad = x } }
        if let bad { throw error(bad, message, hint: hint) }
    }

    private func forbidWindowFunctions(_ e: Expr, _ what: String, hint: String?) throws(QueryError) {
        var bad: (Expr, String)?
        e.visit { x in
            if bad == nil, case .call(let f, _) = x.kind,
               f == ScalarFunction.windowStart.rawValue || f == ScalarFunction.windowEnd.rawValue { bad = (x, f) }
        }
        if let (x, f) = bad { throw error(x, "\(f)() \(what)", hint: hint) }
    }

    private func requireBoolean(_ e: Expr, _ clause: String) throws(QueryError) {
        if let t = type(of: e), t != .bool {
            throw error(e, "\(clause) needs a condition, found \(t.phrase)", hint: "e.g. \(clause) click > 0")
        }
    }

    /// Operand types that are known to be wrong (literals, arithmetic, string functions…).
    private func typeCheckAll() throws(QueryError) {
        var all: [Expr] = stmt.items.map(\.expr) + stmt.groupBy + stmt.orderBy.map(\.expr)
        if let f = stmt.filter { all.append(f) }
        if let h = stmt.having { all.append(h) }
        for root in all {
            var failure: QueryError?
            root.visit { x in
                guard failure == nil else { return }
                failure = typeError(x)
            }
            if let failure { throw failure }
        }
    }

    private func typeError(_ x: Expr) -> QueryError? {
        func known(_ e: Expr) -> StaticType? { type(of: e) }
        switch x.kind {
        case .binary(let op, let l, let r) where [.add, .sub, .mul, .div].contains(op):
            for side in [l, r] {
                if let t = known(side), t != .number {
                    return error(side, "cannot apply \(op.rawValue) to \(t.phrase)", hint: "arithmetic needs numbers")
                }
            }
        case .binary(let op, let l, let r) where [.eq, .ne, .lt, .le, .gt, .ge].contains(op):
            if let a = known(l), let b = known(r), a != b {
                let span = l.location.line == r.location.line ? max(1, r.location.column + r.length - l.location.column) : l.length
                return error(at: l.location, length: span, "cannot compare \(a.phrase) with \(b.phrase)",
                             hint: a == .string || b == .string ? "quote text as 'text'; numbers go without quotes" : nil)
            }
            for side in [l, r] where known(side) == .object {
                return error(side, "cannot compare an object", hint: "compare one of its fields, e.g. \(side.text(quoted: false)).\(schema?.field(at: Self.path(side) ?? [])?.fields.first?.name ?? "field")")
            }
        case .binary(let op, let l, let r) where op == .and || op == .or:
            for side in [l, r] {
                if let t = known(side), t != .bool {
                    return error(side, "\(op.rawValue) needs conditions on both sides, found \(t.phrase)")
                }
            }
        case .not(let e):
            if let t = known(e), t != .bool { return error(e, "NOT needs a condition, found \(t.phrase)") }
        case .negate(let e):
            if let t = known(e), t != .number { return error(e, "cannot negate \(t.phrase)") }
        case .like(_, let p, _):
            if let t = known(p), t != .string { return error(p, "a LIKE pattern must be a string, found \(t.phrase)") }
        case .call(let f, let args):
            switch f {
            case "sum", "avg":
                if let a = args.first, let t = known(a), t != .number {
                    return error(a, "\(f) needs a number, found \(t.phrase)")
                }
            case "min", "max":
                // Numbers and strings have an order; an object has none.
                if let a = args.first, known(a) == .object { return error(a, "\(f) needs a number, found an object") }
            case "lower", "upper":
                if let a = args.first, let t = known(a), t != .string {
                    return error(a, "\(f) needs a string, found \(t.phrase)")
                }
            case "round":
                if let a = args.first, let t = known(a), t != .number {
                    return error(a, "round needs a number, found \(t.phrase)")
                }
                if args.count > 1, case .literal(let v) = args[1].kind, v.exactInt == nil {
                    return error(args[1], "round's second argument must be a whole number of digits")
                }
            default: break
            }
        default: break
        }
        return nil
    }

    // MARK: sequence aggregates

    /// sessions(actor, gap), session_seconds/session_events/bounce_rate(actor, gap),
    /// funnel(actor, window, step1, step2, …), top_paths(actor, page, 'start', length, k).
    private func sequenceSpec(_ kind: AggregateKind, _ call: Expr, _ args: [Expr]) throws(QueryError) -> SequenceSpec {
        guard schema?.isEventStream == true else {
            throw error(call, "\(kind.rawValue)() reads each actor's events in time order: it needs an event stream",
                        hint: "e.g. FROM ods.raw or FROM ods.expose, ods.click")
        }
        for a in args {
            if Self.containsAggregate(a) { throw error(a, "aggregate functions cannot be nested") }
            try forbidWindowFunctions(a, "is not allowed inside an aggregate", hint: nil)
        }
        func positive(_ e: Expr, _ what: String, max: Int64 = Int64.max) throws(QueryError) -> Int64 {
            guard case .literal(let v) = e.kind, let n = v.exactInt, n > 0, n <= max else {
                throw error(e, "\(kind.rawValue)'s \(what) must be a positive constant\(max < Int64.max ? " up to \(max)" : "")",
                            hint: what.hasSuffix("gap") || what.hasSuffix("window") ? "e.g. 30 MINUTES" : nil)
            }
            return n
        }
        let actor = try compileRow(args[0])
        switch kind {
        case .sessions, .sessionSeconds, .sessionEvents, .bounceRate:
            let measure: SequenceSpec.SessionMeasure = switch kind {
            case .sessions: .count
            case .sessionSeconds: .averageSeconds
            case .sessionEvents: .averageEvents
            default: .bounceRate
            }
            return SequenceSpec(kind: .sessions(measure, gapMs: try positive(args[1], "session gap")), actor: actor)
        case .funnel:
            let window = try positive(args[1], "window")
            var conditions: [CExpr] = []
            for c in args.dropFirst(2) {
                try requireBoolean(c, "a funnel step")
                conditions.append(try compileRow(c))
            }
            return SequenceSpec(kind: .funnel(steps: conditions.count, windowMs: window), actor: actor, conditions: conditions)
        default:
            guard case .literal(.string(let start)) = args[2].kind else {
                throw error(args[2], "top_paths' start page must be a string constant", hint: "e.g. 'home'")
            }
            let length = try positive(args[3], "path length", max: 10)
            guard length >= 2 else { throw error(args[3], "a path has at least 2 pages") }
            let top = try positive(args[4], "number of paths", max: 1_000)
            return SequenceSpec(kind: .paths(start: start, length: Int(length), top: Int(top)), actor: actor, page: try compileRow(args[1]))
        }
    }

    // MARK: compilation

    /// Row context: columns read the input row.
    private func compileRow(_ e: Expr) throws(QueryError) -> CExpr {
        try Self.compile(e, lexer) { x throws(QueryError) -> CExpr? in
            if case .call(let f, _) = x.kind, f == ScalarFunction.windowStart.rawValue || f == ScalarFunction.windowEnd.rawValue {
                throw error(x, "\(f)() is not allowed here", hint: "it is a per-window value; use it in SELECT, HAVING or ORDER BY")
            }
            return nil
        }
    }

    /// Output context (SELECT, HAVING, ORDER BY): GROUP BY expressions, aggregates, aliases and
    /// window bounds; a bare column is an error unless it is grouped (or in projection mode,
    /// where row values are captured as hidden keys).
    private mutating func compileOutput(_ e: Expr, window: Bool, aliases: [String: Int]?) throws(QueryError) -> CExpr {
        var me = self
        let result = try Self.compile(e, lexer) { x throws(QueryError) -> CExpr? in
            if let i = me.keyTexts.firstIndex(of: x.key) { return .key(i) }
            switch x.kind {
            case .call(let f, let args):
                if f == ScalarFunction.windowStart.rawValue || f == ScalarFunction.windowEnd.rawValue {
                    guard window else { throw me.error(x, "\(f)() needs a WINDOW clause", hint: "add e.g. WINDOW TUMBLING 1 MINUTE") }
                    return f == ScalarFunction.windowStart.rawValue ? .windowStart : .windowEnd
                }
                guard let kind = AggregateKind(rawValue: f) else { return nil }
                let text = x.text()
                if let i = me.aggregateIndex[text] { return .aggregate(i) }
                if kind.isSequence {
                    let sequence = try me.sequenceSpec(kind, x, args)
                    me.aggregates.append(AggregateSpec(kind: kind, argument: nil, text: text, sequence: sequence))
                    me.aggregateIndex[text] = me.aggregates.count - 1
                    return .aggregate(me.aggregates.count - 1)
                }
                var argument: CExpr? = nil
                if let a = args.first, case .star = a.kind {
                    argument = nil
                } else if let a = args.first {
                    if Self.containsAggregate(a) {
                        var inner: Expr = a
                        a.visit { y in if case .call(let g, _) = y.kind, AggregateKind(rawValue: g) != nil { inner = y } }
                        throw me.error(inner, "aggregate functions cannot be nested")
                    }
                    try me.forbidWindowFunctions(a, "is not allowed inside an aggregate", hint: nil)
                    argument = try me.compileRow(a)
                }
                me.aggregates.append(AggregateSpec(kind: kind, argument: argument, text: text))
                me.aggregateIndex[text] = me.aggregates.count - 1
                return .aggregate(me.aggregates.count - 1)
            case .column(let p):
                if let aliases, p.count == 1, let i = aliases[p[0]] { return .output(i) }
                if me.projection {
                    me.keyTexts.append(x.key)
                    me.keyExprs.append(try me.compileRow(x))
                    return .key(me.keyExprs.count - 1)
                }
                let name = Canonical.path(p, quoted: false)
                let hint = me.stmt.groupBy.isEmpty
                    ? "add GROUP BY \(name), or aggregate it, e.g. max(\(name))"
                    : "add it to GROUP BY, or aggregate it, e.g. max(\(name))"
                throw me.error(x, "column '\(name)' must appear in GROUP BY or be used in an aggregate", hint: hint)
            default:
                return nil
            }
        }
        self = me
        return result
    }

    /// Generic compilation; `override` may replace a node (returning nil compiles it normally).
    private static func compile(_ e: Expr, _ lexer: Lexer, _ override: (Expr) throws(QueryError) -> CExpr?) throws(QueryError) -> CExpr {
        if let c = try override(e) { return c }
        func sub(_ x: Expr) throws(QueryError) -> CExpr { try compile(x, lexer, override) }
        switch e.kind {
        case .literal(let v): return .literal(v)
        case .star: return .literal(.null)
        case .column(let p): return .field(p)
        case .negate(let x): return .negate(try sub(x))
        case .not(let x): return .not(try sub(x))
        case .binary(let op, let l, let r):
            let a = try sub(l), b = try sub(r)
            switch op {
            case .and: return .and(a, b)
            case .or: return .or(a, b)
            case .add, .sub, .mul, .div: return .arith(op, a, b)
            default: return .compare(op, a, b)
            }
        case .inList(let x, let list, let negated):
            let cx = try sub(x)
            var literals: [Value] = []
            for item in list { if case .literal(let v) = item.kind { literals.append(v) } }
            if literals.count == list.count {
                let nonNull = literals.filter { !$0.isNull }
                return .inSet(cx, ValueSet(nonNull), listHasNull: nonNull.count != literals.count, negated: negated)
            }
            var cl: [CExpr] = []
            for item in list { cl.append(try sub(item)) }
            return .inList(cx, cl, negated: negated)
        case .between(let x, let lo, let hi, let negated):
            return .between(try sub(x), try sub(lo), try sub(hi), negated: negated)
        case .like(let x, let p, let negated):
            if case .literal(.string(let s)) = p.kind { return .like(try sub(x), LikePattern(s), negated: negated) }
            return .likeDynamic(try sub(x), try sub(p), negated: negated)
        case .isNull(let x, let negated): return .isNull(try sub(x), negated: negated)
        case .call(let f, let args):
            var cargs: [CExpr] = []
            for a in args { cargs.append(try sub(a)) }
            switch ScalarFunction(rawValue: f) {
            case .coalesce?: return .coalesce(cargs)
            case .lower?: return .lower(cargs.first ?? .literal(.null))
            case .upper?: return .upper(cargs.first ?? .literal(.null))
            case .round?: return .round(cargs.first ?? .literal(.null), cargs.count > 1 ? cargs[1] : nil)
            case .conversion?: return .conversion(cargs.first ?? .literal(.null))
            case .windowStart?: return .windowStart
            case .windowEnd?: return .windowEnd
            case nil:
                throw QueryError.semantic(Diagnostic(location: e.location, length: e.length, message: "aggregate \(f)() is not allowed here",
                                                     sourceLine: lexer.sourceLine(e.location.line)))
            }
        }
    }
}

/// What can be known about an expression's type without data (columns only through `column`,
/// from the source's schema).
enum StaticType: String {
    case bool = "condition", number, string, object

    /// With its article, for messages: "a number", "an object".
    var phrase: String { (self == .object ? "an " : "a ") + rawValue }

    static func of(_ e: Expr, column: ([String]) -> StaticType? = { _ in nil }) -> StaticType? {
        func of(_ e: Expr) -> StaticType? { StaticType.of(e, column: column) }
        switch e.kind {
        case .literal(let v):
            switch v {
            case .bool: return .bool
            case .int, .double: return .number
            case .string: return .string
            default: return nil
            }
        case .column(let p): return column(p)
        case .star: return nil
        case .negate: return .number
        case .not, .inList, .between, .like, .isNull: return .bool
        case .binary(let op, _, _):
            switch op {
            case .add, .sub, .mul, .div: return .number
            default: return .bool
            }
        case .call(let f, let args):
            switch f {
            case "count", "sum", "avg", "count_distinct", "round", "window_start", "window_end",
                 "sessions", "session_seconds", "session_events", "bounce_rate": return .number
            case "lower", "upper": return .string
            case "min", "max": return args.first.flatMap(of)
            default: return nil
            }
        }
    }
}

extension Expr {
    /// Pre-order traversal of this expression and its sub-expressions.
    func visit(_ f: (Expr) -> Void) {
        f(self)
        switch kind {
        case .literal, .column, .star: break
        case .negate(let x), .not(let x), .isNull(let x, _): x.visit(f)
        case .binary(_, let l, let r), .like(let l, let r, _): l.visit(f); r.visit(f)
        case .inList(let x, let list, _): x.visit(f); for i in list { i.visit(f) }
        case .between(let x, let lo, let hi, _): x.visit(f); lo.visit(f); hi.visit(f)
        case .call(_, let args): for a in args { a.visit(f) }
        }
    }
}
