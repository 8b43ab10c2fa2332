import Foundation

/// The syntax tree of one query, and its canonical text (one line, keywords upper case, function
/// names lower case, minimal parentheses). `parse(canonical(q))` yields the same canonical text.

struct Expr: Sendable {
    let kind: ExprKind
    var location: SourceLocation
    /// Span in the source line, for caret underlines.
    var length: Int
    /// Levels of the tree, this node included (a leaf is 1). The parser keeps it within
    /// `Parser.maxExpressionDepth`: everything after it walks expressions recursively.
    let height: Int

    init(kind: ExprKind, location: SourceLocation, length: Int = 1) {
        self.kind = kind
        self.location = location
        self.length = length
        var below = 0
        switch kind {
        case .literal, .column, .star: break
        case .negate(let x), .not(let x), .isNull(let x, _): below = x.height
        case .binary(_, let l, let r), .like(let l, let r, _): below = max(l.height, r.height)
        case .inList(let x, let list, _): below = list.reduce(x.height) { max($0, $1.height) }
        case .between(let x, let lo, let hi, _): below = max(x.height, lo.height, hi.height)
        case .call(_, let args): below = args.reduce(0) { max($0, $1.height) }
        }
        height = below + 1
    }
}

indirect enum ExprKind: Sendable {
    case literal(Value)
    case column([String])
    /// Only as the argument of count(*).
    case star
    case negate(Expr)
    case not(Expr)
    case binary(BinaryOp, Expr, Expr)
    case inList(Expr, [Expr], negated: Bool)
    case between(Expr, Expr, Expr, negated: Bool)
    case like(Expr, Expr, negated: Bool)
    case isNull(Expr, negated: Bool)
    /// `name` is lower case; count(DISTINCT x) is parsed as count_distinct(x).
    case call(String, [Expr])
}

enum BinaryOp: String, Sendable {
    case add = "+", sub = "-", mul = "*", div = "/"
    case eq = "=", ne = "<>", lt = "<", le = "<=", gt = ">", ge = ">="
    case and = "AND", or = "OR"

    var isComparison: Bool {
        switch self {
        case .eq, .ne, .lt, .le, .gt, .ge: true
        default: false
        }
    }

    var precedence: Int {
        switch self {
        case .or: Prec.or
        case .and: Prec.and
        case .eq, .ne, .lt, .le, .gt, .ge: Prec.comparison
        case .add, .sub: Prec.additive
        case .mul, .div: Prec.multiplicative
        }
    }
}

/// Binding strength, loosest first.
enum Prec {
    static let or = 1, and = 2, not = 3, comparison = 4, additive = 5, multiplicative = 6, unary = 7, primary = 8
}

enum DurationUnit: String, Sendable {
    case second = "SECOND", minute = "MINUTE", hour = "HOUR"
    var ms: Int64 {
        switch self {
        case .second: 1_000
        case .minute: 60_000
        case .hour: 3_600_000
        }
    }
}

struct DurationLiteral: Sendable, Equatable {
    var amount: Int64
    var unit: DurationUnit
    var location: SourceLocation
    var ms: Int64 { amount.multipliedReportingOverflow(by: unit.ms).overflow ? Int64.max : amount * unit.ms }
    var text: String { "\(amount) \(unit.rawValue)\(amount == 1 ? "" : "S")" }

    static func == (a: Self, b: Self) -> Bool { a.amount == b.amount && a.unit == b.unit }
}

enum WindowClause: Sendable {
    case tumbling(DurationLiteral)
    /// `every` is resolved by the parser when omitted (1 minute, or the length if shorter).
    case sliding(DurationLiteral, every: DurationLiteral)
}

enum EmitClause: Sendable, Equatable {
    case changes, final
    case every(DurationLiteral)
}

struct SelectItem: Sendable {
    var expr: Expr
    var alias: String?
    var aliasLocation: SourceLocation?
}

struct OrderItem: Sendable {
    var expr: Expr
    var descending: Bool
}

struct SelectStatement: Sendable {
    var items: [SelectItem]
    var source: [String]
    var sourceLocation: SourceLocation
    /// `FROM a, b, c`: the sources after the first (a union of event streams).
    var moreSources: [(name: [String], location: SourceLocation)] = []
    var filter: Expr?
    var window: WindowClause?
    var windowLocation: SourceLocation?
    var groupBy: [Expr]
    var having: Expr?
    var orderBy: [OrderItem]
    var limit: Int64?
    var limitLocation: SourceLocation?
    var emit: EmitClause
    var emitLocation: SourceLocation?
}

// MARK: - Canonical text

/// Words the parser treats as keywords everywhere; identifiers spelled like them print quoted.
let reservedWords: Set<String> = [
    "SELECT", "FROM", "WHERE", "WINDOW", "GROUP", "BY", "HAVING", "ORDER", "LIMIT", "EMIT",
    "AND", "OR", "NOT", "IN", "BETWEEN", "LIKE", "IS", "NULL", "TRUE", "FALSE", "AS", "ASC", "DESC", "DISTINCT",
]

