/// Behaviour analytics over event streams: aggregates that look at each actor's events (usually a
/// user's) in time order — sessions, ordered funnels and page paths — and summarize over the
/// actors of a group. Each row contributes (actor, ts, event_id, what the aggregate needs of it);
/// the accumulator keeps every actor's events sorted by (ts, event_id) and recomputes only the
/// actors that changed, so a late event that bridges two sessions, or completes a funnel, simply
/// changes that actor's summary.

/// What a sequence aggregate computes; its parameters are literals of the query.
struct SequenceSpec: Sendable {
    enum Kind: Sendable, Equatable {
        /// Sessions per actor split where the gap between two events exceeds `gapMs`.
        case sessions(SessionMeasure, gapMs: Int64)
        /// The furthest of `steps` ordered conditions each actor reaches within `windowMs` of step 1.
        case funnel(steps: Int, windowMs: Int64)
        /// The `k` most frequent runs of `length` pages that start at `start`.
        case paths(start: String, length: Int, top: Int)
    }
    enum SessionMeasure: Sendable, Equatable { case count, averageSeconds, averageEvents, bounceRate }

    var kind: Kind
    /// Row-level expressions: the actor, and the funnel's conditions or the page.
    var actor: CExpr
    var conditions: [CExpr] = []
    var page: CExpr?
}

/// One event of an actor: its time, its tie-breaker, and the steps it matches (a bit per funnel
/// condition) or its page.
struct SequenceEvent: Comparable {
    var ts: Int64
    var id: String
    var mask: Int64
    var page: String?

    static func < (a: SequenceEvent, b: SequenceEvent) -> Bool { a.ts != b.ts ? a.ts < b.ts : a.id < b.id }
    static func == (a: SequenceEvent, b: SequenceEvent) -> Bool { a.ts == b.ts && a.id == b.id }
}

/// One session of an actor: its first and last event time and how many events it has.
struct SessionSpan {
    var start: Int64
    var end: Int64
    var events: Int64
}

/// Pure computations over one actor's events in order (the brute-force tests check these).
enum SequenceMath {
    /// Adds an event at `ts` to an actor's sessions (sorted, each more than `gapMs` apart): it
    /// extends the session it falls in or next to, starts a new one, or bridges two into one.
    /// Returns the change in the number of spans held.
    @discardableResult
    static func addSession(_ ts: Int64, to spans: inout [SessionSpan], gapMs: Int64) -> Int {
        // The last span starting at or before ts.
        var lo = 0, hi = spans.count
        while lo < hi { let mid = (lo + hi) / 2; if spans[mid].start <= ts { lo = mid + 1 } else { hi = mid } }
        let prev = lo - 1, next = lo
        if prev >= 0, ts - spans[prev].end <= gapMs {
            spans[prev].end = max(spans[prev].end, ts)
            spans[prev].events += 1
            if next < spans.count, spans[next].start - spans[prev].end <= gapMs {
                spans[prev].end = spans[next].end
                spans[prev].events += spans[next].events
                spans.remove(at: next)
                return -1
            }
            return 0
        }
        if next < spans.count, spans[next].start - ts <= gapMs {
            spans[next].start = ts
            spans[next].events += 1
            return 0
        }
        spans.insert(SessionSpan(start: ts, end: ts, events: 1), at: next)
        return 1
    }

    /// The furthest funnel level reached (0…steps): a chain of distinct events in order matching
    /// step 1, 2, … with the last within `windowMs` of the first. Per level the latest start of a
    /// chain reaching it is kept (the latest start leaves the most room); levels are updated from
    /// the highest down so one event never serves two steps.
    static func funnelLevel(_ events: [SequenceEvent], steps: Int, windowMs: Int64) -> Int {
        var start = [Int64?](repeating: nil, count: steps + 1)
        var best = 0
        for e in events where e.mask != 0 {
            for k in stride(from: steps, through: 1, by: -1) where e.mask & (1 << (k - 1)) != 0 {
                if k == 1 {
                    start[1] = e.ts
                } else if let s = start[k - 1], e.ts - s <= windowMs, s > (start[k] ?? Int64.min) {
                    start[k] = s
                }
                if start[k] != nil { best = max(best, k) }
            }
        }
        return best
    }

    /// Each run of `length` consecutive pages beginning at a `start` page, as "a > b > c".
    /// Consecutive events on the same page are one view of it (a path is where the user went).
    static func paths(_ events: [SequenceEvent], start: String, length: Int) -> [String: Int64] {
        var out: [String: Int64] = [:]
        var pages: [String] = []
        for case let p? in events.map(\.page) where p != pages.last { pages.append(p) }
        guard pages.count >= length else { return out }
        for i in 0...(pages.count - length) where pages[i] == start {
            out[pages[i..<(i + length)].joined(separator: " > "), default: 0] += 1
        }
        return out
    }
}

/// What one engine's accumulators hold that grows with the input (closed windows release
/// theirs): the sequence aggregates' events, and exact_count_distinct's distinct values.
final class HeldBudget {
    var events = 0
    var distinctValues = 0
}

/// The accumulator of one group: every actor's events, each actor's last summary, and totals
/// kept by replacing an actor's summary when its events change.
/// Sessions keep only each actor's session spans, not its events (a day of them stays small);
/// funnels and paths keep the actor's events.
final class SequenceAccumulator: Accumulator {
    let kind: SequenceSpec.Kind
    /// The engine's count of events held by all its sequence accumulators (a query limit).
    let budget: HeldBudget
    private var held = 0
    private var actors: [Value: [SequenceEvent]] = [:]
    private var spans: [Value: [SessionSpan]] = [:]
    private var changed: Set<Value> = []
    // Per actor, what it last added to the totals.
    private var sessionSummary: [Value: (Int64, Int64, Int64, Int64)] = [:]
    private var level: [Value: Int] = [:]
    private var actorPaths: [Value: [String: Int64]] = [:]
    // Totals over actors.
    private var sessionTotals: (count: Int64, lengthMs: Int64, events: Int64, bounces: Int64) = (0, 0, 0, 0)
    private var levelCounts: [Int64] = []
    private var pathCounts: [String: Int64] = [:]

