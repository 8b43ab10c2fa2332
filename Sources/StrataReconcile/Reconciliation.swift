import Foundation
import StrataArchive
public import StrataDims

/// One metric compared: the batch value, the stream's, and what the day's late events added to the
/// batch (they are in the archive, never in the stream).
public struct MetricComparison: Sendable, Codable, Equatable {
    public var metric: String
    public var batch: Int64
    public var stream: Int64
    /// batch − stream
    public var difference: Int64
    /// The late events' contribution to batch for this metric.
    public var late: Int64
    /// difference − late: what late events do not explain.
    public var unexplained: Int64
    /// |difference| / max(batch, 1)
    public var relative: Double
    /// Within tolerance, or explained by late events.
    public var ok: Bool
}

/// A group (the day, a category, an hour, a minute, a content, a row) with its metrics compared.
public struct GroupComparison: Sendable, Codable, Equatable {
    public var key: String
    public var metrics: [MetricComparison]
    public var ok: Bool { metrics.allSatisfy(\.ok) }
}

/// One place where stream and batch disagree beyond tolerance and late events.
public struct Finding: Sendable, Codable, Equatable {
    /// total, category, hour, minute, content, row
    public var level: String
    public var key: String
    public var minute: Int64?
    public var contentId: String?
    public var metric: String
    public var batch: Int64
    public var stream: Int64
    public var late: Int64
    public var unexplained: Int64
}

/// A ranked difference (top content / minutes).
public struct RankedDifference: Sendable, Codable, Equatable {
    public var key: String
    public var metric: String
    public var batch: Int64
    public var stream: Int64
    public var difference: Int64
    public var late: Int64
    public var relative: Double
    public var explained: Bool
}

/// A stream row whose `rev` does not match its own counts (rev = 2 × events + final).
public struct RevisionProblem: Sendable, Codable, Equatable {
    public var minute: Int64
    public var contentId: String
    public var rev: Int64
    public var expectedRev: Int64
    public var isFinal: Bool
}

public struct ReconcileReport: Sendable, Codable {
    public var date: String
    public var generatedAt: String
    public var archive: String
    public var tolerance: Double
    /// ok (exit 0) or differences (exit 1).
    public var verdict: String
    public var exitCode: Int32
    public var scanSeconds: Double
    public var linesPerSecond: Double
    public var lateSource: String
    public var rules: [String]
    public var input: ScanCounts
    /// ods.dlq records of the day by reason (from the broker), when read.
    public var deadLetterTopic: [String: Int]?
    public var streamRows: Int
    public var streamRowsNotFinal: Int
    public var totals: GroupComparison
    public var categories: [GroupComparison]
    public var hours: [GroupComparison]
    /// UV (the sum over contents of distinct users per minute) per minute with any activity.
    public var uvPerMinute: [GroupComparison]
    public var topContentByAbsolute: [RankedDifference]
    public var topContentByRelative: [RankedDifference]
    public var topMinutesByAbsolute: [RankedDifference]
    public var topMinutesByRelative: [RankedDifference]
    public var findings: [Finding]
    public var findingsTotal: Int
    public var revisionProblems: [RevisionProblem]
    public var revisionProblemsTotal: Int
    public var settlement: SettlementCheck
}

public struct ReconcileOptions: Sendable {
    public var tolerance: Double = 0.001
    public var top = 10
    public var maxFindings = 200
    public init() {}
}

/// Compares the batch day with `dws_minute` and builds the report.
public enum Reconciliation {
    public static let rules = [
        "a line is an event only if it is a JSON object (RFC 8259, valid UTF-8, nesting ≤ 64, ≤ 64 KiB) with event_id (string, 1–64 bytes), ts (integer ≥ 0), action, content_id and user_id (non-empty) as strings, strategy string or null, duration_ms integer ≥ 0 or null, device object or null, none of these twice; otherwise it is dead-lettered (reason as the split's)",
        "an action not declared in topology/ is dead-lettered (unknown_action)",
        "a content id that does not match the topology's content_id_pattern is filtered (invalid_content_id)",
        "a content id without a content_dim row is filtered (unknown_content_id)",
        "events count in the minute floor(ts / 60000) × 60000 (UTC); only events of the day count, whenever they arrived (no lateness limit)",
        "the same event_id in the same (minute, content, user) counts once",
        "each event adds 1 to its action's column; a play adds its duration_ms (null: 0) to play_ms; uv = distinct users of the (minute, content)",
        "late events (ods.late) are not in the stream: batch − stream = their contribution, per metric, when both are right",
    ]

