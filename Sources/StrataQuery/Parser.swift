import FoundationEssentials
/// Recursive-descent parser for the grammar in DESIGN.md ("Declarative stream queries"):
///
///     SELECT select_list FROM source
///       [WHERE condition]
///       [WINDOW TUMBLING <duration> | WINDOW SLIDING <duration> [EVERY <duration>]]
///       [GROUP BY expr, …] [HAVING condition]
///       [ORDER BY expr [ASC|DESC], …] [LIMIT n]
///       [EMIT CHANGES | EMIT FINAL | EMIT EVERY <duration>]
///
/// Precedence, loosest first: OR, AND, NOT, comparisons (= <> < <= > >= IS IN BETWEEN LIKE,
/// which do not chain), + -, * /, unary minus.
struct Parser {
    /// The deepest expression tree accepted (`Expr.height`: parentheses do not count, operators,
    /// NOT, signs and function calls do; `a + b + c` is (a + b) + c). The planner, the canonical
    /// text and the evaluator walk expressions recursively, so without a limit a long enough query
    /// (a few thousand `(` or `x = 1 OR …`) would overflow the stack of the server parsing it.
    static let maxExpressionDepth = 100
    /// The parser's own recursion, parentheses included. Twice the depth and then some, so the
    /// canonical text of an accepted query (which may add a pair of parentheses per level, as in
    /// `-(-x)`) is accepted too.
    private static let maxNesting = 2 * maxExpressionDepth + 2

    private let lexer: Lexer
    private let tokens: [Token]
    private var p = 0
    private var nesting = 0

    init(_ text: String) throws(QueryError) {
        var lx = Lexer(text)
        tokens = try lx.tokenize()
        lexer = lx
    }

    // MARK: helpers

    private var tok: Token { tokens[min(p, tokens.count - 1)] }
    private func peekToken(_ k: Int) -> Token { tokens[min(p + k, tokens.count - 1)] }
    private mutating func advance() { if p < tokens.count - 1 { p += 1 } }

    private func error(_ t: Token, _ message: String, hint: String? = nil) -> QueryError {
        lexer.error(t.location, t.length, message, hint: hint)
    }

    private func error(at loc: SourceLocation, length: Int = 1, _ message: String, hint: String? = nil) -> QueryError {
        lexer.error(loc, length, message, hint: hint)
    }

    private mutating func accept(_ keyword: String) -> Bool {
        if tok.isWord(keyword) { advance(); return true }
        return false
    }

    private mutating func acceptSymbol(_ s: String) -> Bool {
        if tok.isSymbol(s) { advance(); return true }
        return false
    }

    private func isReserved(_ t: Token) -> Bool {
        if let w = t.word { return reservedWords.contains(w.uppercased()) }
        return false
    }

    /// The clause keywords, in the order the grammar allows them.
    private static let clauseOrder = ["WHERE", "WINDOW", "GROUP", "HAVING", "ORDER", "LIMIT", "EMIT"]
    private static let clauseNames = ["WHERE": "WHERE", "WINDOW": "WINDOW", "GROUP": "GROUP BY", "HAVING": "HAVING",
                                      "ORDER": "ORDER BY", "LIMIT": "LIMIT", "EMIT": "EMIT"]
    private static let clauseHint = "clauses go in this order: SELECT … FROM … WHERE … WINDOW … GROUP BY … HAVING … ORDER BY … LIMIT … EMIT …"

    private func clauseIndex(_ t: Token) -> Int? {
        guard let w = t.word?.uppercased() else { return nil }
        return Self.clauseOrder.firstIndex(of: w)
    }

    // MARK: statement

    /// `DESCRIBE source`: the source's name and where it starts; nil for any other statement.
    mutating func parseDescribe() throws(QueryError) -> ([String], SourceLocation)? {
        guard tok.isWord("DESCRIBE") else { return nil }
        advance()
        let start = tok.location
        let name = try qualifiedName(after: "DESCRIBE")
        if case .end = tok.kind { return (name, start) }
        throw error(tok, "unexpected \(tok.display) after DESCRIBE \(name.joined(separator: "."))")
    }

