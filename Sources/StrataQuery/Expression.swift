/// Compiled expressions and their evaluation.
///
/// Evaluation never fails: like SQL, a type mismatch or a missing field yields NULL, division by
/// zero yields NULL, and conditions are three-valued (a WHERE/HAVING keeps a row only when TRUE).
/// `/` always divides as floating point, so `sum(click) / sum(expose)` is a ratio, not 0.
indirect enum CExpr: Sendable {
    case literal(Value)
    /// A field of the input row by path (`content.category` is ["content", "category"]), as
    /// planned; `RowLayout.bind` turns each into the `slot` the decoder fills.
    case field([String])
    case slot(Int)
    /// Output context: the i-th GROUP BY value, aggregate result, or select-list value.
    case key(Int)
    case aggregate(Int)
    case output(Int)
    case windowStart
    case windowEnd
    case negate(CExpr)
    case not(CExpr)
    case arith(BinaryOp, CExpr, CExpr)
    case compare(BinaryOp, CExpr, CExpr)
    case and(CExpr, CExpr)
    case or(CExpr, CExpr)
    /// IN with a list of literals: a set lookup.
    case inSet(CExpr, ValueSet, listHasNull: Bool, negated: Bool)
    case inList(CExpr, [CExpr], negated: Bool)
    case between(CExpr, CExpr, CExpr, negated: Bool)
    case like(CExpr, LikePattern, negated: Bool)
    case likeDynamic(CExpr, CExpr, negated: Bool)
    case isNull(CExpr, negated: Bool)
    case coalesce([CExpr])
    case lower(CExpr)
    case upper(CExpr)
    case round(CExpr, CExpr?)
    case conversion(CExpr)
}

/// The literals of an IN list. A short list is scanned: a few comparisons of short strings cost
/// less than hashing one.
struct ValueSet: Sendable {
    private let set: Set<Value>
    private let list: [Value]?

    init(_ values: [Value]) {
        set = Set(values)
        list = set.count <= 8 ? Array(set) : nil
    }

    var members: [Value] { Array(set) }

    func contains(_ v: Value) -> Bool {
        guard let list else { return set.contains(v) }
        for x in list where x == v { return true }
        return false
    }
}

/// What an expression can see: the input row (WHERE, GROUP BY, aggregate arguments), or a group's
/// keys, aggregate results and select-list values (SELECT, HAVING, ORDER BY).
struct EvalContext {
    /// The input row's slots (see `RowLayout`).
    var row: UnsafeBufferPointer<Value> = UnsafeBufferPointer(start: nil, count: 0)
    var keys: [Value] = []
    var aggregates: [Value] = []
    var outputs: [Value] = []
    var windowStart: Value = .null
    var windowEnd: Value = .null
}

