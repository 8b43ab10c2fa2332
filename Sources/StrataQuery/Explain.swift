import Foundation

/// The human-readable plan printed by `strata query --explain`.
enum Explain {
    static func text(_ q: Query, limits: QueryLimits, options: QueryOptions) -> String {
        let p = q.plan
        var lines: [String] = []
        func add(_ label: String, _ value: String) {
            lines.append(label.padding(toLength: 12, withPad: " ", startingAt: 0) + value)
        }
        lines.append("query       " + q.canonical)
        if p.events {
            add("source", "\(p.sources.joined(separator: ", ")) — event stream: time is ts (event time), each (event_id, ts) counts once")
        } else {
            add("source", "\(p.source) — upsert stream: identity (minute, content_id[, user_id]); a higher rev replaces the row's earlier contribution, stale revs are ignored")
        }
        add("filter", p.filterText ?? "none (every row)")
        if let w = p.window {
            switch w.kind {
            case .tumbling:
                add("window", "TUMBLING \(w.lengthText) over `\(p.events ? "ts" : "minute")`, aligned to the Unix epoch (UTC); 1 window per row")
            case .sliding:
                add("window", "SLIDING \(w.lengthText) EVERY \(w.everyText) over `\(p.events ? "ts" : "minute")`: windows of length \(w.lengthText) ending at each multiple of \(w.everyText); \(w.windowsPerRow) windows per row")
            }
        } else {
            add("window", "none — one global result over everything seen")
        }
        if p.projection {
            add("mode", "projection: one output row per live source row (latest rev), no aggregation")
        } else {
            add("group by", p.keyTexts.isEmpty ? "none — one row per window" : p.keyTexts.joined(separator: ", "))
            add("aggregates", p.aggregates.isEmpty ? "none" : p.aggregates.enumerated().map { i, a in
                "#\(i) \(a.text)" + (a.kind == .countDistinct
                    ? " [exact up to \(options.distinctExactThreshold) distinct per group, then counting HyperLogLog p=14, ~0.8 % error]"
                    : a.kind == .exactCountDistinct
                    ? " [exact: a refcount per distinct value, at most \(limits.maxExactDistinctValues) over all groups and windows]"
                    : "")
            }.joined(separator: ", "))
        }
        add("output", zip(p.columns, p.outputTexts).map { name, text in name == text || name == text.replacingOccurrences(of: "\"", with: "") ? text : "\(text) AS \(name)" }.joined(separator: ", "))
        if let h = p.havingText { add("having", h) }
        var orderText = p.order.isEmpty ? "by group key (ascending)" : p.order.map(\.text).joined(separator: ", ")
        if let l = p.limit { orderText += "; LIMIT \(l)" }
        add("order", orderText + " — applied per window")
        let grace = "watermark (highest \(p.events ? "ts" : "minute") seen) ≥ window_end + grace \(formatMs(options.graceMs))"
        switch p.emit {
        case .changes:
            add("emit", "CHANGES — after each input batch that changes a window's table (final:false); once more with final:true when \(grace), or at end of input")
        case .final:
            add("emit", "FINAL — each window once, final:true, when \(grace), or at end of input")
        case .every(let ms):
            add("emit", "EVERY \(formatMs(ms)) — on the caller's clock, the windows whose table changed since their last emission; final:true once when \(grace), or at end of input")
        }
        add("limits", "max groups \(limits.maxGroups), max window length \(formatMs(limits.maxWindowLengthMs)), max rows out \(limits.maxRowsOut), max open windows \(limits.maxOpenWindows)")
        return lines.joined(separator: "\n")
    }

    static func formatMs(_ ms: Int64) -> String {
        if ms % 3_600_000 == 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }
}
