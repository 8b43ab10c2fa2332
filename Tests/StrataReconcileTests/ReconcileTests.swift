import Foundation
import StrataArchive
import StrataCore
import StrataDims
import StrataKafka
import StrataReconcile
import StrataTestSupport
import XCTest

/// A generated day: archive files, a dimension store, and dws_minute rows computed in the test from
/// the same events (without the ones withheld as too late), by plain dictionaries and sets.
final class GeneratedDay {
    struct Event {
        var id: String
        var ts: Int64
        var action: String
        var content: String
        var user: String
        var duration: Int64?
        /// Written with a JSON escape in content_id (the decoded id is `content`).
        var escaped = false

        var json: String {
            let cid = escaped ? "c\\u0030" + content.dropFirst(2) : content
            let dur = duration.map { ",\"duration_ms\":\($0)" } ?? ""
            return #"{"event_id":"\#(id)","ts":\#(ts),"action":"\#(action)","content_id":"\#(cid)","user_id":"\#(user)","strategy":"s1","device":{"os":"android"}\#(dur)}"#
        }
    }

    struct Cell: Hashable { let minute: Int64; let content: String; let user: String }
    struct RowKey: Hashable { let minute: Int64; let content: String }

    let dir: URL
    let root: String
    let storeAddress: String
    let day = ArchiveDay("2026-12-01")!
    let categories = ["game", "news", "music", "food"]
    var contents: [ContentDim] = []
    /// Every event line of the archive that is a valid event of a known content, in archive order.
    var events: [Event] = []
    /// Indexes into `events` of the distinct events withheld from the stream as too late.
    var late: [Int] = []
    /// Late copies of events that were also counted in time (a duplicate that arrived late).
    var lateDuplicateOfCounted: [Event] = []
    var deadLettered = 0
    var filteredInvalidId = 0
    var filteredUnknown = 0
    var outsideDay = 0
    var lateFile: String { dir.appendingPathComponent("late.ndjson").path }

    /// `store`: a store address (default: a fresh SQLite file in the day's directory).
    init(events count: Int = 30_000, seed: UInt64 = 42, store: String? = nil) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-reconcile-\(UUID().uuidString)")
        root = dir.appendingPathComponent("ods").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        storeAddress = store ?? "sqlite:" + dir.appendingPathComponent("strata.db").path
        var rng = SeededRandom(seed: seed)

        for i in 1...300 {
            contents.append(ContentDim(contentId: String(format: "c%08d", i), title: "t\(i)", category: categories[i % 4],
                                       authorId: "a1", region: "Guangdong", status: "published", publishTs: 0))
        }
        let store = try DimensionStoreFactory.open(storeAddress)
        try store.migrate()
        try store.upsert(contents: contents)

