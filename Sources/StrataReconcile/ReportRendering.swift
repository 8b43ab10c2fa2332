import Foundation
import StrataDims

public enum ReportFormat: String, Sendable, CaseIterable {
    case md, html, json
}

extension ReconcileReport {
    public func render(_ format: ReportFormat) throws -> String {
        switch format {
        case .json: return try json()
        case .md: return markdown()
        case .html: return html()
        }
    }

    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
    }

    // MARK: Markdown

    public func markdown() -> String {
        var out = "# Reconciliation \(date)\n\n"
        out += verdict == "ok"
            ? "**Verdict: OK** — every difference between the stream (`dws_minute`) and the batch recomputation is within tolerance \(tolerance) or explained by counted late events.\n\n"
            : "**Verdict: DIFFERENCES** — \(findingsTotal) unexplained difference(s)\(revisionProblemsTotal > 0 ? ", \(revisionProblemsTotal) row revision problem(s)" : "")\(settlement.ok ? "" : ", \(settlement.mismatchesTotal) settlement mismatch(es)"). See *Findings*.\n\n"
        out += "Archive `\(archive)`, generated \(generatedAt). Scan: \(input.lines) lines in \(input.files) files, \(fmt(scanSeconds)) s (\(Int(linesPerSecond)) lines/s). Late events from \(lateSource).\n\n"

        out += "## What the input held\n\n| | count |\n|---|---:|\n"
        out += "| events counted (distinct) | \(input.events) |\n| duplicates (same event_id in a cell) | \(input.duplicates) |\n"
        for (r, n) in input.deadLettered.sorted(by: { $0.key < $1.key }) { out += "| dead-lettered: \(r) | \(n) |\n" }
        for (r, n) in input.filtered.sorted(by: { $0.key < $1.key }) { out += "| filtered: \(r) | \(n) |\n" }
        out += "| outside the day (valid lines whose ts is another day: misfiled, or arrival-dated) | \(input.outsideDay) |\n| events from invalid folders | \(input.eventsFromInvalidFolder) |\n"
        out += "| late records read / of the day | \(input.lateRead) / \(input.lateOfDay) |\n"
        out += "| late events explaining differences | \(input.lateExplaining) |\n| late copies of events counted in time | \(input.lateDuplicatesOfCounted) |\n"
        out += "| late events missing from the archive | \(input.lateNotInArchive) |\n"
        out += "| stream rows / not final | \(streamRows) / \(streamRowsNotFinal) |\n"
        if let dlq = deadLetterTopic {
            for (r, n) in dlq.sorted(by: { $0.key < $1.key }) { out += "| ods.dlq of the day: \(r) | \(n) |\n" }
        }
        out += "\n"

        out += "## Totals\n\n" + metricTable([totals], keyName: "") + "\n"
        out += "## Per category\n\n" + metricTable(categories, keyName: "category") + "\n"
        out += "## Per hour (events = all actions)\n\n| hour | batch events | stream events | late | unexplained | ok |\n|---|---:|---:|---:|---:|---|\n"
        for h in hours {
            let (b, s, l) = eventSums(h)
            out += "| \(h.key) | \(b) | \(s) | \(l) | \(b - s - l) | \(h.ok ? "yes" : "**no**") |\n"
        }
        out += "\n## UV per minute (differences only)\n\n"
        let uvDiffs = uvPerMinute.filter { $0.metrics.first?.difference != 0 }
        if uvDiffs.isEmpty {
            out += "All \(uvPerMinute.count) active minutes have the same UV in stream and batch.\n\n"
        } else {
            out += "| minute | batch | stream | late | ok |\n|---|---:|---:|---:|---|\n"
            for g in uvDiffs.prefix(60) {
                if let m = g.metrics.first { out += "| \(g.key) | \(m.batch) | \(m.stream) | \(m.late) | \(m.ok ? "yes" : "**no**") |\n" }
            }
            out += uvDiffs.count > 60 ? "\n… \(uvDiffs.count - 60) more in the JSON report.\n\n" : "\n"
        }
        for (title, list) in [("Top content by absolute difference", topContentByAbsolute), ("Top content by relative difference", topContentByRelative),
                              ("Top minutes by absolute difference", topMinutesByAbsolute), ("Top minutes by relative difference", topMinutesByRelative)] {
            out += "## \(title)\n\n"
            if list.isEmpty { out += "No differences.\n\n"; continue }
            out += "| key | metric | batch | stream | difference | late | relative | explained |\n|---|---|---:|---:|---:|---:|---:|---|\n"
            for r in list {
                out += "| \(r.key) | \(r.metric) | \(r.batch) | \(r.stream) | \(r.difference) | \(r.late) | \(fmt(r.relative * 100))% | \(r.explained ? "yes" : "**no**") |\n"
            }
            out += "\n"
        }
        out += "## Findings\n\n"
        if findings.isEmpty && revisionProblems.isEmpty {
            out += "None.\n\n"
        } else {
            if !findings.isEmpty {
                out += "| level | where | metric | batch | stream | late | unexplained |\n|---|---|---|---:|---:|---:|---:|\n"
                for f in findings { out += "| \(f.level) | \(f.key) | \(f.metric) | \(f.batch) | \(f.stream) | \(f.late) | \(f.unexplained) |\n" }
                if findingsTotal > findings.count { out += "\n… \(findingsTotal - findings.count) more.\n" }
                out += "\n"
            }
            if !revisionProblems.isEmpty {
                out += "Rows whose rev does not match their counts (rev = 2 × events + final):\n\n| minute | content | rev | expected |\n|---|---|---:|---:|\n"
                for p in revisionProblems { out += "| \(iso(p.minute)) | \(p.contentId) | \(p.rev) | \(p.expectedRev) |\n" }
                out += "\n"
            }
        }
        out += "## Settlement\n\n"
        out += "\(settlement.contents) contents, \(settlement.distinctClickers) distinct clickers (summed over contents), clicks \(settlement.clicks) (stream \(settlement.streamClicks), late \(settlement.lateClicks)), exposures \(settlement.exposures) (stream \(settlement.streamExposures), late \(settlement.lateExposures)).\n"
        for (cur, fee) in settlement.feeMicro.sorted(by: { $0.key < $1.key }) { out += "Fees: \(PricingCSV.format(micro: fee)) \(cur).\n" }
        if !settlement.unpricedCategories.isEmpty { out += "No price for categories: \(settlement.unpricedCategories.joined(separator: ", ")) (fee 0).\n" }
        out += settlement.ok ? "Clicks and exposures per content agree with the stream (within tolerance or late events).\n\n"
                             : "**\(settlement.mismatchesTotal) mismatch(es)** between batch and stream per content:\n\n"
        if !settlement.mismatches.isEmpty {
            out += "| content | metric | batch | stream | late |\n|---|---|---:|---:|---:|\n"
            for m in settlement.mismatches { out += "| \(m.contentId) | \(m.metric) | \(m.batch) | \(m.stream) | \(m.late) |\n" }
            out += "\n"
        }
        if !settlement.top.isEmpty {
            out += "Highest fees:\n\n| content | category | clickers | clicks | exposures | CTR | fee |\n|---|---|---:|---:|---:|---:|---:|\n"
            for r in settlement.top {
                out += "| \(r.contentId) | \(r.category) | \(r.distinctClickers) | \(r.clicks) | \(r.exposures) | \(r.ctr.map { formatRatio($0) } ?? "–") | \(PricingCSV.format(micro: r.feeMicro)) \(r.currency) |\n"
            }
            out += "\n"
        }
        out += "## Rules of the batch path\n\n" + rules.map { "- \($0)\n" }.joined()
        return out
    }

    private func metricTable(_ groups: [GroupComparison], keyName: String) -> String {
        var out = "| \(keyName.isEmpty ? "metric" : keyName + " | metric") | batch | stream | difference | late | unexplained | ok |\n"
        out += keyName.isEmpty ? "|---|---:|---:|---:|---:|---:|---|\n" : "|---|---|---:|---:|---:|---:|---:|---|\n"
        for g in groups {
            for m in g.metrics {
                let prefix = keyName.isEmpty ? "" : "\(g.key) | "
                out += "| \(prefix)\(m.metric) | \(m.batch) | \(m.stream) | \(m.difference) | \(m.late) | \(m.unexplained) | \(m.ok ? "yes" : "**no**") |\n"
            }
        }
        return out
    }

    func eventSums(_ g: GroupComparison) -> (Int64, Int64, Int64) {
        let actions: Set<String> = ["expose", "click", "play", "like", "share", "comment", "report"]
        var b: Int64 = 0, s: Int64 = 0, l: Int64 = 0
        for m in g.metrics where actions.contains(m.metric) { b += m.batch; s += m.stream; l += m.late }
        return (b, s, l)
    }

    // MARK: HTML

    public func html() -> String {
        // The chart goes under the verdict, before the first section.
        var body = Self.markdownToHTML(markdown())
        let chart = "<h2>Hourly events: stream vs batch</h2>\n\(hourlyChart())\n"
        if let first = body.range(of: "<h2>") { body.insert(contentsOf: chart, at: first.lowerBound) } else { body += chart }
        return """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Strata reconciliation \(date)</title>
        <style>
        body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1d2330;padding:0 1em}
        table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #d5d9e0;padding:3px 8px}
        td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f1f3f7}
        .ok{color:#1a7f37;font-weight:600}.bad{color:#c2272d;font-weight:600}code{background:#f1f3f7;padding:0 3px}
        .legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
        </style></head><body>
        \(body)
        </body></html>

        """
    }

    /// An inline SVG: per hour, the batch's and the stream's events as bars, late events marked.
    func hourlyChart() -> String {
        let sums = hours.map(eventSums)
        let maxValue = max(1, sums.map { max($0.0, $0.1) }.max() ?? 1)
        let width = 960.0, height = 260.0, left = 60.0, bottom = 30.0, top = 10.0
        let plotH = height - bottom - top
        let slot = (width - left - 10) / 24
        let barW = slot * 0.38
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"events per hour, stream and batch\">"
        for i in 0...4 {
            let v = Double(maxValue) * Double(i) / 4
            let y = top + plotH - plotH * Double(i) / 4
            svg += "<line x1=\"\(left)\" y1=\"\(fmt(y))\" x2=\"\(width - 10)\" y2=\"\(fmt(y))\" stroke=\"#e3e6eb\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(fmt(y + 4))\" font-size=\"10\" text-anchor=\"end\" fill=\"#555\">\(Int(v))</text>"
        }
        for (h, (b, s, l)) in sums.enumerated() {
            let x = left + Double(h) * slot + slot * 0.1
            let hb = plotH * Double(b) / Double(maxValue), hs = plotH * Double(s) / Double(maxValue)
            let bad = !hours[h].ok
            svg += "<rect x=\"\(fmt(x))\" y=\"\(fmt(top + plotH - hb))\" width=\"\(fmt(barW))\" height=\"\(fmt(hb))\" fill=\"#4c78a8\"><title>\(hours[h].key) batch \(b)</title></rect>"
            svg += "<rect x=\"\(fmt(x + barW))\" y=\"\(fmt(top + plotH - hs))\" width=\"\(fmt(barW))\" height=\"\(fmt(hs))\" fill=\"\(bad ? "#e45756" : "#f58518")\"><title>\(hours[h].key) stream \(s), late \(l)\(bad ? ", unexplained difference" : "")</title></rect>"
            svg += "<text x=\"\(fmt(x + barW))\" y=\"\(fmt(height - 12))\" font-size=\"10\" text-anchor=\"middle\" fill=\"#555\">\(h)</text>"
        }
        svg += "</svg>"
        return svg + "<div class=\"legend\"><span style=\"background:#4c78a8\"></span>batch<span style=\"background:#f58518\"></span>stream<span style=\"background:#e45756\"></span>stream, hour with an unexplained difference</div>"
    }

    /// Just enough Markdown for this report: headings, paragraphs, pipe tables, lists, bold, code.
    static func markdownToHTML(_ md: String) -> String {
        var out = ""
        var tableRows: [[String]] = []
        var list: [String] = []
        func inline(_ s: String) -> String {
            var t = s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            for (marker, open, close) in [("**", "<b>", "</b>"), ("`", "<code>", "</code>")] {
                var parts = t.components(separatedBy: marker)
                if parts.count >= 3 {
                    var r = parts.removeFirst()
                    for (i, p) in parts.enumerated() { r += (i % 2 == 0 ? open : close) + p }
                    t = r
                }
            }
            if t == "yes" { return "<span class=\"ok\">yes</span>" }
            if t == "<b>no</b>" { return "<span class=\"bad\">no</span>" }
            return t
        }
        func flushTable() {
            guard !tableRows.isEmpty else { return }
            out += "<table>"
            for (i, row) in tableRows.enumerated() where i != 1 {
                out += "<tr>" + row.map { cell in
                    let numeric = i > 0 && !cell.isEmpty && cell.allSatisfy { "0123456789-.%–".contains($0) }
                    return i == 0 ? "<th>\(inline(cell))</th>" : "<td\(numeric ? " class=\"n\"" : "")>\(inline(cell))</td>"
                }.joined() + "</tr>"
            }
            out += "</table>\n"
            tableRows = []
        }
        func flushList() {
            guard !list.isEmpty else { return }
            out += "<ul>" + list.map { "<li>\(inline($0))</li>" }.joined() + "</ul>\n"
            list = []
        }
        for line in md.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("|") {
                flushList()
                tableRows.append(line.dropFirst().dropLast().components(separatedBy: "|").map { $0.trimmingCharacters(in: .whitespaces) })
                continue
            }
            flushTable()
            if line.hasPrefix("- ") { list.append(String(line.dropFirst(2))); continue }
            flushList()
            if line.hasPrefix("## ") { out += "<h2>\(inline(String(line.dropFirst(3))))</h2>\n" }
            else if line.hasPrefix("# ") { out += "<h1>\(inline(String(line.dropFirst(2))))</h1>\n" }
            else if !line.isEmpty { out += "<p>\(inline(line))</p>\n" }
        }
        flushTable()
        flushList()
        return out
    }
}

func fmt(_ v: Double) -> String {
    let r = (v * 100).rounded() / 100
    return r == r.rounded() ? String(Int64(r)) : String(r)
}