    init(_ kind: SequenceSpec.Kind, budget: HeldBudget) {
        self.kind = kind
        self.budget = budget
        if case .funnel(let steps, _) = kind { levelCounts = [Int64](repeating: 0, count: steps + 1) }
    }

    /// The contribution a row makes: [actor, ts, event_id, mask or page].
    static func contribution(actor: Value, ts: Int64, eventId: Value, info: Value) -> Value {
        actor.isNull ? .null : .array([actor, .int(ts), eventId, info])
    }

    private static func event(_ v: Value) -> (Value, SequenceEvent)? {
        guard case .array(let p) = v, p.count == 4, case .int(let ts) = p[1] else { return nil }
        let id = p[2].string ?? p[2].jsonText
        switch p[3] {
        case .int(let mask): return (p[0], SequenceEvent(ts: ts, id: id, mask: mask, page: nil))
        case .string(let page): return (p[0], SequenceEvent(ts: ts, id: id, mask: 0, page: page))
        default: return (p[0], SequenceEvent(ts: ts, id: id, mask: 0, page: nil))
        }
    }

    func add(_ v: Value) {
        guard let (actor, e) = Self.event(v) else { return }
        if case .sessions(_, let gap) = kind {
            var list = spans.removeValue(forKey: actor) ?? []
            let delta = SequenceMath.addSession(e.ts, to: &list, gapMs: gap)
            spans[actor] = list
            changed.insert(actor)
            held += delta; budget.events += delta
            return
        }
        var list = actors.removeValue(forKey: actor) ?? []
        // Events mostly arrive in time order: append, else insert at the sorted position.
        if let last = list.last, e < last {
            var lo = 0, hi = list.count
            while lo < hi { let mid = (lo + hi) / 2; if list[mid] < e { lo = mid + 1 } else { hi = mid } }
            list.insert(e, at: lo)
        } else {
            list.append(e)
        }
        actors[actor] = list
        changed.insert(actor)
        held += 1; budget.events += 1
    }

    deinit { budget.events -= held }

    /// Event streams never retract (the planner allows sequence aggregates on them only); sessions
    /// could not split a merged span back, so they ignore it.
    func remove(_ v: Value) {
        guard let (actor, e) = Self.event(v), var list = actors[actor], let i = list.firstIndex(of: e) else { return }
        list.remove(at: i)
        held -= 1; budget.events -= 1
        actors[actor] = list.isEmpty ? nil : list
        changed.insert(actor)
    }

    var result: Value {
        refresh()
        switch kind {
        case .sessions(let measure, _):
            let t = sessionTotals
            switch measure {
            case .count: return .int(t.count)
            case .averageSeconds: return t.count == 0 ? .null : .double(Double(t.lengthMs) / 1000 / Double(t.count))
            case .averageEvents: return t.count == 0 ? .null : .double(Double(t.events) / Double(t.count))
            case .bounceRate: return t.count == 0 ? .null : .double(Double(t.bounces) / Double(t.count))
            }
        case .funnel(let steps, _):
            // Users reaching step k: those whose furthest level is k or beyond.
            var out = [Value](repeating: .int(0), count: steps)
            var atLeast: Int64 = 0
            for k in stride(from: steps, through: 1, by: -1) {
                atLeast += levelCounts[k]
                out[k - 1] = .int(atLeast)
            }
            return .array(out)
        case .paths(_, _, let top):
            let ranked = pathCounts.filter { $0.value > 0 }
                .sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(top)
            return .array(ranked.map { .object(["path": .string($0.key), "count": .int($0.value)]) })
        }
    }

    /// Replaces each changed actor's contribution to the totals.
    private func refresh() {
        guard !changed.isEmpty else { return }
        for actor in changed {
            let events = actors[actor] ?? []
            switch kind {
            case .sessions:
                if let old = sessionSummary[actor] {
                    sessionTotals = (sessionTotals.count - old.0, sessionTotals.lengthMs - old.1, sessionTotals.events - old.2, sessionTotals.bounces - old.3)
                }
                let mine = spans[actor] ?? []
                let s: (count: Int64, lengthMs: Int64, events: Int64, bounces: Int64) = (Int64(mine.count), mine.reduce(0) { $0 + $1.end - $1.start }, mine.reduce(0) { $0 + $1.events },
                         Int64(mine.filter { $0.events == 1 }.count))
                sessionSummary[actor] = mine.isEmpty ? nil : s
                sessionTotals = (sessionTotals.count + s.count, sessionTotals.lengthMs + s.lengthMs,
                                 sessionTotals.events + s.events, sessionTotals.bounces + s.bounces)
            case .funnel(let steps, let window):
                if let old = level[actor] { levelCounts[old] -= 1 }
                let l = SequenceMath.funnelLevel(events, steps: steps, windowMs: window)
                level[actor] = events.isEmpty ? nil : l
                if !events.isEmpty { levelCounts[l] += 1 }
            case .paths(let start, let length, _):
                for (p, n) in actorPaths[actor] ?? [:] { pathCounts[p, default: 0] -= n }
                let mine = SequenceMath.paths(events, start: start, length: length)
                actorPaths[actor] = mine.isEmpty ? nil : mine
                for (p, n) in mine { pathCounts[p, default: 0] += n }
            }
        }
        changed.removeAll(keepingCapacity: true)
    }
}