    public static func run(scan: DayScan, table: any DWSTable, store: any DimensionStore, prices: [CategoryPrice],
                           options: ReconcileOptions, lateSource: String, deadLetterTopic: [String: Int]?,
                           allActionsHaveColumns: Bool) throws -> ReconcileReport {
        let day = scan.day
        // Stream rows of the day, keyed like the batch's.
        var stream: [UInt64: Metrics] = [:]
        var revisionProblems: [RevisionProblem] = []
        var revisionProblemsTotal = 0
        var notFinal = 0
        var misaligned: [Finding] = []
        var streamRows = 0
        var newIds = false
        do {
            try table.rows(from: day.startMs, to: day.endMs) { row in
                streamRows += 1
                let offset = row.minute - day.startMs
                guard offset % 60_000 == 0 else {
                    misaligned.append(Finding(level: "row", key: "\(row.minute) \(row.contentId)", minute: row.minute,
                                              contentId: row.contentId, metric: "minute", batch: 0, stream: row.minute, late: 0,
                                              unexplained: row.minute))
                    return
                }
                let (c, isNew) = scan.internContent(row.contentId)
                if isNew { newIds = true }
                var m = Metrics()
                m[.expose] = row.expose; m[.click] = row.click; m[.play] = row.play; m[.playMs] = row.playMs
                m[.like] = row.like; m[.share] = row.share; m[.comment] = row.comment; m[.report] = row.report; m[.uv] = row.uv
                stream[BatchDay.rowKey(Int(offset / 60_000), c)] = m
                if !row.isFinal { notFinal += 1 }
                let expected = 2 * m.events + (row.isFinal ? 1 : 0)
                if allActionsHaveColumns && row.rev != expected {
                    revisionProblemsTotal += 1
                    if revisionProblems.count < options.maxFindings {
                        revisionProblems.append(RevisionProblem(minute: row.minute, contentId: row.contentId, rev: row.rev,
                                                                expectedRev: expected, isFinal: row.isFinal))
                    }
                }
            }
        } catch {
            throw ReconcileError.source("dws_minute: \(error)")
        }
        if newIds { try scan.resolveContents(store: store) }

        // Every row key of either side, ascending (minute, then content index), each once.
        var keys: [UInt64] = Array(stream.keys)
        scan.forEachRow { k, _ in if stream[k] == nil { keys.append(k) } }
        keys.sort()

        let tol = options.tolerance
        func compare(_ key: String, _ a: Metrics, _ s: Metrics, _ l: Metrics) -> GroupComparison {
            GroupComparison(key: key, metrics: Metric.allCases.map { m in
                let d = a[m] - s[m]
                let r = d - l[m]
                let base = Double(max(abs(a[m]), 1))
                let ok = Double(min(abs(d), abs(r))) <= tol * base
                return MetricComparison(metric: m.description, batch: a[m], stream: s[m], difference: d, late: l[m],
                                        unexplained: r, relative: Double(abs(d)) / base, ok: ok)
            })
        }

        struct Triple {
            var a = Metrics(), s = Metrics(), l = Metrics()
            mutating func add(_ x: Metrics, _ y: Metrics, _ z: Metrics) { a += x; s += y; l += z }
        }
        var total = Triple()
        // Categories by index: one String lookup per content, not per row.
        var categoryNames: [String] = []
        var categoryOf: [String: Int] = [:]
        var contentCategory = [Int](repeating: -1, count: scan.contentCount)
        var byCategory: [Triple] = []
        var byHour = Array(repeating: Triple(), count: 24)
        var byMinute = Array(repeating: Triple(), count: 1440)
        var byContent = Array(repeating: Triple(), count: scan.contentCount)
        var contentSeen = [Bool](repeating: false, count: scan.contentCount)
        var findings: [Finding] = misaligned
        var findingsTotal = misaligned.count

        func note(_ level: String, _ g: GroupComparison, minute: Int64? = nil, contentId: String? = nil) {
            for m in g.metrics where !m.ok {
                findingsTotal += 1
                if findings.count < options.maxFindings {
                    findings.append(Finding(level: level, key: g.key, minute: minute, contentId: contentId, metric: m.metric,
                                            batch: m.batch, stream: m.stream, late: m.late, unexplained: m.unexplained))
                }
            }
        }

        var rowFindings: [(GroupComparison, Int64, String)] = []
        var previous = UInt64.max
        for k in keys where k != previous {
            previous = k
            let minuteOfDay = Int(k >> 32)
            let c = UInt32(truncatingIfNeeded: k)
            let ci = Int(c)
            let a = scan.batchRow(k) ?? Metrics()
            let s = stream[k] ?? Metrics()
            let l = scan.isKnown(c) ? scan.lateRows[k] ?? Metrics() : Metrics()
            if contentCategory[ci] < 0 {
                let name = scan.category(c) ?? "(unknown content)"
                if let i = categoryOf[name] {
                    contentCategory[ci] = i
                } else {
                    contentCategory[ci] = categoryNames.count
                    categoryOf[name] = categoryNames.count
                    categoryNames.append(name)
                    byCategory.append(Triple())
                }
            }
            total.add(a, s, l)
            byCategory[contentCategory[ci]].add(a, s, l)
            byHour[minuteOfDay / 60].add(a, s, l)
            byMinute[minuteOfDay].add(a, s, l)
            byContent[ci].add(a, s, l)
            contentSeen[ci] = true
            if !Metrics.allFine(a, s, l, tolerance: tol) {
                let minuteMs = day.startMs + Int64(minuteOfDay) * 60_000
                rowFindings.append((compare("\(iso(minuteMs)) \(scan.contentId(c))", a, s, l), minuteMs, scan.contentId(c)))
            }
        }

        let totals = compare("day", total.a, total.s, total.l)
        note("total", totals)
        let categories = categoryNames.indices.sorted { categoryNames[$0] < categoryNames[$1] }.map { i in
            compare(categoryNames[i], byCategory[i].a, byCategory[i].s, byCategory[i].l)
        }
        for g in categories { note("category", g) }
        let hours = (0..<24).map { h in compare(h < 10 ? "0\(h):00" : "\(h):00", byHour[h].a, byHour[h].s, byHour[h].l) }
        for g in hours { note("hour", g) }
        var uvPerMinute: [GroupComparison] = []
        for m in 0..<1440 {
            let t = byMinute[m]
            guard t.a != Metrics() || t.s != Metrics() else { continue }
            let full = compare(iso(day.startMs + Int64(m) * 60_000), t.a, t.s, t.l)
            note("minute", full, minute: day.startMs + Int64(m) * 60_000)
            uvPerMinute.append(GroupComparison(key: full.key, metrics: full.metrics.filter { $0.metric == "uv" }))
        }
        for (g, minute, id) in rowFindings { note("row", g, minute: minute, contentId: id) }

        // Rankings: per group the metric with the largest difference (absolute: not play_ms, whose
        // unit is ms; relative: any).
        func ranked(_ groups: [(String, Triple)], relative: Bool) -> [RankedDifference] {
            var out: [RankedDifference] = []
            for (key, t) in groups {
                let g = compare(key, t.a, t.s, t.l)
                let candidates = g.metrics.filter { $0.difference != 0 && (relative || $0.metric != "play_ms") }
                guard let best = candidates.max(by: { relative ? $0.relative < $1.relative : abs($0.difference) < abs($1.difference) })
                else { continue }
                out.append(RankedDifference(key: key, metric: best.metric, batch: best.batch, stream: best.stream,
                                            difference: best.difference, late: best.late, relative: best.relative,
                                            explained: best.unexplained == 0))
            }
            out.sort { relative ? ($0.relative, abs($0.difference)) > ($1.relative, abs($1.difference))
                                : (abs($0.difference), $0.relative) > (abs($1.difference), $1.relative) }
            return Array(out.prefix(options.top))
        }
        let contentGroups = (0..<scan.contentCount).compactMap { c -> (String, Triple)? in
            guard contentSeen[c], byContent[c].a != byContent[c].s else { return nil }
            return (scan.contentId(UInt32(c)), byContent[c])
        }.sorted { $0.0 < $1.0 }
        let minuteGroups = (0..<1440).compactMap { m -> (String, Triple)? in
            byMinute[m].a == byMinute[m].s ? nil : (iso(day.startMs + Int64(m) * 60_000), byMinute[m])
        }

        let settlement = Settlement.check(scan: scan, stream: stream, prices: prices, options: options)
        let failed = findingsTotal > 0 || revisionProblemsTotal > 0 || !settlement.ok
        return ReconcileReport(
            date: day.description, generatedAt: iso(Int64(Date().timeIntervalSince1970 * 1000)), archive: scan.archiveRoot,
            tolerance: tol, verdict: failed ? "differences" : "ok", exitCode: failed ? 1 : 0,
            scanSeconds: scan.seconds, linesPerSecond: scan.seconds > 0 ? Double(scan.counts.lines) / scan.seconds : 0,
            lateSource: lateSource, rules: rules, input: scan.counts, deadLetterTopic: deadLetterTopic,
            streamRows: streamRows, streamRowsNotFinal: notFinal, totals: totals, categories: categories, hours: hours,
            uvPerMinute: uvPerMinute,
            topContentByAbsolute: ranked(contentGroups, relative: false), topContentByRelative: ranked(contentGroups, relative: true),
            topMinutesByAbsolute: ranked(minuteGroups, relative: false), topMinutesByRelative: ranked(minuteGroups, relative: true),
            findings: findings, findingsTotal: findingsTotal, revisionProblems: revisionProblems,
            revisionProblemsTotal: revisionProblemsTotal, settlement: settlement)
    }
}

/// `2026-12-01T13:05:00Z` for epoch ms (whole seconds).
func iso(_ ms: Int64) -> String {
    let day = ArchiveDay(epochMs: ms)
    let s = (ms - day.startMs) / 1000
    func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return "\(day)T\(two(s / 3600)):\(two(s / 60 % 60)):\(two(s % 60))Z"
}