extension CExpr {
    func eval(_ c: borrowing EvalContext) -> Value {
        switch self {
        case .literal(let v): return v
        case .slot(let i): return i < c.row.count ? c.row[i] : .null
        case .field: return .null  // unbound: plans are bound to a layout before they run
        case .key(let i): return i < c.keys.count ? c.keys[i] : .null
        case .aggregate(let i): return i < c.aggregates.count ? c.aggregates[i] : .null
        case .output(let i): return i < c.outputs.count ? c.outputs[i] : .null
        case .windowStart: return c.windowStart
        case .windowEnd: return c.windowEnd
        case .negate(let e):
            switch e.eval(c) {
            case .int(let i): return i == Int64.min ? .double(-Double(i)) : .int(-i)
            case .double(let d): return .double(-d)
            default: return .null
            }
        case .not(let e):
            if case .bool(let b) = e.eval(c) { return .bool(!b) }
            return .null
        case .arith(let op, let l, let r): return Self.arith(op, l.eval(c), r.eval(c))
        case .compare(let op, let l, let r): return Self.compare(op, l.eval(c), r.eval(c))
        case .and(let l, let r):
            let a = l.eval(c)
            if case .bool(false) = a { return .bool(false) }
            let b = r.eval(c)
            if case .bool(false) = b { return .bool(false) }
            if case .bool(true) = a, case .bool(true) = b { return .bool(true) }
            return .null
        case .or(let l, let r):
            let a = l.eval(c)
            if case .bool(true) = a { return .bool(true) }
            let b = r.eval(c)
            if case .bool(true) = b { return .bool(true) }
            if case .bool(false) = a, case .bool(false) = b { return .bool(false) }
            return .null
        case .inSet(let e, let set, let listHasNull, let negated):
            let v = e.eval(c)
            if v.isNull { return .null }
            if set.contains(v) { return .bool(!negated) }
            return listHasNull ? .null : .bool(negated)
        case .inList(let e, let list, let negated):
            let v = e.eval(c)
            if v.isNull { return .null }
            var sawNull = false
            for item in list {
                switch Self.compare(.eq, v, item.eval(c)) {
                case .bool(true): return .bool(!negated)
                case .null: sawNull = true
                default: break
                }
            }
            return sawNull ? .null : .bool(negated)
        case .between(let e, let lo, let hi, let negated):
            let v = e.eval(c)
            let r = Self.and3(Self.compare(.ge, v, lo.eval(c)), Self.compare(.le, v, hi.eval(c)))
            if negated, case .bool(let b) = r { return .bool(!b) }
            return r
        case .like(let e, let pattern, let negated):
            guard case .string(let s) = e.eval(c) else { return .null }
            return .bool(pattern.matches(s) != negated)
        case .likeDynamic(let e, let p, let negated):
            guard case .string(let s) = e.eval(c), case .string(let ps) = p.eval(c) else { return .null }
            return .bool(LikePattern(ps).matches(s) != negated)
        case .isNull(let e, let negated):
            return .bool(e.eval(c).isNull != negated)
        case .coalesce(let list):
            for e in list {
                let v = e.eval(c)
                if !v.isNull { return v }
            }
            return .null
        case .lower(let e):
            if case .string(let s) = e.eval(c) { return .string(s.lowercased()) }
            return .null
        case .upper(let e):
            if case .string(let s) = e.eval(c) { return .string(s.uppercased()) }
            return .null
        case .round(let e, let digitsExpr):
            let v = e.eval(c)
            var digits: Int64 = 0
            if let digitsExpr {
                guard let d = digitsExpr.eval(c).exactInt else { return .null }
                digits = max(-18, min(18, d))
            }
            return Self.round(v, digits: Int(digits))
        case .conversion(let e):
            // [n1, n2, …] → [1, n2/n1, n3/n2, …]; a step after an empty one is null.
            guard case .array(let steps) = e.eval(c), !steps.isEmpty else { return .null }
            var out: [Value] = [.double(1)]
            for i in 1..<steps.count {
                guard let prev = steps[i - 1].number, prev > 0, let n = steps[i].number else { out.append(.null); continue }
                out.append(.double((n / prev * 10_000).rounded() / 10_000))
            }
            return .array(out)
        }
    }

    static func and3(_ a: Value, _ b: Value) -> Value {
        if case .bool(false) = a { return .bool(false) }
        if case .bool(false) = b { return .bool(false) }
        if case .bool(true) = a, case .bool(true) = b { return .bool(true) }
        return .null
    }

    static func arith(_ op: BinaryOp, _ a: Value, _ b: Value) -> Value {
        if case .int(let x) = a, case .int(let y) = b {
            switch op {
            case .add:
                let (r, o) = x.addingReportingOverflow(y)
                return o ? .double(Double(x) + Double(y)) : .int(r)
            case .sub:
                let (r, o) = x.subtractingReportingOverflow(y)
                return o ? .double(Double(x) - Double(y)) : .int(r)
            case .mul:
                let (r, o) = x.multipliedReportingOverflow(by: y)
                return o ? .double(Double(x) * Double(y)) : .int(r)
            case .div:
                return y == 0 ? .null : .double(Double(x) / Double(y))
            default: return .null
            }
        }
        guard let x = a.number, let y = b.number else { return .null }
        switch op {
        case .add: return .double(x + y)
        case .sub: return .double(x - y)
        case .mul: return .double(x * y)
        case .div: return y == 0 ? .null : .double(x / y)
        default: return .null
        }
    }

    static func compare(_ op: BinaryOp, _ a: Value, _ b: Value) -> Value {
        if a.isNull || b.isNull { return .null }
        let comparable: Bool
        switch (a, b) {
        case (.int, .int), (.int, .double), (.double, .int), (.double, .double),
             (.string, .string), (.bool, .bool): comparable = true
        case (.object, .object): comparable = op == .eq || op == .ne
        default: comparable = false
        }
        guard comparable else {
            // Different types are never equal; ordering them is meaningless.
            switch op {
            case .eq: return .bool(false)
            case .ne: return .bool(true)
            default: return .null
            }
        }
        if op == .eq { return .bool(a == b) }
        if op == .ne { return .bool(a != b) }
        let o = Value.order(a, b)
        switch op {
        case .lt: return .bool(o < 0)
        case .le: return .bool(o <= 0)
        case .gt: return .bool(o > 0)
        case .ge: return .bool(o >= 0)
        default: return .null
        }
    }