    mutating func parseStatement() throws(QueryError) -> SelectStatement {
        if case .end = tok.kind { throw error(tok, "empty query", hint: "a query starts with SELECT") }
        guard accept("SELECT") else {
            let hint = tok.word.flatMap { closest($0, among: ["SELECT"], maxDistance: 2) != nil ? "did you mean SELECT?" : nil }
            throw error(tok, "expected SELECT at the start of the query, found \(tok.display)", hint: hint)
        }
        if tok.isWord("DISTINCT") {
            throw error(tok, "SELECT DISTINCT is not supported", hint: "use GROUP BY on the columns instead")
        }
        var items: [SelectItem] = []
        repeat {
            items.append(try selectItem(after: items.isEmpty ? "SELECT" : "','"))
        } while acceptSymbol(",")

        guard accept("FROM") else {
            // `SELECT a FORM t` parsed FORM as an alias: point at it.
            if let last = items.last, let alias = last.alias, let loc = last.aliasLocation,
               closest(alias, among: ["FROM"], maxDistance: 2) != nil {
                throw error(at: loc, length: alias.unicodeScalars.count, "expected FROM after select list, found '\(alias)'",
                            hint: "did you mean FROM?")
            }
            var hint: String? = nil
            if case .word = tok.kind, !isReserved(tok) { hint = "separate select items with commas" }
            if case .quotedIdent = tok.kind { hint = "separate select items with commas" }
            if case .end = tok.kind { hint = "add FROM and a source, e.g. FROM dws.content" }
            throw error(tok, "expected FROM after select list, found \(tok.display)", hint: hint)
        }
        let sourceTok = tok
        let source = try qualifiedName(after: "FROM")

        var stmt = SelectStatement(items: items, source: source, sourceLocation: sourceTok.location, filter: nil,
                                   window: nil, groupBy: [], having: nil, orderBy: [], limit: nil, emit: .changes)
        while acceptSymbol(",") {
            let t = tok
            stmt.moreSources.append((try qualifiedName(after: "','"), t.location))
        }
        var lastClause = -1
        while let idx = clauseIndex(tok) {
            let kw = Self.clauseOrder[idx]
            if idx == lastClause {
                throw error(tok, "duplicate \(Self.clauseNames[kw] ?? kw) clause",
                            hint: kw == "WHERE" || kw == "HAVING" ? "combine conditions with AND" : nil)
            }
            if idx < lastClause {
                let prev = Self.clauseNames[Self.clauseOrder[lastClause]] ?? ""
                throw error(tok, "\(Self.clauseNames[kw] ?? kw) must come before \(prev)", hint: Self.clauseHint)
            }
            lastClause = idx
            let kwTok = tok
            advance()
            switch kw {
            case "WHERE": stmt.filter = try expression(after: "WHERE")
            case "WINDOW":
                stmt.windowLocation = kwTok.location
                stmt.window = try windowClause()
            case "GROUP":
                guard accept("BY") else { throw error(tok, "expected BY after GROUP, found \(tok.display)") }
                repeat { stmt.groupBy.append(try expression(after: stmt.groupBy.isEmpty ? "GROUP BY" : "','")) } while acceptSymbol(",")
            case "HAVING": stmt.having = try expression(after: "HAVING")
            case "ORDER":
                guard accept("BY") else { throw error(tok, "expected BY after ORDER, found \(tok.display)") }
                repeat {
                    let e = try expression(after: stmt.orderBy.isEmpty ? "ORDER BY" : "','")
                    var desc = false
                    if accept("DESC") { desc = true } else { _ = accept("ASC") }
                    stmt.orderBy.append(OrderItem(expr: e, descending: desc))
                } while acceptSymbol(",")
            case "LIMIT":
                stmt.limitLocation = tok.location
                guard case .integer(let n) = tok.kind else {
                    throw error(tok, "LIMIT expects a non-negative integer, found \(tok.display)")
                }
                stmt.limit = n
                advance()
            default: // EMIT
                stmt.emitLocation = kwTok.location
                stmt.emit = try emitClause()
            }
        }
        _ = acceptSymbol(";")
        guard case .end = tok.kind else { throw trailingError() }
        return stmt
    }

    private func trailingError() -> QueryError {
        if let w = tok.word {
            let keywords = ["WHERE", "WINDOW", "GROUP BY", "HAVING", "ORDER BY", "LIMIT", "EMIT", "AND", "OR"]
            if let s = closest(w, among: keywords.map { $0.components(separatedBy: " ")[0] }, maxDistance: 2) {
                return error(tok, "unexpected \(tok.display)", hint: "did you mean \(Self.clauseNames[s] ?? s)?")
            }
            if w.uppercased() == "BY" { return error(tok, "unexpected 'BY'", hint: "BY follows GROUP or ORDER") }
            if w.uppercased() == "FROM" { return error(tok, "unexpected FROM", hint: "a query has one FROM; joins are not supported") }
        }
        if tok.isSymbol(",") {
            return error(tok, "unexpected ','", hint: "commas separate select items, the sources after FROM, and GROUP BY and ORDER BY items")
        }
        return error(tok, "unexpected \(tok.display) after the end of the query", hint: Self.clauseHint)
    }

