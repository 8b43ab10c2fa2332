/// The executable form of a query, produced by the planner and run by `QueryEngine`.

struct WindowSpec: Sendable, Equatable {
    enum Kind: Sendable, Equatable { case tumbling, sliding }
    var kind: Kind
    var lengthMs: Int64
    /// The slide; equal to the length for TUMBLING.
    var everyMs: Int64
    var lengthText: String
    var everyText: String

    /// Every window a row with this `minute` belongs to, as [start, end) pairs, oldest first.
    /// TUMBLING: the one epoch-aligned window containing it. SLIDING: each window of length
    /// `lengthMs` ending at a multiple of `everyMs`, with start <= minute < end.
    func windows(containing minute: Int64) -> [(start: Int64, end: Int64)] {
        var out: [(start: Int64, end: Int64)] = []
        forEachWindow(containing: minute) { out.append(($0, $1)) }
        return out
    }

    /// The same windows, handed to `body` one by one (the per-row path: no list is built).
    @inline(__always)
    func forEachWindow<E: Error>(containing minute: Int64, _ body: (_ start: Int64, _ end: Int64) throws(E) -> Void) throws(E) {
        switch kind {
        case .tumbling:
            let start = floorDiv(minute, lengthMs) &* lengthMs
            try body(start, start &+ lengthMs)
        case .sliding:
            var end = floorDiv(minute, everyMs) &* everyMs &+ everyMs
            while end &- lengthMs <= minute {
                try body(end &- lengthMs, end)
                end = end &+ everyMs
            }
        }
    }

    /// The end of the last window containing `minute`: once that window is closed, so are all.
    func lastEnd(containing minute: Int64) -> Int64 {
        switch kind {
        case .tumbling: return floorDiv(minute, lengthMs) &* lengthMs &+ lengthMs
        case .sliding: return floorDiv(minute &+ lengthMs, everyMs) &* everyMs
        }
    }

    /// How many windows each row belongs to.
    var windowsPerRow: Int64 { lengthMs / everyMs + (lengthMs % everyMs == 0 ? 0 : 1) }
}

/// Floor division (rounds toward negative infinity), so windows align before 1970 too.
@inline(__always) func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q
}

enum EmitMode: Sendable, Equatable {
    case changes, final
    case every(Int64)
}

struct AggregateSpec: Sendable {
    var kind: AggregateKind
    /// nil for count(*) and the sequence aggregates.
    var argument: CExpr?
    var text: String
    /// The sequence aggregates' actor, conditions or page, and parameters.
    var sequence: SequenceSpec? = nil
}

struct OrderSpec: Sendable {
    var expr: CExpr
    var descending: Bool
    var text: String
}

struct Plan: Sendable {
    /// Every topic read: one, or several for `FROM ods.a, ods.b`.
    var sources: [String]
    var source: String { sources[0] }
    var filter: CExpr?
    var filterText: String?
    var window: WindowSpec?
    /// GROUP BY values, evaluated on each input row. In projection mode: the captured row values.
    var keys: [CExpr]
    var keyTexts: [String]
    var aggregates: [AggregateSpec]
    var columns: [String]
    var outputs: [CExpr]
    var outputTexts: [String]
    var having: CExpr?
    var havingText: String?
    var order: [OrderSpec]
    var limit: Int?
    var emit: EmitMode
    var emitText: String
    /// No aggregates and no GROUP BY: one output row per live source row (latest rev).
    var projection: Bool
    /// An append stream of raw events (`ods.*`): time is `ts`, each (event_id, ts) counts once;
    /// else an upsert stream with `minute` and `rev`.
    var events = false
    /// Aggregates without GROUP BY: exactly one output row per window, even when empty.
    var singleGroup: Bool { !projection && keys.isEmpty }
}
