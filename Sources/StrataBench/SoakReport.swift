import Foundation

/// The figures a soak is summed up by, from its samples.
struct SoakSummary: Sendable {
    var rssStartMB = 0.0, rssMiddleMB: Double?, rssLastMB: Double?, rssPeakMB = 0.0
    var nonWindowMiddleMB: Double?, nonWindowLastMB: Double?
    var rssSlopeMBPerMin: Double?, nonWindowSlopeMBPerMin: Double?
    var cellsMedian: Double?, cellsMax: Int?, windowsMax: Int?, stateMaxMB: Double?
    var cpuSecondsLoad = 0.0, cpuCoresLoad = 0.0
    var freshnessP50: Double?, freshnessP99: Double?, freshnessMax: Double?
    var finalAgeP50: Double?, finalAgeMax: Double?
    var lagMedian: [String: Double] = [:], lagMax: [String: Int64] = [:]
    var brokerRSSStartMB: Double?, brokerRSSEndMB: Double?, brokerCPUSeconds: Double?
    var loadMedian: Double?, loadMax: Double?

    init(_ samples: [SoakSample], loadSeconds: Double, groups: [String]) {
        let (w, m, l) = SoakVerdict.thirds(samples, loadSeconds: loadSeconds)
        let steady = m + l
        let load = w + steady
        rssStartMB = load.first?.rssMB ?? 0
        rssMiddleMB = SoakVerdict.median(m.map(\.rssMB))
        rssLastMB = SoakVerdict.median(l.map(\.rssMB))
        rssPeakMB = samples.map(\.rssMB).max() ?? 0
        nonWindowMiddleMB = SoakVerdict.median(m.compactMap(\.nonWindowMB))
        nonWindowLastMB = SoakVerdict.median(l.compactMap(\.nonWindowMB))
        rssSlopeMBPerMin = SoakVerdict.slopePerMinute(steady.map { ($0.t, $0.rssMB) })
        nonWindowSlopeMBPerMin = SoakVerdict.slopePerMinute(steady.compactMap { s in s.nonWindowMB.map { (s.t, $0) } })
        cellsMedian = SoakVerdict.median(steady.compactMap { $0.openCells.map(Double.init) })
        cellsMax = samples.compactMap(\.openCells).max()
        windowsMax = samples.compactMap(\.openWindows).max()
        stateMaxMB = samples.compactMap(\.stateMB).max()
        if let lastLoad = load.last {
            cpuSecondsLoad = lastLoad.cpuSeconds
            cpuCoresLoad = lastLoad.t > 0 ? lastLoad.cpuSeconds / lastLoad.t : 0
        }
        let fresh = steady.compactMap(\.freshnessS)
        freshnessP50 = SoakVerdict.percentile(fresh, 0.5)
        freshnessP99 = SoakVerdict.percentile(fresh, 0.99)
        freshnessMax = fresh.max()
        let finals = steady.compactMap(\.finalAgeS)
        finalAgeP50 = SoakVerdict.percentile(finals, 0.5)
        finalAgeMax = finals.max()
        for g in groups {
            let v = steady.compactMap { $0.lag[g] }
            lagMedian[g] = SoakVerdict.median(v.map(Double.init))
            lagMax[g] = v.max()
        }
        loadMedian = SoakVerdict.median(load.compactMap(\.loadAverage))
        loadMax = load.compactMap(\.loadAverage).max()
        brokerRSSStartMB = load.first?.brokerRSSMB
        brokerRSSEndMB = load.last?.brokerRSSMB
        if let a = load.first?.brokerCPUSeconds, let b = load.last?.brokerCPUSeconds { brokerCPUSeconds = b - a }
    }
}

/// `bench soak`'s files: the samples as CSV and a self-contained HTML page (inline SVG charts, no
/// scripts or external resources).
enum SoakReport {
    static func csv(_ samples: [SoakSample], groups: [String]) -> String {
        var header = ["t_s", "phase", "rss_mb", "state_mb", "non_window_mb", "open_cells", "open_windows", "cpu_s", "cpu_pct"]
        header += groups.map { "lag_\($0)" }
        header += ["freshness_s", "final_age_s", "dws_rows", "broker_rss_mb", "broker_cpu_s", "generator_cpu_s", "load_average"]
        var out = header.joined(separator: ",") + "\n"
        func f(_ x: Double?, _ digits: Int = 1) -> String { x.map { String(format: "%.\(digits)f", $0) } ?? "" }
        for s in samples {
            var row = [f(s.t), s.phase.rawValue, f(s.rssMB), f(s.stateMB), f(s.nonWindowMB),
                       s.openCells.map(String.init) ?? "", s.openWindows.map(String.init) ?? "", f(s.cpuSeconds, 2), f(s.cpuPercent)]
            row += groups.map { g in s.lag[g].map(String.init) ?? "" }
            row += [f(s.freshnessS, 2), f(s.finalAgeS, 2), String(s.dwsRows), f(s.brokerRSSMB), f(s.brokerCPUSeconds, 2), f(s.generatorCPUSeconds, 2), f(s.loadAverage, 2)]
            out += row.joined(separator: ",") + "\n"
        }
        return out
    }