    private mutating func selectItem(after context: String) throws(QueryError) -> SelectItem {
        if tok.isSymbol("*") {
            // Every column of the source's schema (the planner expands it).
            let star = Expr(kind: .star, location: tok.location, length: 1)
            advance()
            return SelectItem(expr: star, alias: nil, aliasLocation: nil)
        }
        let e = try expression(after: context)
        if accept("AS") {
            let t = tok
            guard let name = aliasName() else {
                throw error(t, "expected an alias after AS, found \(t.display)")
            }
            return SelectItem(expr: e, alias: name, aliasLocation: t.location)
        }
        let t = tok
        if let name = aliasName() { return SelectItem(expr: e, alias: name, aliasLocation: t.location) }
        return SelectItem(expr: e, alias: nil, aliasLocation: nil)
    }

    /// A bare (non-reserved) word or a quoted identifier.
    private mutating func aliasName() -> String? {
        switch tok.kind {
        case .word(let w) where !isReserved(tok): advance(); return w
        case .quotedIdent(let w): advance(); return w
        default: return nil
        }
    }

    private mutating func qualifiedName(after context: String) throws(QueryError) -> [String] {
        var parts: [String] = []
        switch tok.kind {
        case .word(let w) where !isReserved(tok): parts.append(w)
        case .quotedIdent(let w): parts.append(w)
        case .string(let s):
            throw error(tok, "expected a source name after \(context), found a string", hint: "write the topic without quotes, e.g. FROM \(s), or in double quotes")
        default:
            throw error(tok, "expected a source name after \(context), found \(tok.display)",
                        hint: "e.g. FROM dws.content or FROM dwm.content_user")
        }
        advance()
        while acceptSymbol(".") {
            switch tok.kind {
            case .word(let w): parts.append(w)
            case .quotedIdent(let w): parts.append(w)
            default: throw error(tok, "expected a name after '.', found \(tok.display)")
            }
            advance()
        }
        return parts
    }

    // MARK: WINDOW / EMIT

    private mutating func windowClause() throws(QueryError) -> WindowClause {
        if accept("TUMBLING") { return .tumbling(try duration(after: "TUMBLING")) }
        if accept("SLIDING") {
            let length = try duration(after: "SLIDING")
            if accept("EVERY") { return .sliding(length, every: try duration(after: "EVERY")) }
            // Rows are per minute, so a window slides by a minute unless it is shorter than that.
            let every = length.ms >= 60_000 ? DurationLiteral(amount: 1, unit: .minute, location: length.location) : length
            return .sliding(length, every: every)
        }
        var hint: String? = nil
        if let w = tok.word?.uppercased() {
            if w.hasPrefix("HOP") { hint = "a hopping window is WINDOW SLIDING <length> EVERY <step>" }
            else if w == "SESSION" { hint = "session windows are not supported" }
            else if let s = closest(w, among: ["TUMBLING", "SLIDING"], maxDistance: 3) { hint = "did you mean \(s)?" }
        }
        throw error(tok, "expected TUMBLING or SLIDING after WINDOW, found \(tok.display)", hint: hint)
    }

    private mutating func emitClause() throws(QueryError) -> EmitClause {
        if accept("CHANGES") { return .changes }
        if accept("FINAL") { return .final }
        if accept("EVERY") { return .every(try duration(after: "EVERY")) }
        var hint: String? = nil
        if let w = tok.word, let s = closest(w, among: ["CHANGES", "FINAL", "EVERY"], maxDistance: 2) { hint = "did you mean \(s)?" }
        throw error(tok, "expected CHANGES, FINAL or EVERY after EMIT, found \(tok.display)", hint: hint)
    }

