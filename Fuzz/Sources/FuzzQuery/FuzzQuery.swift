// The query language: lexer, parser and planner (Query.parse), explain, and the evaluator on a
// fixed set of rows (ordinary DWS/DWM-like rows and extreme ones).
//
// Properties, for any text:
//  - parsing gives a Query or a syntax/semantic error whose line is a line of the text and whose
//    source excerpt is that line;
//  - a query's canonical form parses to the same canonical form, columns and source;
//  - explain works; the evaluator either fails with a limit error or emits tables whose columns
//    are the query's and whose NDJSON is valid JSON.
import FuzzSupport
import StrataQuery

private let minute: Int64 = 60_000
private let base: Int64 = 28_000_000 * 60_000

private func dws(_ m: Int64, _ content: String, rev: Int64, click: Int64, category: String, final: Bool = true) -> [String: Value] {
    ["minute": .int(base + m * minute), "content_id": .string(content), "rev": .int(rev), "click": .int(click),
     "expose": .int(click * 3), "play": .int(1), "play_ms": .int(12_000), "like": .int(0), "report": .int(m % 2),
     "strategy": "s1", "final": .bool(final), "uv": .int(2),
     "content": .object(["title": "t", "category": .string(category), "author_id": "a1", "region": "Guangdong"])]
}

private let rows: [[String: Value]] = [
    dws(0, "c00000001", rev: 1, click: 3, category: "game"),
    dws(0, "c00000001", rev: 2, click: 5, category: "news"),
    dws(0, "c00000001", rev: 1, click: 7, category: "game"),          // stale revision
    dws(1, "c00000002", rev: 1, click: 0, category: "game", final: false),
    dws(7, "c00000003", rev: 1, click: 9, category: "sports"),
    dws(75, "c00000001", rev: 1, click: 1, category: "game"),
    ["minute": .int(base + 2 * minute), "content_id": "c00000004", "user_id": "u1", "rev": 1, "click": 2,
     "user": .object(["gender": "f", "age_band": "18-24", "province": "Sichuan", "city_tier": 2])],
    // Extremes: limits of Int64 and Double, wrong types, missing fields.
    ["minute": .int(Int64.max), "content_id": "c1", "rev": .int(Int64.max), "click": .int(Int64.max)],
    ["minute": .int(Int64.min), "content_id": "c1", "rev": .int(Int64.min), "click": .int(Int64.min)],
    ["minute": .double(1e300), "content_id": "c2", "click": .double(.infinity), "play_ms": .double(-1e308)],
    ["minute": .double(-0.0), "content_id": .object(["x": 1]), "user_id": 5, "rev": "x", "click": "many", "content": .object([:])],
    ["minute": .int(base), "content_id": "c3", "rev": 1, "click": .double(.nan), "strategy": .null],
    [:],
]

private let limits = QueryLimits(maxGroups: 1_000, maxWindowLengthMs: 24 * 3_600_000, maxRowsOut: 1_000, maxOpenWindows: 200)

/// The test run on each input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzQuery(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: fuzzInput(data, size), as: UTF8.self)
    let query: Query
    do {
        query = try Query.parse(text)
    } catch {
        checkError(error, text)
        return 0
    }
    let canonical = query.canonical
    do {
        let again = try Query.parse(canonical)
        require(again.canonical == canonical,
                "canonical form changes when parsed again: \(canonical.debugDescription) → \(again.canonical.debugDescription) (query \(text.debugDescription))")
        require(again.columns == query.columns && again.source == query.source && again.isWindowed == query.isWindowed,
                "canonical form has other columns or source: \(canonical.debugDescription) (query \(text.debugDescription))")
    } catch {
        fatalError("canonical form \(canonical.debugDescription) does not parse: \(error) (query \(text.debugDescription))")
    }
    require(!query.explain().isEmpty, "empty explain for \(text.debugDescription)")
    evaluate(query, text)
    return 0
}

private func checkError(_ error: QueryError, _ text: String) {
    guard let d = error.diagnostic else {
        fatalError("parsing failed with \(error), not a syntax or semantic error (query \(text.debugDescription))")
    }
    // Lines as the lexer counts them: split at "\n" (a "\r" before it is not part of the line).
    let lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
        var s = String(String.UnicodeScalarView(line))
        if s.unicodeScalars.last == "\r" { s.unicodeScalars.removeLast() }
        return s
    }
    require((1...lines.count).contains(d.location.line) && d.location.column >= 1,
            "error at \(d.location) outside the \(lines.count)-line text: \(error.message) (query \(text.debugDescription))")
    require(d.sourceLine == lines[d.location.line - 1],
            "error at \(d.location) quotes \(d.sourceLine.debugDescription), not line \(d.location.line) \(lines[d.location.line - 1].debugDescription) (query \(text.debugDescription))")
    require(!error.message.isEmpty, "an error without a message (query \(text.debugDescription))")
    _ = error.rendered
}

private func evaluate(_ query: Query, _ text: String) {
    let engine = QueryEngine(query, limits: limits)
    func check(_ results: [QueryResult]) {
        for r in results {
            require(r.columns == query.columns, "a result with columns \(r.columns), not \(query.columns) (query \(text.debugDescription))")
            require(r.rows.count <= limits.maxRowsOut, "\(r.rows.count) rows out (query \(text.debugDescription))")
            let json = r.ndjson
            require(Value.decodeRow(json) != nil, "result is not JSON: \(json.debugDescription) (query \(text.debugDescription))")
        }
    }
    do throws(QueryError) {
        check(try engine.ingest(Array(rows.prefix(7))))
        check(try engine.ingest(Array(rows.dropFirst(7)), partition: 1))
        check(engine.tick(nowMs: base + 10 * minute))
        check(engine.tick(nowMs: Int64.max))
        check(engine.finish())
    } catch {
        guard case .limitExceeded = error else {
            fatalError("evaluation failed with \(error), not a limit (query \(text.debugDescription))")
        }
    }
}
