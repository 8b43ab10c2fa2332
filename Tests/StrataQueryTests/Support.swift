import Foundation
import StrataTestSupport
import XCTest
@testable import StrataQuery


let minuteMs: Int64 = 60_000

/// One DWM-like (with user) or DWS-like (without) record revision. Final by default: in an upsert
/// layer only final rows move a subscriber's watermark.
func record(minute: Int64, content: String, user: String? = nil, rev: Int64,
            click: Int64 = 0, expose: Int64 = 0, play: Int64 = 0, playMs: Int64 = 0, report: Int64 = 0,
            category: String = "game", region: String = "Guangdong", province: String = "Guangdong",
            strategy: String = "s0", final: Bool = true) -> [String: Value] {
    var r: [String: Value] = [
        "minute": .int(minute), "content_id": .string(content), "rev": .int(rev),
        "click": .int(click), "expose": .int(expose), "play": .int(play), "play_ms": .int(playMs),
        "like": .int(0), "share": .int(0), "comment": .int(0), "report": .int(report),
        "strategy": .string(strategy), "final": .bool(final), "emitted_at": .int(minute + 65_000),
        "content": .object(["title": .string("title of \(content)"), "category": .string(category),
                            "author_id": .string("a" + content.dropFirst()), "region": .string(region)]),
    ]
    if let user {
        r["user_id"] = .string(user)
        r["user"] = .object(["gender": .string("m"), "age_band": .string("18-24"), "province": .string(province), "city_tier": .int(2)])
    } else {
        r["uv"] = .int(1)
    }
    return r
}

/// A random upsert workload: identities with several revisions each (counts that go up and down,
/// categories that change between revs), delivered shuffled (out of order) with duplicates (stale).
struct Workload {
    var deliveries: [[String: Value]] = []

    init(seed: UInt64, identities: Int, minutes: Int64, withUsers: Bool, startMinute: Int64 = 28_000_000) {
        var rng = SeededRandom(seed: seed)
        let categories = ["game", "news", "sports", "music"]
        var all: [[String: Value]] = []
        var seen = Set<String>()
        for _ in 0..<identities {
            let m = (startMinute + Int64.random(in: 0..<minutes, using: &rng)) * minuteMs
            let c = "c\(String(format: "%08d", Int.random(in: 0..<40, using: &rng)))"
            let u: String? = withUsers ? "u\(Int.random(in: 0..<30, using: &rng))" : nil
            let id = "\(m)|\(c)|\(u ?? "")"
            if !seen.insert(id).inserted { continue }
            let revs = Int.random(in: 1...4, using: &rng)
            for rev in 1...revs {
                all.append(record(minute: m, content: c, user: u, rev: Int64(rev),
                                  click: Int64.random(in: 0...9, using: &rng),
                                  expose: Int64.random(in: 0...20, using: &rng),
                                  play: Int64.random(in: 0...5, using: &rng),
                                  playMs: Int64.random(in: 0...60_000, using: &rng),
                                  report: Int64.random(in: 0...2, using: &rng),
                                  category: categories[Int.random(in: 0..<categories.count, using: &rng)],
                                  region: Bool.random(using: &rng) ? "Guangdong" : "Sichuan"))
            }
        }
        // Stale duplicates: re-deliver some revisions.
        let dupes = (0..<(all.count / 10)).map { _ in all[Int.random(in: 0..<all.count, using: &rng)] }
        deliveries = (all + dupes).shuffled(using: &rng)
    }
}

/// Brute force, independent of the engine: keep the highest rev per identity among `rows`.
func latestPerIdentity(_ rows: [[String: Value]]) -> [[String: Value]] {
    var best: [String: (Int64, [String: Value])] = [:]
    for r in rows {
        guard case .int(let m)? = r["minute"], case .string(let c)? = r["content_id"], case .int(let rev)? = r["rev"] else { continue }
        let u: String = if case .string(let s)? = r["user_id"] { s } else { "" }
        let id = "\(m)|\(c)|\(u)"
        if let cur = best[id], cur.0 >= rev { continue }
        best[id] = (rev, r)
    }
    return best.values.map(\.1)
}

func int(_ r: [String: Value], _ k: String) -> Int64 {
    if case .int(let i)? = r[k] { return i }
    return 0
}

func str(_ r: [String: Value], _ k: String, _ sub: String) -> String {
    if case .object(let o)? = r[k], case .string(let s)? = o[sub] { return s }
    return ""
}

/// Runs a query over batches and returns the latest table emitted for each window start.
func collect(_ results: [QueryResult], into latest: inout [Int64: QueryResult]) {
    for r in results { latest[r.windowStart ?? Int64.min] = r }
}

func splitIntoBatches<T>(_ items: [T], seed: UInt64, maxBatch: Int) -> [[T]] {
    var rng = SeededRandom(seed: seed)
    var out: [[T]] = []
    var i = 0
    while i < items.count {
        let n = Int.random(in: 1...maxBatch, using: &rng)
        out.append(Array(items[i..<min(items.count, i + n)]))
        i += n
    }
    return out
}
