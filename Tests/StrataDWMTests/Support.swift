import Foundation
import StrataCore
import StrataDWM
import StrataGen
import StrataTestSupport
import XCTest

// Test fixtures: hand-built events, generated workloads routed to (topic, partition) sources, a
// random merge of the sources, an independent reference computation, and a checker for what a
// subscriber of the upsert streams would hold.

let actions = ["expose", "click", "play", "like", "share", "comment", "report"]
let m0: Int64 = EventWorkload.defaultStartMs   // a minute boundary


func event(_ id: String, ts: Int64, _ action: String, content: String = "c00000001", user: String = "u000000001",
           strategy: String? = nil, durationMs: Int64? = nil) -> [UInt8] {
    var s = "{\"event_id\":\"\(id)\",\"ts\":\(ts),\"action\":\"\(action)\",\"content_id\":\"\(content)\",\"user_id\":\"\(user)\""
    if let strategy { s += ",\"strategy\":\"\(strategy)\"" }
    if let durationMs { s += ",\"duration_ms\":\(durationMs)" }
    return Array((s + "}").utf8)
}

/// Known contents are the generator's `c0xxxxxxx`…`c8xxxxxxx`; `c9xxxxxxx` are unknown ids.
func isKnownContent(_ b: UnsafeRawBufferPointer) -> Bool {
    b.count == 9 && b[0] == UInt8(ascii: "c") && b[1] != UInt8(ascii: "9")
        && b.dropFirst().allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
}

func makeEngine(outOfOrdernessMs: Int64 = 5_000, allowedLatenessMs: Int64 = 120_000,
                idleTimeoutMs: Int64 = 30_000, dwsFinalsFirst: Bool = false, dwmFinalsPerCollect: Int = 0) -> WindowEngine {
    var config = WindowConfig(actions: actions, outOfOrdernessMs: outOfOrdernessMs,
                              allowedLatenessMs: allowedLatenessMs, idleTimeoutMs: idleTimeoutMs)
    config.dwsFinalsFirst = dwsFinalsFirst
    config.dwmFinalsPerCollect = dwmFinalsPerCollect
    return WindowEngine(config: config, isKnownContent: isKnownContent)
}

extension WindowEngine {
    @discardableResult
    func apply(_ bytes: [UInt8], source: Source = Source(topic: 0, partition: 0), offset: Int64) -> ApplyOutcome {
        bytes.withUnsafeBytes { apply($0, source: source, offset: offset) }
    }
}

/// An event as an independent JSON parser reads it.
struct ParsedEvent {
    var eventId: String
    var ts: Int64
    var action: String
    var contentId: String
    var userId: String
    var strategy: String?
    var durationMs: Int64

    init?(_ bytes: [UInt8]) {
        guard let o = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any],
              let id = o["event_id"] as? String, let ts = (o["ts"] as? NSNumber)?.int64Value,
              let a = o["action"] as? String, let c = o["content_id"] as? String, let u = o["user_id"] as? String
        else { return nil }
        eventId = id
        self.ts = ts
        action = a
        contentId = c
        userId = u
        strategy = o["strategy"] as? String
        durationMs = (o["duration_ms"] as? NSNumber)?.int64Value ?? 0
    }
}

struct Record {
    let bytes: [UInt8]
    let kind: GeneratedKind
    let source: Source
    let offset: Int64
    let parsed: ParsedEvent?
}

/// Generates `count` lines, routes each to (action topic, partition by content id) with per-source
/// offsets starting at `baseOffset`, and returns them in a random merge of the sources (each
/// source stays in offset order).
func generatedStream(_ workload: EventWorkload, count: Int, partitions: Int = 4, seed: UInt64,
                     baseOffset: Int64 = 1_000) -> [Record] {
    var gen = EventGenerator(workload)
    var rng = SeededRandom(seed: seed)
    var queues: [Source: [Record]] = [:]
    var line: [UInt8] = []
    for _ in 0..<count {
        line.removeAll(keepingCapacity: true)
        let kind = gen.next(into: &line)
        let parsed = kind == .malformed ? nil : ParsedEvent(line)
        let topic = parsed.flatMap { actions.firstIndex(of: $0.action) } ?? rng.below(actions.count)
        let partition = parsed.map { Int($0.contentId.utf8.reduce(UInt32(7)) { $0 &* 31 &+ UInt32($1) } % UInt32(partitions)) }
            ?? rng.below(partitions)
        let source = Source(topic: topic, partition: partition)
        let offset = baseOffset + Int64(queues[source]?.count ?? 0)
        queues[source, default: []].append(Record(bytes: line, kind: kind, source: source, offset: offset, parsed: parsed))
    }
    // Sorted: a Dictionary's order changes from process to process, and the stream must not.
    let ordered = queues.sorted { ($0.key.topic, $0.key.partition) < ($1.key.topic, $1.key.partition) }.map(\.value)
    return randomMerge(ordered, rng: &rng)
}

/// A uniformly random interleaving of the queues, each kept in order.
func randomMerge(_ queues: [[Record]], rng: inout SeededRandom) -> [Record] {
    var heads = [Int](repeating: 0, count: queues.count)
    var remaining = queues.reduce(0) { $0 + $1.count }
    var out: [Record] = []
    out.reserveCapacity(remaining)
    while remaining > 0 {
        var r = rng.below(remaining)
        for q in queues.indices {
            let left = queues[q].count - heads[q]
            if r < left {
                out.append(queues[q][heads[q]])
                heads[q] += 1
                break
            }
            r -= left
        }
        remaining -= 1
    }
    return out
}