enum Canonical {
    static func ident(_ s: String, quoted allowQuotes: Bool = true) -> String {
        guard allowQuotes else { return s }
        let scalars = Array(s.unicodeScalars)
        let simple = !scalars.isEmpty
            && (scalars[0].properties.isAlphabetic || scalars[0] == "_")
            && scalars.allSatisfy { $0.properties.isAlphabetic || $0 == "_" || ("0"..."9").contains($0) }
        if simple && !reservedWords.contains(s.uppercased()) { return s }
        return "\"" + doubling("\"", in: s) + "\""
    }

    /// `s` with every `quote` doubled, scalar by scalar: the lexer reads scalars, and a quote
    /// followed by a combining mark is one Character, which replacing Characters would miss.
    static func doubling(_ quote: Unicode.Scalar, in s: String) -> String {
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            out.append(u)
            if u == quote { out.append(u) }
        }
        return String(out)
    }

    static func path(_ p: [String], quoted: Bool = true) -> String {
        p.map { ident($0, quoted: quoted) }.joined(separator: ".")
    }

    static func literal(_ v: Value) -> String {
        switch v {
        case .null: "NULL"
        case .bool(let b): b ? "TRUE" : "FALSE"
        case .int(let i): String(i)
        case .double(let d): d.rounded() == d && abs(d) < 1e15 ? String(format: "%.1f", d) : "\(d)"
        case .string(let s): "'" + doubling("'", in: s) + "'"
        case .object, .array: v.jsonText
        }
    }
}

extension Expr {
    var precedence: Int {
        switch kind {
        case .literal(let v):
            if let n = v.number, n < 0 { return Prec.unary }
            return Prec.primary
        case .column, .star, .call: return Prec.primary
        case .negate: return Prec.unary
        case .not: return Prec.not
        case .binary(let op, _, _): return op.precedence
        case .inList, .between, .like, .isNull: return Prec.comparison
        }
    }

    /// Canonical text. `quoted: false` leaves identifiers bare (output column names).
    func text(quoted: Bool = true) -> String {
        func sub(_ e: Expr, _ minPrec: Int) -> String {
            let t = e.text(quoted: quoted)
            return e.precedence < minPrec ? "(\(t))" : t
        }
        switch kind {
        case .literal(let v): return Canonical.literal(v)
        case .column(let p): return Canonical.path(p, quoted: quoted)
        case .star: return "*"
        case .negate(let e):
            // Never print "--", which would start a comment.
            if e.precedence == Prec.unary { return "-(\(e.text(quoted: quoted)))" }
            return "-" + sub(e, Prec.unary)
        case .not(let e): return "NOT " + sub(e, Prec.not)
        case .binary(let op, let l, let r):
            // Left-associative; comparisons do not chain, so both sides bind tighter.
            let lp = op.isComparison ? op.precedence + 1 : op.precedence
            return "\(sub(l, lp)) \(op.rawValue) \(sub(r, op.precedence + 1))"
        case .inList(let e, let list, let neg):
            return "\(sub(e, Prec.comparison + 1)) \(neg ? "NOT IN" : "IN") (\(list.map { $0.text(quoted: quoted) }.joined(separator: ", ")))"
        case .between(let e, let lo, let hi, let neg):
            return "\(sub(e, Prec.comparison + 1)) \(neg ? "NOT BETWEEN" : "BETWEEN") \(sub(lo, Prec.additive)) AND \(sub(hi, Prec.additive))"
        case .like(let e, let p, let neg):
            return "\(sub(e, Prec.comparison + 1)) \(neg ? "NOT LIKE" : "LIKE") \(sub(p, Prec.comparison + 1))"
        case .isNull(let e, let neg):
            return "\(sub(e, Prec.comparison + 1)) IS \(neg ? "NOT NULL" : "NULL")"
        case .call(let name, let args):
            return "\(name)(\(args.map { $0.text(quoted: quoted) }.joined(separator: ", ")))"
        }
    }

    /// Structural identity (locations ignored), used to match GROUP BY expressions.
    var key: String { text() }
}

extension SelectStatement {
    var canonical: String {
        var s = "SELECT " + items.map { item in
            item.expr.text() + (item.alias.map { " AS " + Canonical.ident($0) } ?? "")
        }.joined(separator: ", ")
        s += " FROM " + ([source] + moreSources.map(\.name)).map { Canonical.path($0) }.joined(separator: ", ")
        if let filter { s += " WHERE " + filter.text() }
        switch window {
        case .tumbling(let d)?: s += " WINDOW TUMBLING " + d.text
        case .sliding(let d, let e)?: s += " WINDOW SLIDING \(d.text) EVERY \(e.text)"
        case nil: break
        }
        if !groupBy.isEmpty { s += " GROUP BY " + groupBy.map { $0.text() }.joined(separator: ", ") }
        if let having { s += " HAVING " + having.text() }
        if !orderBy.isEmpty {
            s += " ORDER BY " + orderBy.map { $0.expr.text() + ($0.descending ? " DESC" : "") }.joined(separator: ", ")
        }
        if let limit { s += " LIMIT \(limit)" }
        switch emit {
        case .changes: s += " EMIT CHANGES"
        case .final: s += " EMIT FINAL"
        case .every(let d): s += " EMIT EVERY " + d.text
        }
        return s
    }
}
