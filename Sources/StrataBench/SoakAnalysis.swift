import Foundation

/// One row of `bench soak`'s record, taken every --sample-every seconds.
struct SoakSample: Sendable, Equatable {
    enum Phase: String, Sendable { case load, drain }

    /// Seconds since the generator started.
    var t: Double
    var phase: Phase
    /// The `strata run` process: VmRSS, MB (2^20 bytes), and user + system CPU seconds so far.
    var rssMB: Double
    var cpuSeconds: Double
    /// CPU over the interval since the previous sample, % of one core.
    var cpuPercent: Double?
    /// The dwm engine's window state, from the run's metrics file (nil before its first commit).
    var stateMB: Double?
    var openCells: Int?
    var openWindows: Int?
    /// Records between each group's committed offsets and the ends of its input topics.
    var lag: [String: Int64] = [:]
    /// Now − the newest `emitted_at` among DWS rows read so far, s (the dashboard's freshness).
    var freshnessS: Double?
    /// Now − the end of the newest minute with a final DWS row, s.
    var finalAgeS: Double?
    /// DWS rows read so far.
    var dwsRows: Int = 0
    /// The broker process, when its pid was given.
    var brokerRSSMB: Double?
    var brokerCPUSeconds: Double?
    /// The generator process's CPU seconds so far (while it runs).
    var generatorCPUSeconds: Double?
    /// The machine's 1-minute load average (/proc/loadavg): runnable tasks competing for the cores.
    var loadAverage: Double?

    /// RSS that is not the engine's window state: what must stay flat while the input is steady.
    var nonWindowMB: Double? { stateMB.map { rssMB - $0 } }
}

/// The verdict of a soak: whether memory, lag and freshness stay bounded while the input rate is
/// steady, and whether the books balance.
///
/// The load period (the generator running, `loadSeconds` long) is cut into thirds by time: the
/// first is warm-up (windows filling, caches warming, the broker's and librdkafka's buffers
/// reaching their size) and is not judged; the middle and the last third are each summarized by
/// the median of a series, and a series grows when the last third's median exceeds the middle
/// one's by more than its allowance:
/// - memory: RSS − the dwm engine's own estimate of its window state (`strata_dwm_state_bytes`),
///   i.e. RSS normalized by the open-window state, may grow by max(32 MB, 5 % of the middle third's);
/// - consumer lag of each group: by 10 s of input (10 × rate records), and no sample after
///   warm-up above 60 s of input;
/// - freshness (now − newest DWS `emitted_at`): by 5 s, and no sample after warm-up above 60 s.
/// A third with fewer than 3 samples of a series makes that check inconclusive.
struct SoakVerdict: Sendable {
    enum Outcome: String, Sendable { case pass = "PASS", fail = "FAIL", inconclusive = "INCONCLUSIVE" }

    struct Check: Sendable {
        var name: String
        var unit: String
        var warmUp: Double?, middle: Double?, last: Double?
        /// The largest value after warm-up.
        var max: Double?
        var allowance: Double
        var ceiling: Double?
        var outcome: Outcome
        var reason: String
        var growth: Double? { middle.flatMap { m in last.map { $0 - m } } }
    }

    var checks: [Check]
    var accounting: [AccountingLine]

    var outcome: Outcome {
        if checks.contains(where: { $0.outcome == .fail }) || accounting.contains(where: { !$0.ok }) { return .fail }
        if checks.contains(where: { $0.outcome == .inconclusive }) { return .inconclusive }
        return .pass
    }

    struct AccountingLine: Sendable {
        var what: String
        var detail: String
        var ok: Bool
    }

    static let memoryAllowanceMB = 32.0
    static let memoryAllowanceShare = 0.05
    static let lagAllowanceSeconds = 10.0
    static let lagCeilingSeconds = 60.0
    static let freshnessAllowanceSeconds = 5.0
    static let freshnessCeilingSeconds = 60.0
    static let minimumSamplesPerThird = 3

