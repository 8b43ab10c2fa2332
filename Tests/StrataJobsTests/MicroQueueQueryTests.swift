import Foundation
import StrataCore
import StrataSplit
import StrataTestSupport
import XCTest

/// `strata query` over the micro-queues, as a user runs it: a union of three `ods.<action>`
/// topics the real split wrote from the reference workload (out-of-order, duplicate and invalid
/// events included), windowed by event time, against a computation from the input lines alone.
final class MicroQueueQueryTests: XCTestCase {
    func testUnionOfMicroQueuesThroughTheSplitMatchesTheInput() throws {
        let sandbox = try PipelineSandbox(seed: 23)
        let (lines, partitionOf) = generateWorkload(events: 6_000, seed: 23, contents: sandbox.contents, users: sandbox.users,
                                                    eventsPerSecond: 40)
        try sandbox.produceRaw(lines[...], partitionOf: partitionOf)
        try SplitJob(options: sandbox.splitOptions(), topology: sandbox.topology).run(shouldStop: { false }, report: { _ in })

        // The truth: each event the split routes (the event contract's required fields, a listed
        // action, a well-formed content id; known to the dimensions or not), once by (event_id, ts),
        // per minute of ts and action.
        let actions = ["expose", "click", "play"]
        var want: [String: (events: Set<String>, users: Set<String>)] = [:]
        var deliveries = 0
        for line in lines {
            guard let o = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any],
                  let id = o["event_id"] as? String, (1...64).contains(id.utf8.count), let ts = o["ts"] as? Int64,
                  let action = o["action"] as? String, actions.contains(action), let user = o["user_id"] as? String,
                  let c = o["content_id"] as? String, c.utf8.count == 9, c.hasPrefix("c"), c.dropFirst().allSatisfy({ ("0"..."9").contains($0) })
            else { continue }
            deliveries += 1
            let key = "\(ts / 60_000 * 60_000)|\(action)"
            want[key, default: ([], [])].events.insert("\(id)|\(ts)")
            want[key]!.users.insert(user)
        }
        XCTAssertGreaterThan(want.count, 10)

        let out = Pipe(), err = Pipe()
        let query = try launchStrata(strataBinary, [
            "query", "--brokers", sandbox.brokers, "--topic-prefix", sandbox.prefix, "--from-beginning", "--until-idle", "4",
            "--grace", "24h", "--format", "ndjson",
            "SELECT action, count(*) AS events, count_distinct(user_id) AS users FROM ods.expose, ods.click, ods.play WINDOW TUMBLING 1 MINUTE GROUP BY action EMIT FINAL",
        ], standardOutput: out, standardError: err)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        query.waitUntilExit()
        XCTAssertEqual(query.terminationStatus, 0, String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))

        var got: [String: [Int]] = [:]
        for line in text.split(separator: "\n") {
            let table = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(table["final"] as? Bool, true)
            let start = try XCTUnwrap(table["window_start"] as? Int)
            for r in try XCTUnwrap(table["rows"] as? [[String: Any]]) {
                got["\(start)|\(r["action"] as? String ?? "?")"] = [r["events"] as? Int ?? -1, r["users"] as? Int ?? -1]
            }
        }
        // Events exactly; distinct users exactly up to count_distinct's exact threshold (1024 per
        // group), within HyperLogLog's error above it.
        XCTAssertEqual(got.mapValues { $0[0] }, want.mapValues { $0.events.count })
        for (key, w) in want {
            let users = got[key]?[1] ?? -1
            if w.users.count <= 1024 { XCTAssertEqual(users, w.users.count, key) }
            else { XCTAssertEqual(Double(users), Double(w.users.count), accuracy: 0.03 * Double(w.users.count), key) }
        }
        // The split forwards duplicates (the dwm job removes them); the query counted each once.
        XCTAssertGreaterThan(deliveries, want.values.reduce(0) { $0 + $1.events.count }, "the workload has duplicate events")
    }
}