    /// Half away from zero. Integers stay integers; `round(x)` of a double gives an integer.
    static func round(_ v: Value, digits: Int) -> Value {
        switch v {
        case .int(let i):
            guard digits < 0 else { return v }
            var p: Int64 = 1
            for _ in 0..<(-digits) { p = p.multipliedReportingOverflow(by: 10).overflow ? Int64.max : p * 10 }
            let r = (Double(i) / Double(p)).rounded() * Double(p)
            return Value.double(r).exactInt.map { .int($0) } ?? .double(r)
        case .double(let d):
            guard d.isFinite else { return v }
            if digits == 0 {
                let r = d.rounded()
                return Value.double(r).exactInt.map { .int($0) } ?? .double(r)
            }
            var p = 1.0
            for _ in 0..<abs(digits) { p *= 10 }
            return .double(digits > 0 ? (d * p).rounded() / p : (d / p).rounded() * p)
        default:
            return .null
        }
    }
}

/// A compiled LIKE pattern: `%` any run, `_` one character; case-sensitive, no escape character.
struct LikePattern: Sendable {
    private enum Shape: Sendable {
        /// Only `%` wildcards: literal UTF-8 segments (exact since UTF-8 is self-synchronizing).
        case segments([[UInt8]], anchoredStart: Bool, anchoredEnd: Bool)
        case general([Unicode.Scalar])
    }
    private let shape: Shape
    let pattern: String

    init(_ pattern: String) {
        self.pattern = pattern
        if pattern.unicodeScalars.contains("_") {
            shape = .general(Array(pattern.unicodeScalars))
        } else {
            let parts = pattern.split(separator: "%", omittingEmptySubsequences: false).map { Array($0.utf8) }
            shape = .segments(parts, anchoredStart: !pattern.hasPrefix("%"), anchoredEnd: !pattern.hasSuffix("%"))
        }
    }

    func matches(_ s: String) -> Bool {
        switch shape {
        case .segments(let parts, let anchoredStart, let anchoredEnd):
            var s = s
            return s.withUTF8 { Self.matchSegments(parts, Array($0), anchoredStart, anchoredEnd) }
        case .general(let p):
            return Self.matchGeneral(p, Array(s.unicodeScalars))
        }
    }

    private static func matchSegments(_ parts: [[UInt8]], _ s: [UInt8], _ anchoredStart: Bool, _ anchoredEnd: Bool) -> Bool {
        if parts.count == 1 { return parts[0] == s }
        var pos = 0
        var end = s.count
        var first = 0, last = parts.count - 1
        if anchoredStart {
            let p = parts[0]
            guard p.count <= s.count, s[0..<p.count].elementsEqual(p) else { return false }
            pos = p.count
            first = 1
        }
        if anchoredEnd {
            let p = parts[last]
            guard p.count <= end - pos, s[(end - p.count)..<end].elementsEqual(p) else { return false }
            end -= p.count
            last -= 1
        }
        guard first <= last else { return true }
        for i in first...last {
            let p = parts[i]
            if p.isEmpty { continue }
            guard let at = find(p, in: s, from: pos, to: end) else { return false }
            pos = at + p.count
        }
        return true
    }

    private static func find(_ needle: [UInt8], in hay: [UInt8], from: Int, to: Int) -> Int? {
        guard needle.count <= to - from else { return nil }
        var i = from
        while i + needle.count <= to {
            if hay[i] == needle[0], hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    /// Iterative wildcard matching with backtracking to the last `%`.
    private static func matchGeneral(_ p: [Unicode.Scalar], _ s: [Unicode.Scalar]) -> Bool {
        var i = 0, j = 0
        var star = -1, mark = 0
        while i < s.count {
            if j < p.count, p[j] == "_" || (p[j] != "%" && p[j] == s[i]) {
                i += 1; j += 1
            } else if j < p.count, p[j] == "%" {
                star = j; mark = i; j += 1
            } else if star >= 0 {
                j = star + 1; mark += 1; i = mark
            } else {
                return false
            }
        }
        while j < p.count, p[j] == "%" { j += 1 }
        return j == p.count
    }
}