    private mutating func duration(after context: String) throws(QueryError) -> DurationLiteral {
        let numTok = tok
        let amount: Int64
        switch tok.kind {
        case .integer(let n): amount = n
        case .decimal:
            throw error(tok, "a duration takes a whole number", hint: "e.g. 90 SECONDS instead of 1.5 MINUTES")
        default:
            throw error(tok, "expected a duration such as 5 MINUTES after \(context), found \(tok.display)")
        }
        advance()
        guard let w = tok.word else {
            throw error(tok, "expected a duration unit after \(amount), found \(tok.display)", hint: "use SECONDS, MINUTES or HOURS")
        }
        let unit: DurationUnit
        switch w.uppercased() {
        case "SECOND", "SECONDS": unit = .second
        case "MINUTE", "MINUTES": unit = .minute
        case "HOUR", "HOURS": unit = .hour
        case "DAY", "DAYS":
            throw error(tok, "unknown duration unit '\(w)'", hint: "use SECONDS, MINUTES or HOURS (1 day = 24 HOURS)")
        default:
            var hint = "use SECONDS, MINUTES or HOURS"
            if let s = closest(w, among: ["SECONDS", "MINUTES", "HOURS"], maxDistance: 2) { hint = "did you mean \(s)?" }
            throw error(tok, "unknown duration unit '\(w)'", hint: hint)
        }
        if amount <= 0 { throw error(numTok, "a duration must be positive") }
        advance()
        return DurationLiteral(amount: amount, unit: unit, location: numTok.location)
    }

    // MARK: expressions

    /// `context` names what came before, for "expected an expression after …".
    private mutating func expression(after context: String) throws(QueryError) -> Expr {
        try enter()
        defer { nesting -= 1 }
        return try bounded(orExpr(context), tok)
    }

    /// One level deeper in the parser's recursion (a parenthesis, an argument, NOT, a sign).
    private mutating func enter() throws(QueryError) {
        guard nesting < Self.maxNesting else { throw tooDeep(tok) }
        nesting += 1
    }

    /// `e`, checked against the depth limit (where a loop of operators makes the tree deeper).
    private func bounded(_ e: Expr, _ t: Token) throws(QueryError) -> Expr {
        guard e.height <= Self.maxExpressionDepth else { throw tooDeep(t) }
        return e
    }

    private func tooDeep(_ t: Token) -> QueryError {
        error(t, "expression nested too deeply (more than \(Self.maxExpressionDepth) levels)",
              hint: "split it up; a long chain of OR over one column is IN (…)")
    }

    private mutating func orExpr(_ ctx: String) throws(QueryError) -> Expr {
        var l = try andExpr(ctx)
        while tok.isWord("OR") {
            let t = tok; advance()
            let r = try andExpr("OR")
            l = try bounded(Expr(kind: .binary(.or, l, r), location: l.location, length: t.length), t)
        }
        return l
    }

    private mutating func andExpr(_ ctx: String) throws(QueryError) -> Expr {
        var l = try notExpr(ctx)
        while tok.isWord("AND") {
            let t = tok; advance()
            let r = try notExpr("AND")
            l = try bounded(Expr(kind: .binary(.and, l, r), location: l.location, length: t.length), t)
        }
        return l
    }

    private mutating func notExpr(_ ctx: String) throws(QueryError) -> Expr {
        if tok.isWord("NOT") {
            let t = tok; advance()
            try enter()
            defer { nesting -= 1 }
            let e = try notExpr("NOT")
            return try bounded(Expr(kind: .not(e), location: t.location, length: 3), t)
        }
        return try comparison(ctx)
    }

