import Foundation
import StrataDims
import StrataTestSupport
import XCTest

/// dwm_minute on both backends: a seeded stream of revisions delivered out of order and with
/// replays ends as the highest revision per (minute, content, user), the same on SQLite and
/// PostgreSQL, and equal to a model kept in the test.
final class DWMTableTests: XCTestCase {
    nonisolated(unsafe) private static var server: PostgresServerProcess?

    override func setUpWithError() throws {
        if Self.server == nil { Self.server = try PostgresServerProcess() }
    }

    override class func tearDown() {
        server?.stop()
        server = nil
        super.tearDown()
    }

    /// Batches of revisions: each identity's revisions 1…n, shuffled across batches, some sent twice.
    static func batches(seed: UInt64) -> [[DWMTableRow]] {
        var rng = SeededRandom(seed: seed)
        var all: [DWMTableRow] = []
        let m0: Int64 = 1_795_219_200_000
        for i in 0..<300 {
            let minute = m0 + Int64(i % 5) * 60_000
            let content = "c\(String(format: "%08d", i % 17))", user = "u\(String(format: "%09d", i))"
            let revs = 1 + rng.below(4)
            for rev in 1...revs {
                let r = DWMTableRow(minute: minute, contentId: content, userId: user, expose: Int64(rev * 2), click: Int64(rev),
                                    play: 1, playMs: Int64(rev) * 1_000, like: 0, share: 1, comment: 0, report: 0,
                                    strategy: rev % 2 == 0 ? nil : "s\(rev)", rev: Int64(rev), isFinal: rev == revs, emittedAt: Int64(rev))
                all.append(r)
                if rng.below(5) == 0 { all.append(r) }   // a replayed copy
            }
        }
        for i in stride(from: all.count - 1, to: 0, by: -1) { all.swapAt(i, rng.below(i + 1)) }
        return stride(from: 0, to: all.count, by: 97).map { Array(all[$0..<min($0 + 97, all.count)]) }
    }

    func testSQLiteAndPostgresKeepTheHighestRevisionAlike() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-dwm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try XCTUnwrap(Self.server)
        let name = "dwm_\(UUID().uuidString.prefix(8).lowercased())"
        _ = try server.psql("CREATE DATABASE \(name)")
        let tables: [any DWMTable] = [try DWMTableFactory.open("sqlite:" + dir.appendingPathComponent("dwm.db").path),
                                      try DWMTableFactory.open("postgres://postgres@127.0.0.1:\(server.port)/\(name)")]
        let batches = Self.batches(seed: 11)
        var model: [String: DWMTableRow] = [:]
        for b in batches {
            for r in b {
                let k = "\(r.minute)|\(r.contentId)|\(r.userId)"
                if r.rev > model[k]?.rev ?? 0 { model[k] = r }
            }
        }
        let want = model.values.sorted { ($0.minute, $0.contentId, $0.userId) < ($1.minute, $1.contentId, $1.userId) }
        var changed: [Int] = []
        for table in tables {
            try table.migrate()
            try table.migrate()   // idempotent
            var n = 0
            for b in batches { n += try table.upsert(b) }
            // The whole stream again: nothing is higher than what is stored.
            for b in batches { XCTAssertEqual(try table.upsert(b), 0) }
            changed.append(n)
            XCTAssertEqual(try table.allRows(), want, "\(type(of: table))")
            XCTAssertEqual(try table.allRows(from: want[0].minute + 60_000, to: want[0].minute + 120_000),
                           want.filter { $0.minute == want[0].minute + 60_000 })
        }
        XCTAssertEqual(changed[0], changed[1], "both backends count the same changes")
        XCTAssertTrue(want.contains { $0.strategy == nil } && want.contains { $0.strategy != nil })
    }
}
