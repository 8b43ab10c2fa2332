import Foundation
import StrataCore
import StrataDims
import StrataOffline
import StrataRuntime
import StrataTestSupport
import XCTest

/// The offline layer behind a real split + dwm run: `dws_minute` holds exactly the final DWS rows
/// the input decides (computed here by `PipelineTruth`), a replay of the whole topic changes
/// nothing, `strata olap` answers a grouped question over the table as an independent computation
/// does, and `strata reconcile` over the archive passes, with batch − stream equal to the truth's
/// late events per metric.
final class WarehouseEndToEndTests: XCTestCase {
    func testSinkOLAPAndReconcileAgreeWithTheTruth() throws {
        let (sandbox, truth) = try publishedPipeline(seed: 71, events: 12_000)
        let archive = NSTemporaryDirectory() + "strata-archive-\(sandbox.prefix)"
        defer { try? FileManager.default.removeItem(atPath: archive) }
        var ao = ArchiveJob.Options(brokers: sandbox.brokers, root: archive)
        ao.topicPrefix = sandbox.prefix
        ao.groupId = sandbox.prefix + "archive"
        ao.untilIdle = .seconds(3)
        try ArchiveJob(options: ao).run(shouldStop: { false }, report: { _ in })

        let table = try DWSTableFactory.open("sqlite:" + sandbox.storePath)
        let dwmTable = try DWMTableFactory.open("sqlite:" + sandbox.storePath)
        func sink(group: String) throws -> SinkJob.Stats {
            var o = SinkJob.Options(brokers: sandbox.brokers)
            o.topicPrefix = sandbox.prefix
            o.groupId = sandbox.prefix + group
            o.untilIdle = .seconds(3)
            o.maxRows = 500   // many store transactions
            let job = try SinkJob(options: o, table: table, dwm: dwmTable)
            try job.run(shouldStop: { false }, report: { _ in })
            XCTAssertTrue(job.summary.balanced, "\(job.summary)")
            return job.stats
        }
        let first = try sink(group: "sink")
        XCTAssertGreaterThan(first.changed, 0)
        XCTAssertEqual(first.rejected, 0)

        // The table is the truth: every (minute, content) once, final, with its numbers and uv.
        let stored = try table.allRows()
        truth.assertDWSTable(stored)
        // dwm_minute likewise, per (minute, content, user), the strategy included.
        let storedDWM = try dwmTable.allRows()
        truth.assertDWMTable(storedDWM)

        // A second group replays every revision, early ones included: nothing in the table changes.
        let replay = try sink(group: "sink-replay")
        XCTAssertEqual(replay.stored, first.stored, "the replay handed the table every row again")
        XCTAssertEqual(replay.changed, 0, "an older or equal revision replaced nothing")
        XCTAssertEqual(try table.allRows(), stored)
        XCTAssertEqual(try dwmTable.allRows(), storedDWM)

        // strata olap, as a user runs it: clicks per category over the whole range, against the
        // truth joined with the categories in the dimension store.
        let minutes = stored.map(\.minute)
        let from = try XCTUnwrap(minutes.min()), to = try XCTUnwrap(minutes.max()) + 60_000
        let out = Pipe()
        let olap = try launchStrata(strataBinary, ["olap", "--store", "sqlite:" + sandbox.storePath, "--from", "\(from)", "--to", "\(to)",
                                                   "--format", "ndjson",
                                                   "SELECT content.category AS category, sum(click) AS clicks, count(*) AS row_count FROM dws.content GROUP BY content.category"],
                                    standardOutput: out)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        olap.waitUntilExit()
        XCTAssertEqual(olap.terminationStatus, 0, text)
        let tables = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let rows = try XCTUnwrap(tables.last?["rows"] as? [[String: Any]], text)
        var got: [String: Int] = [:]
        for r in rows { got[r["category"] as? String ?? "?"] = (r["clicks"] as? Int) ?? -1 }
        let contents = try sandbox.store.contents(Array(Set(truth.dws.keys.map { String($0.split(separator: "|")[1]) })))
        var want: [String: Int] = [:]
        for (id, m) in truth.dws {
            let category = contents[String(id.split(separator: "|")[1])]?.category ?? "?"
            want[category, default: 0] += Int(m["click", default: 0])
        }
        XCTAssertEqual(got, want)

        // And over dwm_minute: plays per user province (a question only the DWM rows answer).
        let dwmOut = Pipe()
        let olapDWM = try launchStrata(strataBinary, ["olap", "--store", "sqlite:" + sandbox.storePath, "--from", "\(from)", "--to", "\(to)",
                                                      "--format", "ndjson",
                                                      "SELECT user.province AS province, sum(play) AS plays FROM dwm.content_user GROUP BY user.province"],
                                       standardOutput: dwmOut)
        let dwmText = String(decoding: dwmOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        olapDWM.waitUntilExit()
        XCTAssertEqual(olapDWM.terminationStatus, 0, dwmText)
        let dwmTables = dwmText.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        var gotPlays: [String: Int] = [:]
        for r in try XCTUnwrap(dwmTables.last?["rows"] as? [[String: Any]], dwmText) {
            gotPlays[r["province"] as? String ?? "?"] = (r["plays"] as? Int) ?? -1
        }
        let users = try sandbox.store.users(Array(Set(truth.dwm.keys.map { String($0.split(separator: "|")[2]) })))
        var wantPlays: [String: Int] = [:]
        for (cell, m) in truth.dwm {
            wantPlays[users[String(cell.split(separator: "|")[2])]?.province ?? "?", default: 0] += Int(m["play", default: 0])
        }
        XCTAssertEqual(gotPlays, wantPlays)

        // strata reconcile for each archived day: passes, and what the stream lacks per metric is
        // exactly the truth's late events (all of them read back from ods.late).
        var lateByMetric: [String: Int64] = [:]
        for (line, n) in truth.late {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let action = o["action"] as? String else { continue }
            lateByMetric[action, default: 0] += Int64(n)
            if action == "play" { lateByMetric["play_ms", default: 0] += Int64(n) * ((o["duration_ms"] as? Int64) ?? 0) }
        }
        var differences: [String: Int64] = [:]
        var lateRead = 0
        let days = try FileManager.default.contentsOfDirectory(atPath: archive).filter { $0.hasPrefix("dt=") }
        XCTAssertFalse(days.isEmpty)
        for day in days {
            let report = Pipe()
            let reconcile = try launchStrata(strataBinary, ["reconcile", "--date", String(day.dropFirst(3)), "--archive", archive,
                                                            "--store", "sqlite:" + sandbox.storePath, "--brokers", sandbox.brokers,
                                                            "--topic-prefix", sandbox.prefix, "--topology", PipelineSandbox.topologyPath,
                                                            "--format", "json"], standardOutput: report)
            let data = report.fileHandleForReading.readDataToEndOfFile()
            reconcile.waitUntilExit()
            XCTAssertEqual(reconcile.terminationStatus, 0, String(decoding: data, as: UTF8.self).prefix(2_000).description)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            XCTAssertEqual(json["verdict"] as? String, "ok")
            let totals = try XCTUnwrap((json["totals"] as? [String: Any])?["metrics"] as? [[String: Any]])
            for m in totals {
                guard let name = m["metric"] as? String, name != "uv" else { continue }
                differences[name, default: 0] += Int64(m["difference"] as? Int ?? 0)
            }
            lateRead += (json["input"] as? [String: Any])?["late_of_day"] as? Int ?? 0
        }
        XCTAssertEqual(lateRead, truth.lateCount, "every late event of the truth was read from ods.late")
        for metric in ["expose", "click", "play", "play_ms", "like", "share", "comment", "report"] {
            XCTAssertEqual(differences[metric, default: 0], lateByMetric[metric, default: 0], "batch − stream for \(metric)")
        }
    }
}