    /// The samples of the load period in three thirds by time (drain samples excluded).
    static func thirds(_ samples: [SoakSample], loadSeconds: Double) -> (warmUp: [SoakSample], middle: [SoakSample], last: [SoakSample]) {
        let load = samples.filter { $0.phase == .load }
        let a = loadSeconds / 3, b = 2 * loadSeconds / 3
        return (load.filter { $0.t < a }, load.filter { $0.t >= a && $0.t < b }, load.filter { $0.t >= b })
    }

    static func evaluate(_ samples: [SoakSample], loadSeconds: Double, rate: Double, groups: [String],
                         accounting: [AccountingLine]) -> SoakVerdict {
        let (w, m, l) = thirds(samples, loadSeconds: loadSeconds)
        var checks: [Check] = []
        checks.append(check("memory outside window state (RSS − state)", unit: "MB", w, m, l, \.nonWindowMB,
                            allowance: { max(memoryAllowanceMB, memoryAllowanceShare * $0) }, ceiling: nil))
        for g in groups {
            checks.append(check("consumer lag \(g)", unit: "records", w, m, l, { $0.lag[g].map(Double.init) },
                                allowance: { _ in lagAllowanceSeconds * rate }, ceiling: lagCeilingSeconds * rate))
        }
        checks.append(check("freshness (newest DWS row's age)", unit: "s", w, m, l, \.freshnessS,
                            allowance: { _ in freshnessAllowanceSeconds }, ceiling: freshnessCeilingSeconds))
        return SoakVerdict(checks: checks, accounting: accounting)
    }

    static func check(_ name: String, unit: String, _ w: [SoakSample], _ m: [SoakSample], _ l: [SoakSample],
                      _ value: (SoakSample) -> Double?, allowance: (Double) -> Double, ceiling: Double?) -> Check {
        let wv = w.compactMap(value), mv = m.compactMap(value), lv = l.compactMap(value)
        let middle = median(mv), last = median(lv)
        let after = mv + lv
        var c = Check(name: name, unit: unit, warmUp: median(wv), middle: middle, last: last, max: after.max(),
                      allowance: middle.map(allowance) ?? allowance(0), ceiling: ceiling, outcome: .pass, reason: "")
        guard mv.count >= minimumSamplesPerThird, lv.count >= minimumSamplesPerThird, let mm = middle, let lm = last else {
            c.outcome = .inconclusive
            c.reason = "fewer than \(minimumSamplesPerThird) samples in the middle or last third"
            return c
        }
        if lm - mm > c.allowance {
            c.outcome = .fail
            c.reason = "the last third's median exceeds the middle third's by \(format(lm - mm)) \(unit) (allowed \(format(c.allowance)))"
        } else if let ceiling, let top = after.max(), top > ceiling {
            c.outcome = .fail
            c.reason = "a sample after warm-up reached \(format(top)) \(unit) (ceiling \(format(ceiling)))"
        } else {
            c.reason = "growth \(format(lm - mm)) \(unit) ≤ \(format(c.allowance))" + (ceiling.map { ", max \(format(after.max() ?? 0)) ≤ \(format($0))" } ?? "")
        }
        return c
    }

    static func median(_ xs: [Double]) -> Double? { percentile(xs, 0.5) }

    /// Nearest-rank percentile (q in 0...1) of unsorted values.
    static func percentile(_ xs: [Double], _ q: Double) -> Double? {
        guard !xs.isEmpty else { return nil }
        let s = xs.sorted()
        return s[min(s.count - 1, max(0, Int((Double(s.count) * q).rounded(.up)) - 1))]
    }

    /// Least-squares slope of (seconds, value) points, per minute (nil with fewer than two points).
    static func slopePerMinute(_ points: [(Double, Double)]) -> Double? {
        guard points.count >= 2 else { return nil }
        let n = Double(points.count)
        let mt = points.map(\.0).reduce(0, +) / n, mv = points.map(\.1).reduce(0, +) / n
        let den = points.map { ($0.0 - mt) * ($0.0 - mt) }.reduce(0, +)
        guard den > 0 else { return nil }
        return points.map { ($0.0 - mt) * ($0.1 - mv) }.reduce(0, +) / den * 60
    }

    static func format(_ x: Double) -> String {
        if abs(x) >= 100 || x == x.rounded() { return String(Int(x.rounded())) }
        return String(format: abs(x) >= 10 ? "%.1f" : "%.2f", x)
    }
}