    private mutating func comparison(_ ctx: String) throws(QueryError) -> Expr {
        let l = try additive(ctx)
        let opTok = tok
        var result: Expr
        if case .symbol(let s) = tok.kind, let op = BinaryOp(rawValue: s), op.isComparison {
            advance()
            let r = try additive("'\(s)'")
            result = Expr(kind: .binary(op, l, r), location: l.location, length: opTok.length)
        } else if tok.isWord("IS") {
            advance()
            let negated = accept("NOT")
            guard accept("NULL") else {
                throw error(tok, "expected NULL after IS\(negated ? " NOT" : ""), found \(tok.display)",
                            hint: "IS only tests for NULL; compare values with =")
            }
            result = Expr(kind: .isNull(l, negated: negated), location: l.location, length: opTok.length)
        } else if tok.isWord("NOT") || tok.isWord("IN") || tok.isWord("BETWEEN") || tok.isWord("LIKE") {
            var negated = false
            if tok.isWord("NOT") {
                let next = peekToken(1)
                guard next.isWord("IN") || next.isWord("BETWEEN") || next.isWord("LIKE") else {
                    throw error(next, "expected IN, BETWEEN or LIKE after NOT, found \(next.display)")
                }
                negated = true
                advance()
            }
            if accept("IN") {
                guard acceptSymbol("(") else { throw error(tok, "expected '(' after IN, found \(tok.display)", hint: "e.g. IN ('a', 'b')") }
                if tok.isSymbol(")") { throw error(tok, "an IN list must not be empty") }
                var list: [Expr] = []
                repeat { list.append(try expression(after: list.isEmpty ? "IN (" : "','")) } while acceptSymbol(",")
                guard acceptSymbol(")") else { throw error(tok, "expected ')' to close the IN list, found \(tok.display)") }
                result = Expr(kind: .inList(l, list, negated: negated), location: l.location, length: opTok.length)
            } else if accept("BETWEEN") {
                let lo = try additive("BETWEEN")
                guard accept("AND") else {
                    throw error(tok, "expected AND in BETWEEN, found \(tok.display)", hint: "e.g. x BETWEEN 1 AND 10")
                }
                let hi = try additive("AND")
                result = Expr(kind: .between(l, lo, hi, negated: negated), location: l.location, length: opTok.length)
            } else {
                advance() // LIKE
                let pattern = try additive("LIKE")
                result = Expr(kind: .like(l, pattern, negated: negated), location: l.location, length: opTok.length)
            }
        } else {
            return l
        }
        if case .symbol(let s) = tok.kind, let op = BinaryOp(rawValue: s), op.isComparison {
            throw error(tok, "comparisons cannot be chained", hint: "combine them with AND, e.g. a < b AND b < c")
        }
        return result
    }

    private mutating func additive(_ ctx: String) throws(QueryError) -> Expr {
        var l = try multiplicative(ctx)
        while case .symbol(let s) = tok.kind, s == "+" || s == "-" {
            let t = tok; advance()
            let r = try multiplicative("'\(s)'")
            l = try bounded(Expr(kind: .binary(s == "+" ? .add : .sub, l, r), location: l.location, length: t.length), t)
        }
        return l
    }

    private mutating func multiplicative(_ ctx: String) throws(QueryError) -> Expr {
        var l = try unary(ctx)
        while case .symbol(let s) = tok.kind, s == "*" || s == "/" {
            let t = tok; advance()
            let r = try unary("'\(s)'")
            l = try bounded(Expr(kind: .binary(s == "*" ? .mul : .div, l, r), location: l.location, length: t.length), t)
        }
        return l
    }

    private mutating func unary(_ ctx: String) throws(QueryError) -> Expr {
        if tok.isSymbol("-") {
            let t = tok; advance()
            try enter()
            defer { nesting -= 1 }
            let e = try unary("'-'")
            // Fold negative number literals so `-5` is a literal (and prints back as -5).
            switch e.kind {
            case .literal(.int(let i)) where i != Int64.min: return Expr(kind: .literal(.int(-i)), location: t.location, length: e.length + 1)
            case .literal(.double(let d)): return Expr(kind: .literal(.double(-d)), location: t.location, length: e.length + 1)
            default: return try bounded(Expr(kind: .negate(e), location: t.location, length: 1), t)
            }
        }
        if tok.isSymbol("+") {
            advance()
            try enter()
            defer { nesting -= 1 }
            return try unary("'+'")
        }
        return try primary(ctx)
    }

    private mutating func primary(_ ctx: String) throws(QueryError) -> Expr {
        let t = tok
        switch t.kind {
        case .integer(let i): advance(); return Expr(kind: .literal(.int(i)), location: t.location, length: t.length)
        case .decimal(let d): advance(); return Expr(kind: .literal(.double(d)), location: t.location, length: t.length)
        case .string(let s): advance(); return Expr(kind: .literal(.string(s)), location: t.location, length: t.length)
        case .quotedIdent(let w):
            advance()
            return try columnRest([w], t)
        case .symbol("("):
            advance()
            if tok.isWord("SELECT") { throw error(tok, "subqueries are not supported") }
            let e = try expression(after: "'('")
            guard acceptSymbol(")") else {
                throw error(tok, "expected ')' to close the '(' at \(t.location), found \(tok.display)")
            }
            return e
        case .word(let w):
            let upper = w.uppercased()
            switch upper {
            case "NULL": advance(); return Expr(kind: .literal(.null), location: t.location, length: t.length)
            case "TRUE": advance(); return Expr(kind: .literal(.bool(true)), location: t.location, length: t.length)
            case "FALSE": advance(); return Expr(kind: .literal(.bool(false)), location: t.location, length: t.length)
            // `like` is a DWM/DWS metric: where an operand is expected it can only be the column.
            case "LIKE": break
            default:
                if reservedWords.contains(upper) { throw expectedExpression(ctx) }
            }
            advance()
            if tok.isSymbol("(") { return try call(w, t) }
            return try columnRest([w], t)
        default:
            throw expectedExpression(ctx)
        }
    }