struct CellKey: Hashable { let minute: Int64; let content: String; let user: String }
struct ContentKey: Hashable { let minute: Int64; let content: String }

/// The reference computation: plain dictionaries, dedupe by event_id string per cell, group, sum.
/// Strategy: of the event with the greatest (ts, event_id bytes).
func referenceRows(_ events: [ParsedEvent], actions: [String] = actions,
                   playAction: String? = "play") -> (dwm: [CellKey: DWMRow], dws: [ContentKey: DWSRow]) {
    struct Acc {
        var ids = Set<String>()
        var counts: [Int64]
        var playMs: Int64 = 0
        var bestTs = Int64.min
        var bestId: [UInt8] = []
        var strategy: String?
    }
    var cells: [CellKey: Acc] = [:]
    for e in events {
        let minute = e.ts / 60_000 * 60_000
        let key = CellKey(minute: minute, content: e.contentId, user: e.userId)
        var a = cells[key] ?? Acc(counts: [Int64](repeating: 0, count: actions.count))
        guard a.ids.insert(e.eventId).inserted else { continue }
        a.counts[actions.firstIndex(of: e.action)!] += 1
        if e.action == playAction { a.playMs += e.durationMs }
        let id = Array(e.eventId.utf8)
        if e.ts > a.bestTs || (e.ts == a.bestTs && a.bestId.lexicographicallyPrecedes(id)) {
            a.bestTs = e.ts
            a.bestId = id
            a.strategy = e.strategy
        }
        cells[key] = a
    }
    var dwm: [CellKey: DWMRow] = [:]
    var dws: [ContentKey: DWSRow] = [:]
    for (k, a) in cells {
        let n = Int64(a.ids.count)
        dwm[k] = DWMRow(minute: k.minute, contentId: k.content, userId: k.user, counts: a.counts, playMs: a.playMs,
                        strategy: a.strategy, isFinal: true, rev: 2 * n + 1)
        let ck = ContentKey(minute: k.minute, content: k.content)
        var t = dws[ck] ?? DWSRow(minute: k.minute, contentId: k.content, counts: [Int64](repeating: 0, count: actions.count),
                                  playMs: 0, uv: 0, isFinal: true, rev: 1)
        for i in t.counts.indices { t.counts[i] += a.counts[i] }
        t.playMs += a.playMs
        t.uv += 1
        t.rev += 2 * n
        dws[ck] = t
    }
    return (dwm, dws)
}

/// What a subscriber keeping the highest rev per identity holds, plus the invariants of every
/// publication: revs never go down and one (identity, rev) always carries the same row.
struct Subscriber {
    var dwm: [CellKey: DWMRow] = [:]
    var dws: [ContentKey: DWSRow] = [:]
    var published = 0
    /// Rows received with an (identity, rev) already received (the same numbers: a republication).
    var republished = 0
    var violations: [String] = []
    /// Within one uninterrupted engine a republication must carry a strictly higher rev.
    var strictlyIncreasing = true

    mutating func receive(_ e: Emission) {
        for r in e.dwm {
            published += 1
            let k = CellKey(minute: r.minute, content: r.contentId, user: r.userId)
            check(dwm[k], r, r.rev, "\(k)")
            if r.rev >= (dwm[k]?.rev ?? .min) { dwm[k] = r }
        }
        for r in e.dws {
            published += 1
            let k = ContentKey(minute: r.minute, content: r.contentId)
            check(dws[k], r, r.rev, "\(k)")
            if r.rev >= (dws[k]?.rev ?? .min) { dws[k] = r }
        }
    }

    private mutating func check<R: Equatable>(_ old: R?, _ new: R, _ rev: Int64, _ what: String) where R: RevCarrying {
        guard let old else { return }
        if old.rev == rev && old == new { republished += 1 }
        if old.rev == rev && old != new { violations.append("\(what): rev \(rev) published with two contents: \(old) / \(new)") }
        if old.rev > rev { violations.append("\(what): rev went down \(old.rev) -> \(rev)") }
        if strictlyIncreasing && old.rev == rev { violations.append("\(what): rev \(rev) published twice") }
    }
}

protocol RevCarrying { var rev: Int64 { get } }
extension DWMRow: RevCarrying {}
extension DWSRow: RevCarrying {}

func assertRowsEqual(_ got: Subscriber, _ want: (dwm: [CellKey: DWMRow], dws: [ContentKey: DWSRow]),
                     file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.dwm.count, want.dwm.count, "DWM identities", file: file, line: line)
    XCTAssertEqual(got.dws.count, want.dws.count, "DWS identities", file: file, line: line)
    var shown = 0
    for (k, w) in want.dwm where got.dwm[k] != w {
        if shown < 5 { XCTFail("DWM \(k): got \(got.dwm[k].map { "\($0)" } ?? "nothing"), want \(w)", file: file, line: line) }
        shown += 1
    }
    for (k, w) in want.dws where got.dws[k] != w {
        if shown < 10 { XCTFail("DWS \(k): got \(got.dws[k].map { "\($0)" } ?? "nothing"), want \(w)", file: file, line: line) }
        shown += 1
    }
    XCTAssertEqual(shown, 0, "rows differing from the reference", file: file, line: line)
}