        let actions = ["expose", "expose", "expose", "click", "play", "like", "share", "comment", "report"]
        var lines: [(String, Int64)] = [] // (value, arrival ms)
        for i in 0..<count {
            let ts = day.startMs + Int64(rng.below(86_400_000))
            let action = actions[rng.below(actions.count)]
            var ev = Event(id: "e\(i)", ts: ts, action: action, content: String(format: "c%08d", rng.below(300) + 1),
                           user: String(format: "u%09d", rng.below(2_000)), duration: action == "play" ? Int64(rng.below(60_000)) : nil)
            // Follow-ups: the same user on the same content moments later (cells with several events,
            // so a late event is not always its cell's only one).
            if let last = events.last, rng.below(4) == 0, last.ts % 60_000 < 50_000 {
                ev.content = last.content
                ev.user = last.user
                ev.ts = last.ts + Int64(rng.below(10_000))
                if ev.action == "play" { ev.duration = Int64(rng.below(60_000)) }
            }
            if i % 997 == 0 { ev.escaped = true }
            if action == "play" && i % 50 == 0 { ev.duration = nil }
            events.append(ev)
            lines.append((ev.json, ts + 1_000))
            // Duplicates: the same bytes again, shortly after.
            if rng.below(100) < 3 { events.append(ev); lines.append((ev.json, ts + 5_000)) }
            switch rng.below(400) {
            case 0: lines.append((#"{"event_id":"x\#(i)","ts":\#(ts),"action":"click","content_id":"ad:77","user_id":"u1"}"#, ts)); filteredInvalidId += 1
            case 1: lines.append((#"{"event_id":"x\#(i)","ts":\#(ts),"action":"click","content_id":"c9\#(String(format: "%07d", i % 9_999_999))","user_id":"u1"}"#, ts)); filteredUnknown += 1
            case 2: lines.append((#"{"event_id":"x\#(i)","ts":\#(ts),"action":"click","content_id":"c00000001","user_id":"u1""#, ts)); deadLettered += 1
            case 3: lines.append((#"{"event_id":"x\#(i)","ts":\#(ts),"action":"dance","content_id":"c00000001","user_id":"u1"}"#, ts)); deadLettered += 1
            case 4: lines.append((#"{"event_id":"x\#(i)","action":"click","content_id":"c00000001","user_id":"u1"}"#, ts)); deadLettered += 1 // no ts: invalid folder
            case 5: lines.append((#"{"event_id":"x\#(i)","ts":\#(ts),"action":"click","content_id":"c00000001","user_id":""}"#, ts)); deadLettered += 1
            case 6: lines.append((#"{"event_id":"x\#(i)","ts":\#(ts).5,"action":"click","content_id":"c00000001","user_id":"u1"}"#, ts)); deadLettered += 1
            default: break
            }
        }
        // A pretty-printed event (valid JSON with newlines): the invalid folder, newlines as CRs.
        let pretty = Event(id: "pretty", ts: day.startMs + 3_600_000 * 5 + 1, action: "like", content: "c00000007", user: "u000000001")
        events.append(pretty)
        lines.append((pretty.json.replacingOccurrences(of: ",\"action\"", with: ",\n\"action\""), pretty.ts))
        // A raw newline inside a string: malformed (the split dead-letters it); in the invalid
        // folder with the newline as a CR it must stay malformed, never become an event.
        lines.append((#"{"event_id":"nl-in-string","ts":\#(day.startMs + 60_000),"action":"click","content_id":"c00000001","user_id":"u1","note":"a"# + "\n" + #"b"}"#, day.startMs + 60_000))
        deadLettered += 1
        // Misfiled: an event of the next day in this day's folder is not this day's.
        outsideDay = 1

        // Late: distinct events (no duplicate copy) withheld from the stream.
        var lateIds = Set<String>()
        var copies: [String: Int] = [:]
        for e in events { copies[e.id, default: 0] += 1 }
        for (i, e) in events.enumerated() where copies[e.id] == 1 && rng.below(300) == 0 && lateIds.insert(e.id).inserted { late.append(i) }
        // A duplicate whose second copy was late (the first counted in time): explains nothing.
        if let dup = events.first(where: { copies[$0.id] == 2 }) { lateDuplicateOfCounted.append(dup) }
        var lateLines = late.map { events[$0].json } + lateDuplicateOfCounted.map(\.json)
        // A late event of another day is not this day's business.
        lateLines.append(Event(id: "other-day", ts: day.startMs - 10, action: "click", content: "c00000001", user: "u1").json)
        try (lateLines.joined(separator: "\n") + "\n").write(toFile: lateFile, atomically: true, encoding: .utf8)

        try writeArchive(lines, misfiled: Event(id: "next-day", ts: day.endMs + 5, action: "click", content: "c00000002", user: "u2").json)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    /// Files per (folder, partition), as the archive job would write them (in-progress, then renamed).
    private func writeArchive(_ lines: [(String, Int64)], misfiled: String) throws {
        var groups: [String: [String]] = [:]
        var offsets: [Int32: Int64] = [0: 0, 1: 0]
        var firstOffset: [String: (Int32, Int64)] = [:]
        for (i, (value, arrival)) in lines.enumerated() {
            let partition = Int32(i % 2)
            var v = value
            let placement = v.withUTF8 { ArchiveLayout.placement(value: UnsafeRawBufferPointer($0), arrivalMs: arrival) }
            let hour: Int?
            switch placement {
            case .hour(let d, let h): XCTAssertEqual(d, day); hour = h
            case .invalid: hour = nil
            }
            let key = "\(hour ?? -1)/\(partition)"
            if firstOffset[key] == nil { firstOffset[key] = (partition, offsets[partition]!) }
            groups[key, default: []].append(value)
            offsets[partition]! += 1
        }
        groups["3/0", default: []].append(misfiled)
        for (key, values) in groups {
            let hour = Int(key.split(separator: "/")[0])!
            let (partition, first) = firstOffset[key] ?? (0, 0)
            let path = ArchiveLayout.path(root: root, day: day, hour: hour < 0 ? nil : hour, partition: partition, firstOffset: first)
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let busy = ArchiveLayout.inProgressPath(for: path)
            let w = try ZstdFileWriter(path: busy, level: 1)
            for (n, value) in values.enumerated() {
                var v = value
                try v.withUTF8 { raw in
                    let bytes = UnsafeRawBufferPointer(raw)
                    let escape = bytes.contains(0x0A)
                    try w.writeArchiveLine(bytes, replacingNewlines: escape)
                }
                if n % 1_000 == 999 { try w.finish() }
            }
            try w.sync()
            try w.close()
            XCTAssertEqual(rename(busy, path), 0)
        }
    }

    // MARK: The in-test computation

    struct Expected {
        var rows: [RowKey: [String: Int64]] = [:]
        var cells: [RowKey: Set<String>] = [:]
    }

    /// DWS rows from events, skipping the indexes in `skip`: dictionaries and sets, nothing shared
    /// with the code under test.
    func compute(skipping skip: Set<Int>) -> [RowKey: [String: Int64]] {
        var seen = Set<String>()
        var rows: [RowKey: [String: Int64]] = [:]
        var users: [RowKey: Set<String>] = [:]
        for (i, e) in events.enumerated() where !skip.contains(i) {
            let minute = e.ts - e.ts % 60_000
            guard seen.insert("\(minute)|\(e.content)|\(e.user)|\(e.id)").inserted else { continue }
            let k = RowKey(minute: minute, content: e.content)
            rows[k, default: [:]][e.action, default: 0] += 1
            if e.action == "play" { rows[k, default: [:]]["play_ms", default: 0] += e.duration ?? 0 }
            users[k, default: []].insert(e.user)
        }
        for (k, u) in users { rows[k]!["uv"] = Int64(u.count) }
        return rows
    }

    /// The stream's rows: every event except the late ones, final, rev = 2 × events + 1.
    func writeStreamRows() throws -> [DWSTableRow] {
        let rows = compute(skipping: Set(late)).map { k, m -> DWSTableRow in
            let n = ["expose", "click", "play", "like", "share", "comment", "report"].reduce(Int64(0)) { $0 + (m[$1] ?? 0) }
            return DWSTableRow(minute: k.minute, contentId: k.content, expose: m["expose"] ?? 0, click: m["click"] ?? 0,
                               play: m["play"] ?? 0, playMs: m["play_ms"] ?? 0, like: m["like"] ?? 0, share: m["share"] ?? 0,
                               comment: m["comment"] ?? 0, report: m["report"] ?? 0, uv: m["uv"] ?? 0, rev: 2 * n + 1,
                               isFinal: true, emittedAt: k.minute + 70_000)
        }
        let table = try DWSTableFactory.open(storeAddress)
        try table.migrate()
        try table.upsert(rows)
        return rows
    }

    var lateRecords: [[UInt8]] {
        (try? String(contentsOfFile: lateFile, encoding: .utf8))?.split(separator: "\n").map { Array($0.utf8) } ?? []
    }
}

final class ReconcileTests: XCTestCase {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let topologyPath = ReconcileTests.packageRoot.appendingPathComponent("topology/topology.yaml").path

    private func reconcile(_ g: GeneratedDay, late: [[UInt8]]? = nil) throws -> ReconcileReport {
        let topology = try Topology.load(path: topologyPath)
        let store = try DimensionStoreFactory.open(g.storeAddress)
        let scan = try DayScan(day: g.day, archiveRoot: g.root, actions: topology.actions, contentIdPattern: topology.contentIdPattern,
                               store: store, lateRecords: late ?? g.lateRecords)
        return try Reconciliation.run(scan: scan, table: try DWSTableFactory.open(g.storeAddress), store: store, prices: [],
                                      options: ReconcileOptions(), lateSource: "test", deadLetterTopic: nil, allActionsHaveColumns: true)
    }

    private func runStrata(_ args: [String]) throws -> (Int32, String, String) {
        let out = Pipe(), err = Pipe()
        let p = try launchStrata(strataBinary(packageRoot: Self.packageRoot), args, standardOutput: out, standardError: err)
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    private func baseArgs(_ g: GeneratedDay) -> [String] {
        ["--date", g.day.description, "--archive", g.root, "--store", g.storeAddress, "--topology", topologyPath, "--no-broker",
         "--late-file", g.lateFile]
    }

    func testLateEventsExplainExactlyTheDifference() throws {
        let g = try GeneratedDay()
        _ = try g.writeStreamRows()
        let report = try reconcile(g)
        XCTAssertEqual(report.verdict, "ok", "\(report.findings.prefix(5))")
        XCTAssertEqual(report.exitCode, 0)
        XCTAssertGreaterThan(g.late.count, 20)
        var cellEvents: [String: Set<String>] = [:]
        for e in g.events { cellEvents["\(e.ts - e.ts % 60_000)|\(e.content)|\(e.user)", default: []].insert(e.id) }
        let sharing = g.late.filter { i in
            let e = g.events[i]
            return (cellEvents["\(e.ts - e.ts % 60_000)|\(e.content)|\(e.user)"]?.count ?? 0) > 1
        }
        XCTAssertGreaterThan(sharing.count, 3, "late events that are not their cell's only event (uv stays)")
        XCTAssertLessThan(sharing.count, g.late.count, "and late events that are (uv drops)")

        // batch − stream per metric == what the withheld events contribute, computed here.
        let all = g.compute(skipping: [])
        let stream = g.compute(skipping: Set(g.late))
        for m in report.totals.metrics {
            let a = all.values.reduce(Int64(0)) { $0 + ($1[m.metric] ?? 0) }
            let s = stream.values.reduce(Int64(0)) { $0 + ($1[m.metric] ?? 0) }
            XCTAssertEqual(m.batch, a, m.metric)
            XCTAssertEqual(m.stream, s, m.metric)
            XCTAssertEqual(m.difference, a - s, m.metric)
            XCTAssertEqual(m.late, a - s, m.metric)
            XCTAssertEqual(m.unexplained, 0, m.metric)
        }
        let lateEvents = report.totals.metrics.filter { ["expose", "click", "play", "like", "share", "comment", "report"].contains($0.metric) }
            .reduce(Int64(0)) { $0 + $1.difference }
        XCTAssertEqual(lateEvents, Int64(g.late.count), "stream < batch by exactly the late events")
        XCTAssertEqual(report.input.lateExplaining, g.late.count)
        XCTAssertEqual(report.input.lateDuplicatesOfCounted, g.lateDuplicateOfCounted.count)
        XCTAssertEqual(report.input.lateOfDay, g.late.count + g.lateDuplicateOfCounted.count)
        XCTAssertEqual(report.input.filtered["invalid_content_id"], g.filteredInvalidId)
        XCTAssertEqual(report.input.filtered["unknown_content_id"], g.filteredUnknown)
        XCTAssertEqual(report.input.deadLettered.values.reduce(0, +), g.deadLettered)
        XCTAssertEqual(report.input.outsideDay, g.outsideDay)
        XCTAssertEqual(report.input.eventsFromInvalidFolder, 1, "the pretty-printed event")
        XCTAssertEqual(report.input.events, Set(g.events.map(\.id)).count)
        XCTAssertEqual(report.input.duplicates, g.events.count - Set(g.events.map(\.id)).count)
        XCTAssertTrue(report.findings.isEmpty)
        XCTAssertEqual(report.categories.count, 4)
        XCTAssertEqual(report.hours.count, 24)

        // Without the late events the same differences are unexplained.
        let blind = try reconcile(g, late: [])
        XCTAssertEqual(blind.exitCode, 1)
        XCTAssertTrue(blind.findings.contains { $0.level == "total" })

        // The command: exit 0, every format.
        let json = g.dir.appendingPathComponent("r.json").path
        let (code, _, err) = try runStrata(["reconcile"] + baseArgs(g) + ["--format", "json", "--out", json])
        XCTAssertEqual(code, 0, err)
        let parsed = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
        XCTAssertEqual(parsed?["verdict"] as? String, "ok")
        let (htmlCode, html, _) = try runStrata(["reconcile"] + baseArgs(g) + ["--format", "html"])
        XCTAssertEqual(htmlCode, 0)
        XCTAssertTrue(html.contains("<svg"), "inline chart")
        XCTAssertTrue(html.hasSuffix("</html>\n"))
        XCTAssertFalse(html.contains("<script src"), "self-contained")
        let (mdCode, md, _) = try runStrata(["reconcile"] + baseArgs(g))
        XCTAssertEqual(mdCode, 0)
        XCTAssertTrue(md.contains("Verdict: OK"), md)
    }

    func testCorruptionIsFoundAndNamed() throws {
        let g = try GeneratedDay(events: 12_000, seed: 7)
        let rows = try g.writeStreamRows().sorted { ($0.minute, $0.contentId) < ($1.minute, $1.contentId) }
        let path = String(g.storeAddress.dropFirst("sqlite:".count))
        func sql(_ s: String) throws { _ = try Shell.run("/usr/bin/sqlite3", [path, s]) }
        let busy = rows.filter { $0.expose >= 1 && $0.click >= 0 }
        let deleted = busy[10], doubled = busy[200], stale = busy.first { $0.expose + $0.click + $0.play + $0.like + $0.share + $0.comment + $0.report >= 2 && $0.minute > busy[200].minute }!
        try sql("DELETE FROM dws_minute WHERE minute = \(deleted.minute) AND content_id = '\(deleted.contentId)'")
        try sql("UPDATE dws_minute SET expose = expose * 2 WHERE minute = \(doubled.minute) AND content_id = '\(doubled.contentId)'")
        // An older revision kept: one event fewer and its (lower) rev.
        let column = stale.expose > 0 ? "expose" : stale.click > 0 ? "click" : stale.play > 0 ? "play" : stale.like > 0 ? "\"like\"" : stale.share > 0 ? "share" : stale.comment > 0 ? "comment" : "report"
        try sql("UPDATE dws_minute SET \(column) = \(column) - 1, rev = rev - 2 WHERE minute = \(stale.minute) AND content_id = '\(stale.contentId)'")

        let report = try reconcile(g)
        XCTAssertEqual(report.exitCode, 1)
        let rowFindings = report.findings.filter { $0.level == "row" }
        for r in [deleted, doubled, stale] {
            XCTAssertTrue(rowFindings.contains { $0.contentId == r.contentId && $0.minute == r.minute }, "row \(r) not named")
        }
        XCTAssertTrue(rowFindings.contains { $0.contentId == doubled.contentId && $0.metric == "expose" && $0.stream == 2 * $0.batch })
        XCTAssertEqual(Set(rowFindings.map { "\($0.minute!) \($0.contentId!)" }).count, 3, "only the corrupted rows")

        let (code, md, err) = try runStrata(["reconcile"] + baseArgs(g))
        XCTAssertEqual(code, 1, err)
        for r in [deleted, doubled, stale] {
            XCTAssertTrue(md.contains(r.contentId), "report does not name \(r.contentId)")
            XCTAssertTrue(md.contains(isoMinute(r.minute)), "report does not name minute \(isoMinute(r.minute))")
        }
        XCTAssertTrue(md.contains("Verdict: DIFFERENCES"))
    }

    func testRevisionThatDoesNotMatchItsCountsIsReported() throws {
        let g = try GeneratedDay(events: 3_000, seed: 9)
        let rows = try g.writeStreamRows()
        let path = String(g.storeAddress.dropFirst("sqlite:".count))
        let victim = rows[0]
        _ = try Shell.run("/usr/bin/sqlite3", [path, "UPDATE dws_minute SET rev = rev + 4 WHERE minute = \(victim.minute) AND content_id = '\(victim.contentId)'"])
        let report = try reconcile(g)
        XCTAssertEqual(report.exitCode, 1)
        XCTAssertEqual(report.revisionProblems.map(\.contentId), [victim.contentId])
        XCTAssertTrue(report.findings.isEmpty, "the numbers themselves agree")
    }

    func testSettlementAgainstIndependentComputation() throws {
        let g = try GeneratedDay(events: 10_000, seed: 3)
        _ = try g.writeStreamRows()
        let topology = try Topology.load(path: topologyPath)
        let store = try DimensionStoreFactory.open(g.storeAddress)
        let scan = try DayScan(day: g.day, archiveRoot: g.root, actions: topology.actions, contentIdPattern: topology.contentIdPattern,
                               store: store, lateRecords: g.lateRecords)
        let prices = [CategoryPrice(category: "game", pricePerClickMicro: 50_000, pricePerMilleMicro: 2_000_000),
                      CategoryPrice(category: "*", pricePerClickMicro: 10_000, pricePerMilleMicro: 500_000)]
        let rows = try Settlement.rows(scan: scan, table: try DWSTableFactory.open(g.storeAddress), prices: prices)

        // Independent: distinct event ids per cell, then per content.
        var seen = Set<String>()
        var clicks: [String: Int64] = [:], exposures: [String: Int64] = [:], clickers: [String: Set<String>] = [:]
        for e in g.events where seen.insert("\(e.ts - e.ts % 60_000)|\(e.content)|\(e.user)|\(e.id)").inserted {
            if e.action == "click" { clicks[e.content, default: 0] += 1; clickers[e.content, default: []].insert(e.user) }
            if e.action == "expose" { exposures[e.content, default: 0] += 1 }
        }
        let categoryOf = Dictionary(uniqueKeysWithValues: g.contents.map { ($0.contentId, $0.category) })
        XCTAssertEqual(Set(rows.map(\.contentId)), Set(clicks.keys).union(exposures.keys).union(Set(g.events.map(\.content))))
        for r in rows {
            XCTAssertEqual(r.clicks, clicks[r.contentId] ?? 0, r.contentId)
            XCTAssertEqual(r.exposures, exposures[r.contentId] ?? 0, r.contentId)
            XCTAssertEqual(r.distinctClickers, clickers[r.contentId]?.count ?? 0, r.contentId)
            let (ppc, ppm): (Int64, Int64) = categoryOf[r.contentId] == "game" ? (50_000, 2_000_000) : (10_000, 500_000)
            XCTAssertEqual(r.feeMicro, r.clicks * ppc + (r.exposures * ppm + 500) / 1000, r.contentId)
            XCTAssertEqual(r.clicks - r.streamClicks, r.lateClicks, r.contentId)
        }
        XCTAssertGreaterThan(rows.reduce(0) { $0 + $1.distinctClickers }, 100)

        // The command: load prices, then CSV.
        let pricesFile = g.dir.appendingPathComponent("pricing.csv").path
        try "category,price_per_click,price_per_mille\ngame,0.05,2\n*,0.01,0.5\n".write(toFile: pricesFile, atomically: true, encoding: .utf8)
        let (loadCode, _, loadErr) = try runStrata(["settle", "--load-pricing", pricesFile, "--store", g.storeAddress])
        XCTAssertEqual(loadCode, 0, loadErr)
        let (code, csv, err) = try runStrata(["settle"] + baseArgs(g))
        XCTAssertEqual(code, 0, err)
        let lines = csv.split(separator: "\n")
        XCTAssertEqual(lines.first?.hasPrefix("date,content_id,category,distinct_clickers,clicks,exposures,ctr"), true)
        XCTAssertEqual(lines.count, rows.count + 1)
        let c1 = lines.first { $0.contains(",c00000001,") }.map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        XCTAssertEqual(c1.flatMap { Int64($0[4]) }, clicks["c00000001"])
        XCTAssertEqual(c1.flatMap { Int($0[3]) }, clickers["c00000001"]?.count)
    }

    func testBadInputExitsTwoWithAClearMessage() throws {
        let g = try GeneratedDay(events: 500, seed: 1)
        _ = try g.writeStreamRows()
        var args = baseArgs(g)
        args[1] = "2026-13-01"
        var (code, _, err) = try runStrata(["reconcile"] + args)
        XCTAssertEqual(code, 2)
        XCTAssertTrue(err.contains("not a date"), err)

        args[1] = "2026-11-30"
        (code, _, err) = try runStrata(["reconcile"] + args)
        XCTAssertEqual(code, 2)
        XCTAssertTrue(err.contains("no archive for 2026-11-30"), err)

        (code, _, err) = try runStrata(["reconcile"] + baseArgs(g) + ["--tolerance", "lots"])
        XCTAssertEqual(code, 2)
        XCTAssertTrue(err.contains("--tolerance 'lots'"), err)

        (code, _, err) = try runStrata(["reconcile"] + baseArgs(g) + ["--format", "pdf"])
        XCTAssertEqual(code, 2)
        XCTAssertTrue(err.contains("md, html or json"), err)

        (code, _, err) = try runStrata(["reconcile", "--date", g.day.description, "--archive", g.root, "--store", g.storeAddress,
                                        "--topology", topologyPath, "--no-broker", "--late-file", "/nonexistent/late.ndjson"])
        XCTAssertEqual(code, 2)
        XCTAssertTrue(err.contains("/nonexistent/late.ndjson"), err)

        // A truncated archive file: named, exit 2.
        let file = try XCTUnwrap(ArchiveLayout.listDay(root: g.root, day: g.day).first)
        let data = try Data(contentsOf: URL(fileURLWithPath: file.path))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: file.path))
        (code, _, err) = try runStrata(["reconcile"] + baseArgs(g))
        XCTAssertEqual(code, 2)
        XCTAssertTrue(err.contains("truncated") && err.contains(file.path), err)
    }

    private func isoMinute(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}

/// Runs a command line tool to completion (sqlite3 for the corruption tests).
enum Shell {
    @discardableResult
    static func run(_ exe: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else { throw NSError(domain: "shell", code: Int(p.terminationStatus), userInfo: [NSLocalizedDescriptionKey: text]) }
        return text
    }
}

/// Late events and dead letters read from the test broker's ods.late / ods.dlq (prefixed topics).
final class ReconcileBrokerTests: XCTestCase {
    func testLateEventsFromTheTopic() throws {
        let brokers = try TestEnvironment.brokers
        let prefix = "reconcile-\(UUID().uuidString.prefix(8).lowercased())."
        let admin = try KafkaAdmin(config: KafkaConfig(["bootstrap.servers": brokers]))
        let created = try admin.createTopics([NewTopic(name: prefix + Topology.late, partitions: 2),
                                              NewTopic(name: prefix + Topology.deadLetter, partitions: 2)])
        for (topic, error) in created { if let error { XCTFail("create \(topic): \(error)") } }

        let g = try GeneratedDay(events: 6_000, seed: 21)
        _ = try g.writeStreamRows()
        let producer = try KafkaProducer(config: .producer(bootstrapServers: brokers))
        for record in g.lateRecords { try producer.produce(topic: prefix + Topology.late, key: nil, value: record) }
        try producer.produce(topic: prefix + Topology.deadLetter, key: nil, value: Array("{oops".utf8),
                             headers: [("reason", Array("malformed_json".utf8))])
        try producer.flush()

        let out = g.dir.appendingPathComponent("broker.json").path
        let args = ["reconcile", "--date", g.day.description, "--archive", g.root, "--store", g.storeAddress,
                    "--topology", ReconcileTests.packageRoot.appendingPathComponent("topology/topology.yaml").path,
                    "--brokers", brokers, "--topic-prefix", prefix, "--topic-idle", "1s", "--format", "json", "--out", out]
        let err = Pipe()
        let p = try launchStrata(strataBinary(packageRoot: ReconcileTests.packageRoot), args, standardError: err)
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, errText)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [String: Any])
        XCTAssertEqual(report["verdict"] as? String, "ok")
        let input = try XCTUnwrap(report["input"] as? [String: Any])
        XCTAssertEqual(input["late_explaining"] as? Int, g.late.count)
        XCTAssertEqual(input["late_read"] as? Int, g.lateRecords.count)
        // The dead letter was produced today; it counts when today is the reconciled day only.
        let dlq = report["dead_letter_topic"] as? [String: Int]
        XCTAssertNotNil(dlq)
        let today = ArchiveDay(epochMs: Int64(Date().timeIntervalSince1970 * 1000))
        XCTAssertEqual(dlq?["malformed_json"], today == g.day ? 1 : nil)
    }
}

/// The same checks with the dimension store and dws_minute in a real PostgreSQL cluster.
final class ReconcilePostgresTests: XCTestCase {
    nonisolated(unsafe) private static var server: PostgresServerProcess?

    override func setUpWithError() throws {
        if Self.server == nil { Self.server = try PostgresServerProcess() }
    }

    override class func tearDown() {
        server?.stop()
        server = nil
        super.tearDown()
    }

    func testLateEventsAndCorruptionOnPostgres() throws {
        let server = try XCTUnwrap(Self.server)
        let name = "rec_\(UUID().uuidString.prefix(8).lowercased())"
        _ = try server.psql("CREATE DATABASE \(name)")
        let address = "postgres://postgres@127.0.0.1:\(server.port)/\(name)"
        let g = try GeneratedDay(events: 8_000, seed: 17, store: address)
        let rows = try g.writeStreamRows().sorted { ($0.minute, $0.contentId) < ($1.minute, $1.contentId) }
        let args = ["reconcile", "--date", g.day.description, "--archive", g.root, "--store", address,
                    "--topology", ReconcileTests.packageRoot.appendingPathComponent("topology/topology.yaml").path,
                    "--no-broker", "--late-file", g.lateFile, "--format", "json"]
        func run() throws -> (Int32, [String: Any]) {
            let out = Pipe(), err = Pipe()
            let p = try launchStrata(strataBinary(packageRoot: ReconcileTests.packageRoot), args, standardOutput: out, standardError: err)
            let data = out.fileHandleForReading.readDataToEndOfFile()
            let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            let report = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], errText)
            return (p.terminationStatus, report)
        }
        let (code, report) = try run()
        XCTAssertEqual(code, 0)
        XCTAssertEqual((report["input"] as? [String: Any])?["late_explaining"] as? Int, g.late.count)
        XCTAssertEqual(report["stream_rows"] as? Int, rows.count)

        let victim = rows[rows.count / 2]
        _ = try server.psql("UPDATE dws_minute SET click = click + 3 WHERE minute = \(victim.minute) AND content_id = '\(victim.contentId)'", database: name)
        let (badCode, bad) = try run()
        XCTAssertEqual(badCode, 1)
        let findings = (bad["findings"] as? [[String: Any]]) ?? []
        XCTAssertTrue(findings.contains { $0["level"] as? String == "row" && $0["content_id"] as? String == victim.contentId
            && ($0["minute"] as? NSNumber)?.int64Value == victim.minute && $0["metric"] as? String == "click" }, "\(findings.prefix(3))")
    }
}