    private func expectedExpression(_ ctx: String) -> QueryError {
        var hint: String? = nil
        if ctx == "','", tok.isWord("FROM") || tok.isSymbol(")") || { if case .end = tok.kind { true } else { false } }() {
            hint = "remove the trailing comma"
        } else if tok.isSymbol("*") {
            hint = "* is only allowed in count(*)"
        }
        return error(tok, "expected an expression after \(ctx), found \(tok.display)", hint: hint)
    }

    private mutating func columnRest(_ first: [String], _ start: Token) throws(QueryError) -> Expr {
        var path = first
        var end = start.location.column + start.length
        while tok.isSymbol(".") {
            advance()
            switch tok.kind {
            case .word(let w): path.append(w)
            case .quotedIdent(let w): path.append(w)
            default: throw error(tok, "expected a field name after '.', found \(tok.display)")
            }
            end = tok.location.column + tok.length
            advance()
        }
        return Expr(kind: .column(path), location: start.location, length: max(1, end - start.location.column))
    }

    private mutating func call(_ name: String, _ nameTok: Token) throws(QueryError) -> Expr {
        let lower = name.lowercased()
        guard FunctionCatalog.isKnown(lower) else {
            let hint = FunctionCatalog.suggestion(for: name).map { "did you mean \($0)?" }
                ?? "functions: " + FunctionCatalog.allNames.joined(separator: ", ")
            throw error(nameTok, "unknown function '\(name)'", hint: hint)
        }
        advance() // (
        var args: [Expr] = []
        var fname = lower
        if tok.isWord("DISTINCT") {
            guard lower == "count" else {
                throw error(tok, "DISTINCT is only supported as count(DISTINCT x)", hint: "use count_distinct(x)")
            }
            advance()
            fname = AggregateKind.countDistinct.rawValue
        }
        if tok.isSymbol("*") {
            guard fname == "count" else {
                throw error(tok, "\(fname)(*) is not allowed", hint: "only count(*) takes *")
            }
            args.append(Expr(kind: .star, location: tok.location, length: 1))
            advance()
        } else if !tok.isSymbol(")") {
            repeat {
                // A duration argument (sessions' gap, a funnel's window) is its milliseconds.
                if case .integer = tok.kind, let unit = peekToken(1).word,
                   ["SECOND", "SECONDS", "MINUTE", "MINUTES", "HOUR", "HOURS"].contains(unit.uppercased()) {
                    let start = tok
                    let d = try duration(after: "','")
                    args.append(Expr(kind: .literal(.int(d.ms)), location: start.location, length: start.length))
                } else {
                    args.append(try expression(after: args.isEmpty ? "'\(name)('" : "','"))
                }
            } while acceptSymbol(",")
        }
        guard acceptSymbol(")") else {
            throw error(tok, "expected ')' to close \(lower)(, found \(tok.display)")
        }
        let arity: ClosedRange<Int> = ScalarFunction(rawValue: fname)?.arity ?? AggregateKind(rawValue: fname)?.arity ?? 1...1
        if arity == 0...0, !args.isEmpty {
            throw error(nameTok, "\(fname)() takes no arguments")
        }
        if !arity.contains(args.count) {
            let expected = arity.lowerBound == arity.upperBound ? "\(arity.lowerBound)" :
                (arity.upperBound >= 34 ? "at least \(arity.lowerBound)"
                    : arity.count == 2 ? "\(arity.lowerBound) or \(arity.upperBound)" : "\(arity.lowerBound) to \(arity.upperBound)")
            let noun = arity.upperBound == 1 && arity.lowerBound == 1 ? "argument" : "arguments"
            let hint: String? = fname == "count" && args.isEmpty ? "use count(*) to count rows" : nil
            throw error(nameTok, "\(fname) expects \(expected) \(noun), got \(args.count)", hint: hint)
        }
        return Expr(kind: .call(fname, args), location: nameTok.location, length: nameTok.length)
    }
}