    struct Context {
        var title: String
        var facts: [(String, String)]
        var loadSeconds: Double
        /// Every recorded group; the judged ones get a chart of their own.
        var groups: [String]
        var judgedGroups: [String]
    }

    static func html(_ samples: [SoakSample], verdict: SoakVerdict, summary: SoakSummary, context: Context) -> String {
        let (_, m, l) = SoakVerdict.thirds(samples, loadSeconds: context.loadSeconds)
        let tEnd = max(samples.last?.t ?? 0, context.loadSeconds)
        let bands = Bands(load: context.loadSeconds, end: tEnd)
        func medians(_ value: (SoakSample) -> Double?) -> [(Double, Double, Double)] {
            var out: [(Double, Double, Double)] = []
            let a = context.loadSeconds / 3, b = 2 * context.loadSeconds / 3
            if let v = SoakVerdict.median(m.compactMap(value)) { out.append((a, b, v)) }
            if let v = SoakVerdict.median(l.compactMap(value)) { out.append((b, context.loadSeconds, v)) }
            return out
        }
        let palette = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#57606a"]
        var charts: [String] = []
        charts.append(chart(title: "Memory of the strata run process (MB)", bands: bands, series: [
            Series(name: "RSS", color: palette[0], points: samples.map { ($0.t, $0.rssMB) }),
            Series(name: "RSS − window state (judged)", color: palette[1], points: samples.compactMap { s in s.nonWindowMB.map { (s.t, $0) } },
                   medians: medians(\.nonWindowMB)),
            Series(name: "dwm window state (engine estimate)", color: palette[2], points: samples.compactMap { s in s.stateMB.map { (s.t, $0) } }),
        ]))
        charts.append(chart(title: "Open cells of the dwm engine (retained windows)", bands: bands, series: [
            Series(name: "open cells", color: palette[0], points: samples.compactMap { s in s.openCells.map { (s.t, Double($0)) } }),
        ]))
        func lagSeries(_ groups: [String], offset: Int, judged: Bool) -> [Series] {
            groups.enumerated().map { i, g in
                Series(name: g, color: palette[(i + offset) % palette.count], points: samples.compactMap { s in s.lag[g].map { (s.t, Double($0)) } },
                       medians: judged ? medians { $0.lag[g].map(Double.init) } : [])
            }
        }
        charts.append(chart(title: "Consumer lag (records between the committed offsets and the end of the input)", bands: bands,
                            series: lagSeries(context.judgedGroups, offset: 0, judged: true)))
        let offline = context.groups.filter { !context.judgedGroups.contains($0) }
        if !offline.isEmpty {
            charts.append(chart(title: "Consumer lag of the offline layer (not judged: the archive commits once per 60 s roll)", bands: bands,
                                series: lagSeries(offline, offset: 2, judged: false)))
        }
        charts.append(chart(title: "Freshness (s): age of the newest DWS row and of the newest final minute", bands: bands, series: [
            Series(name: "now − newest emitted_at (judged)", color: palette[0], points: samples.compactMap { s in s.freshnessS.map { (s.t, $0) } },
                   medians: medians(\.freshnessS)),
            Series(name: "now − end of the newest final minute", color: palette[3], points: samples.compactMap { s in s.finalAgeS.map { (s.t, $0) } }),
        ]))
        func rate(_ value: (SoakSample) -> Double?) -> [(Double, Double)] {
            zip(samples, samples.dropFirst()).compactMap { a, b in
                guard let x = value(a), let y = value(b), b.t > a.t else { return nil }
                return (b.t, (y - x) / (b.t - a.t) * 100)
            }
        }
        var cpu = [Series(name: "strata run", color: palette[0], points: samples.compactMap { s in s.cpuPercent.map { (s.t, $0) } })]
        if samples.contains(where: { $0.generatorCPUSeconds != nil }) {
            cpu.append(Series(name: "generator", color: palette[4], points: rate(\.generatorCPUSeconds)))
        }
        if samples.contains(where: { $0.brokerCPUSeconds != nil }) {
            cpu.append(Series(name: "broker", color: palette[5], points: rate(\.brokerCPUSeconds)))
        }
        charts.append(chart(title: "CPU (% of one core, per interval; the machine has \(ProcessInfo.processInfo.activeProcessorCount))", bands: bands, series: cpu))
        charts.append(chart(title: "Machine load (1-minute load average; \(ProcessInfo.processInfo.activeProcessorCount) cores, shared with other work)", bands: bands, series: [
            Series(name: "load average", color: palette[5], points: samples.compactMap { s in s.loadAverage.map { (s.t, $0) } }),
        ]))
        if samples.contains(where: { $0.brokerRSSMB != nil }) {
            charts.append(chart(title: "Broker RSS (MB; the broker keeps every topic in memory)", bands: bands, series: [
                Series(name: "broker RSS", color: palette[5], points: samples.compactMap { s in s.brokerRSSMB.map { (s.t, $0) } }),
            ]))
        }

        let outcome = verdict.outcome
        let colour = outcome == .pass ? "#1a7f37" : outcome == .fail ? "#d1242f" : "#9a6700"
        var h = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>\(esc(context.title))</title>
        <style>
        body { font: 15px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328; margin: 24px 32px; max-width: 1320px; }
        h1 { font-size: 24px; margin: 0 0 6px; } h2 { font-size: 18px; margin: 26px 0 8px; }
        .verdict { display: inline-block; color: #fff; background: \(colour); padding: 2px 12px; border-radius: 6px; }
        table { border-collapse: collapse; margin: 6px 0 10px; } td, th { border: 1px solid #d0d7de; padding: 3px 9px; text-align: left; }
        th { background: #f6f8fa; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
        .pass { color: #1a7f37; font-weight: 600; } .fail { color: #d1242f; font-weight: 600; } .inconclusive { color: #9a6700; font-weight: 600; }
        .facts { color: #57606a; } .facts b { color: #1f2328; font-weight: 600; }
        .chart { margin: 4px 0 14px; } p.note { color: #57606a; max-width: 1100px; }
        </style></head><body>
        <h1>\(esc(context.title)) <span class="verdict">\(outcome.rawValue)</span></h1>
        <div class="facts">\(context.facts.map { "\(esc($0.0)) <b>\(esc($0.1))</b>" }.joined(separator: " · "))</div>
        <h2>Verdict</h2>
        <table><tr><th>series</th><th>warm-up median</th><th>middle third median</th><th>last third median</th><th>max after warm-up</th><th>growth allowed</th><th>ceiling</th><th>result</th></tr>
        """
        for c in verdict.checks {
            let f = { (x: Double?) in x.map { SoakVerdict.format($0) + " " + c.unit } ?? "–" }
            h += "<tr><td>\(esc(c.name))</td><td class=n>\(f(c.warmUp))</td><td class=n>\(f(c.middle))</td><td class=n>\(f(c.last))</td>"
            h += "<td class=n>\(f(c.max))</td><td class=n>\(f(c.allowance))</td><td class=n>\(f(c.ceiling))</td>"
            h += "<td class=\(c.outcome.rawValue.lowercased())>\(c.outcome.rawValue)</td></tr>\n"
        }
        let books = verdict.accounting.filter { !$0.ok }
        h += "<tr><td>accounting (below)</td><td colspan=6>\(books.isEmpty ? "\(verdict.accounting.count) checks hold" : esc(books.map(\.what).joined(separator: "; ")))</td>"
        h += "<td class=\(books.isEmpty ? "pass" : "fail")>\(books.isEmpty ? "PASS" : "FAIL")</td></tr>\n"
        h += "</table>\n<h2>Over time</h2>\n"
        h += "<p class=note>Bands: the first third of the load is warm-up (not judged); the middle and last thirds are compared (dashed lines: their medians); after the load the jobs drain and stop.</p>\n"
        h += charts.joined(separator: "\n")
        h += "\n<h2>Accounting</h2>\n<table><tr><th>check</th><th>detail</th><th>result</th></tr>\n"
        for a in verdict.accounting {
            h += "<tr><td>\(esc(a.what))</td><td>\(esc(a.detail))</td><td class=\(a.ok ? "pass" : "fail")>\(a.ok ? "PASS" : "FAIL")</td></tr>\n"
        }
        h += "</table>\n<h2>Numbers</h2>\n<table>\n"
        for (k, v) in summaryRows(summary, groups: context.groups) { h += "<tr><th>\(esc(k))</th><td>\(esc(v))</td></tr>\n" }
        h += "</table>\n"
        h += """
        <p class=note>Memory outside window state = VmRSS of the <code>strata run</code> process − <code>strata_dwm_state_bytes</code> (the dwm engine's estimate of its open windows' tables). Lag is measured from each group's committed offsets without joining it, against the end offsets a read_committed client sees (the last stable offset: it stays behind a transaction until it commits, and Tansu under-reports it by the last batch), so single readings can be low, down to 0. Freshness is what the dashboard shows: now − the newest <code>emitted_at</code> among the DWS rows read so far. Samples: samples.csv beside this page.</p>
        </body></html>
        """
        return h
    }

    static func summaryRows(_ s: SoakSummary, groups: [String]) -> [(String, String)] {
        func mb(_ x: Double?) -> String { x.map { "\(Int($0.rounded())) MB" } ?? "–" }
        func sec(_ x: Double?) -> String { x.map { String(format: "%.1f s", $0) } ?? "–" }
        func slope(_ x: Double?) -> String { x.map { String(format: "%+.2f MB/min", $0) } ?? "–" }
        var rows: [(String, String)] = [
            ("RSS first sample / middle third / last third (medians) / peak",
             "\(mb(s.rssStartMB)) / \(mb(s.rssMiddleMB)) / \(mb(s.rssLastMB)) / \(mb(s.rssPeakMB))"),
            ("RSS − window state, middle / last third", "\(mb(s.nonWindowMiddleMB)) / \(mb(s.nonWindowLastMB))"),
            ("trend after warm-up (least squares): RSS / RSS − window state", "\(slope(s.rssSlopeMBPerMin)) / \(slope(s.nonWindowSlopeMBPerMin))"),
            ("open cells after warm-up: median / max (all samples); windows max; state max",
             "\(s.cellsMedian.map { String(Int($0)) } ?? "–") / \(s.cellsMax.map(String.init) ?? "–"); \(s.windowsMax.map(String.init) ?? "–"); \(mb(s.stateMaxMB))"),
            ("CPU of strata run over the load", String(format: "%.0f CPU-s (%.2f cores)", s.cpuSecondsLoad, s.cpuCoresLoad)),
            ("freshness after warm-up: p50 / p99 / max", "\(sec(s.freshnessP50)) / \(sec(s.freshnessP99)) / \(sec(s.freshnessMax))"),
            ("newest final minute's age after warm-up: p50 / max", "\(sec(s.finalAgeP50)) / \(sec(s.finalAgeMax))"),
        ]
        for g in groups {
            rows.append(("consumer lag \(g) after warm-up: median / max",
                         "\(s.lagMedian[g].map { String(Int($0)) } ?? "–") / \(s.lagMax[g].map(String.init) ?? "–") records"))
        }
        if let l = s.loadMedian, let m = s.loadMax {
            rows.append(("machine load average during the load: median / max", String(format: "%.1f / %.1f", l, m)))
        }
        if s.brokerRSSStartMB != nil {
            rows.append(("broker RSS first / last load sample; broker CPU over the load",
                         "\(mb(s.brokerRSSStartMB)) / \(mb(s.brokerRSSEndMB)); \(s.brokerCPUSeconds.map { String(format: "%.0f CPU-s", $0) } ?? "–")"))
        }
        return rows
    }

    // MARK: SVG

    struct Series {
        var name: String
        var color: String
        var points: [(Double, Double)]
        /// Dashed segments (from t, to t, value): the medians the verdict compares.
        var medians: [(Double, Double, Double)] = []
    }

    struct Bands { var load: Double; var end: Double }

    static func chart(title: String, bands: Bands, series: [Series]) -> String {
        let width = 1260.0, height = 215.0, left = 78.0, right = 16.0, top = 34.0, bottom = 30.0
        let plotW = width - left - right, plotH = height - top - bottom
        let xMax = max(bands.end, 1)
        let yData = series.flatMap { $0.points.map(\.1) + $0.medians.map(\.2) }
        let (yMax, yStep) = niceScale(yData.max() ?? 1)
        func x(_ t: Double) -> Double { left + t / xMax * plotW }
        func y(_ v: Double) -> Double { top + plotH - min(max(v, 0), yMax) / yMax * plotH }
        var s = "<svg class=chart xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
        s += "<text x=\"\(left)\" y=\"18\" font-size=\"14\" font-weight=\"600\" fill=\"#1f2328\">\(esc(title))</text>\n"
        // Periods: warm-up, middle third, last third, drain.
        let third = bands.load / 3
        let periods: [(Double, Double, String, String)] = [(0, third, "#eaeef2", "warm-up"), (third, 2 * third, "#f6f8fa", "middle third"),
                                                           (2 * third, bands.load, "#eef6ff", "last third"), (bands.load, xMax, "#fff8e5", "drain")]
        for (a, b, fill, label) in periods where b > a {
            s += "<rect x=\"\(r(x(a)))\" y=\"\(top)\" width=\"\(r(x(b) - x(a)))\" height=\"\(plotH)\" fill=\"\(fill)\"/>"
            if x(b) - x(a) > 60 { s += "<text x=\"\(r(x(a) + 4))\" y=\"\(top + 13)\" fill=\"#8c959f\" font-size=\"11\">\(label)</text>" }
            s += "\n"
        }
        // Y grid and labels.
        var v = 0.0
        while v <= yMax + yStep / 2 {
            s += "<line x1=\"\(left)\" x2=\"\(left + plotW)\" y1=\"\(r(y(v)))\" y2=\"\(r(y(v)))\" stroke=\"#d0d7de\" stroke-width=\"0.6\"/>"
            s += "<text x=\"\(left - 6)\" y=\"\(r(y(v) + 4))\" text-anchor=\"end\" fill=\"#57606a\">\(axisLabel(v))</text>\n"
            v += yStep
        }
        // X ticks in minutes.
        let minutes = xMax / 60
        let stepMin = [0.25, 0.5, 1, 2, 5, 10, 15, 30, 60].first { minutes / $0 <= 12 } ?? 120
        var tick = 0.0
        while tick <= minutes + 1e-9 {
            let px = x(tick * 60)
            s += "<line x1=\"\(r(px))\" x2=\"\(r(px))\" y1=\"\(top + plotH)\" y2=\"\(top + plotH + 4)\" stroke=\"#57606a\"/>"
            s += "<text x=\"\(r(px))\" y=\"\(top + plotH + 17)\" text-anchor=\"middle\" fill=\"#57606a\">\(axisLabel(tick)) min</text>\n"
            tick += stepMin
        }
        s += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotW)\" height=\"\(plotH)\" fill=\"none\" stroke=\"#8c959f\" stroke-width=\"0.8\"/>\n"
        for se in series {
            if !se.points.isEmpty {
                let path = se.points.map { "\(r(x($0.0))),\(r(y($0.1)))" }.joined(separator: " ")
                s += "<polyline fill=\"none\" stroke=\"\(se.color)\" stroke-width=\"1.8\" points=\"\(path)\"/>\n"
            }
            for (a, b, mv) in se.medians {
                s += "<line x1=\"\(r(x(a)))\" x2=\"\(r(x(b)))\" y1=\"\(r(y(mv)))\" y2=\"\(r(y(mv)))\" stroke=\"\(se.color)\" stroke-width=\"1.2\" stroke-dasharray=\"6 4\"/>\n"
            }
        }
        // Legend, top right.
        var lx = left + plotW
        for se in series.reversed() {
            let w = Double(se.name.count) * 7.2 + 40
            lx -= w
            s += "<line x1=\"\(r(lx))\" x2=\"\(r(lx + 18))\" y1=\"14\" y2=\"14\" stroke=\"\(se.color)\" stroke-width=\"3\"/>"
            s += "<text x=\"\(r(lx + 22))\" y=\"18\" fill=\"#1f2328\">\(esc(se.name))</text>\n"
        }
        return s + "</svg>"
    }

    /// A round top for the axis and a step that gives 4–6 grid lines.
    static func niceScale(_ maxValue: Double) -> (top: Double, step: Double) {
        guard maxValue > 0, maxValue.isFinite else { return (1, 0.25) }
        let rough = maxValue / 5
        let magnitude = pow(10, floor(log10(rough)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
        return (ceil(maxValue / step) * step, step)
    }

    static func axisLabel(_ v: Double) -> String {
        if v >= 1_000_000 { return trim(v / 1_000_000) + "M" }
        if v >= 10_000 { return trim(v / 1_000) + "k" }
        return trim(v)
    }

    private static func trim(_ v: Double) -> String {
        v == v.rounded() ? String(Int(v)) : String(format: "%.2f", v).replacingOccurrences(of: #"\.?0+$"#, with: "", options: .regularExpression)
    }

    private static func r(_ v: Double) -> String { String(format: "%.1f", v) }

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
