/// The function catalog: scalar functions, aggregates, their arities, and spelling suggestions.

enum ScalarFunction: String, CaseIterable, Sendable {
    case coalesce, lower, upper, round
    case windowStart = "window_start"
    case windowEnd = "window_end"
    /// Step-to-step ratios of a funnel's array: [1, n2/n1, n3/n2, …].
    case conversion

    var arity: ClosedRange<Int> {
        switch self {
        case .coalesce: 1...64
        case .lower, .upper, .conversion: 1...1
        case .round: 1...2
        case .windowStart, .windowEnd: 0...0
        }
    }
}

enum AggregateKind: String, CaseIterable, Sendable {
    case count, sum, avg, min, max
    case countDistinct = "count_distinct"
    /// count_distinct that never switches to the sketch: exact, memory per distinct value.
    case exactCountDistinct = "exact_count_distinct"
    // Sequence aggregates over event streams (Sequences.swift).
    case sessions
    case sessionSeconds = "session_seconds"
    case sessionEvents = "session_events"
    case bounceRate = "bounce_rate"
    case funnel
    case topPaths = "top_paths"

    var arity: ClosedRange<Int> {
        switch self {
        case .count, .sum, .avg, .min, .max, .countDistinct, .exactCountDistinct: 1...1
        case .sessions, .sessionSeconds, .sessionEvents, .bounceRate: 2...2
        case .funnel: 4...34
        case .topPaths: 5...5
        }
    }

    var isSequence: Bool { arity != 1...1 }
}

enum FunctionCatalog {
    static let allNames: [String] = AggregateKind.allCases.map(\.rawValue) + ScalarFunction.allCases.map(\.rawValue)

    /// Names people bring from other SQL dialects.
    static let synonyms: [String: String] = [
        "approx_count_distinct": "count_distinct", "approx_distinct": "count_distinct", "ndv": "count_distinct",
        "countdistinct": "count_distinct", "count_distinct_exact": "exact_count_distinct", "exact_distinct": "exact_count_distinct", "uniq": "count_distinct", "hll_count": "count_distinct",
        "ifnull": "coalesce", "nvl": "coalesce", "isnull": "coalesce",
        "lcase": "lower", "ucase": "upper", "average": "avg", "mean": "avg", "total": "sum",
        "tumble_start": "window_start", "hop_start": "window_start", "tumble_end": "window_end", "hop_end": "window_end",
    ]

    static func isKnown(_ lowerName: String) -> Bool {
        AggregateKind(rawValue: lowerName) != nil || ScalarFunction(rawValue: lowerName) != nil
    }

    static func suggestion(for name: String) -> String? {
        let lower = name.lowercased()
        if let s = synonyms[lower] { return s }
        return closest(lower, among: allNames, maxDistance: min(3, max(2, lower.count / 2)))
    }
}

/// The candidate within `maxDistance` edits of `word` (case-insensitive), nearest first.
func closest(_ word: String, among candidates: [String], maxDistance: Int) -> String? {
    let w = Array(word.lowercased().unicodeScalars)
    var best: (String, Int)?
    for c in candidates {
        let d = editDistance(w, Array(c.lowercased().unicodeScalars))
        if d <= maxDistance, best.map({ d < $0.1 }) ?? true { best = (c, d) }
    }
    return best?.0
}

/// Damerau–Levenshtein (optimal string alignment): a swap of two letters counts as one edit.
func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            d[i][j] = Swift.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                d[i][j] = Swift.min(d[i][j], d[i - 2][j - 2] + 1)
            }
        }
    }
    return d[a.count][b.count]
}
