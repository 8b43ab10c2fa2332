import Foundation
import StrataDims
import StrataTestSupport
import Synchronization
import XCTest

/// PostgreSQL cut off again and again (immediate shutdowns, as in a crash) while several threads
/// look up dimensions: after each restart every thread gets answers again, and right ones. Before
/// the store bounded its calls by `stallTimeout`, a lookup whose pool request was waiting for a
/// connection at the moment of the cut was never answered, even with the server back: with a
/// 120 s bound this test failed in 2 of 3 runs (one or two threads silent 20 s after a restart).
final class PostgresRestartTests: XCTestCase {
    func testLookupsAnswerAgainAfterEveryRestart() throws {
        let server = try PostgresServerProcess()
        let stall = Duration.seconds(3)
        let store = try PostgresDimensionStore(url: server.url, stallTimeout: stall)
        try store.migrate()
        let users = (0..<3_000).map {
            UserDim(userId: String(format: "u%09d", $0), gender: "f", ageBand: "18-24", province: "p\($0 % 31)", cityTier: $0 % 5)
        }
        try store.upsert(users: users)
        // The test server runs with synchronous_commit=off: without a checkpoint the first immediate
        // shutdown could take the rows with it.
        _ = try server.psql("CHECKPOINT")
        let ids = users.map(\.userId)

        let threads = 3
        let stop = Atomic<Bool>(false)
        let lastAnswer = Mutex<[Date]>(Array(repeating: .distantPast, count: threads))
        let wrong = Mutex<[String]>([])
        let timeouts = Atomic<Int>(0)
        let finished = DispatchGroup()
        for t in 0..<threads {
            finished.enter()
            Thread {
                defer { finished.leave() }
                while !stop.load(ordering: .relaxed) {
                    // 1…1 200 ids: up to three chunks, so a lookup takes several pooled connections.
                    let n = Int.random(in: 1...1_200), first = Int.random(in: 0...(ids.count - n))
                    do {
                        var seen = 0
                        try store.users(Array(ids[first..<(first + n)])) { i, u in
                            seen += 1
                            if u != users[first + i] { wrong.withLock { $0.append("\(u.userId) at \(first + i)") } }
                        }
                        if seen != n { wrong.withLock { $0.append("\(seen) of \(n) ids found") } }
                        lastAnswer.withLock { $0[t] = Date() }
                    } catch DimensionStoreError.timeout {
                        timeouts.add(1, ordering: .relaxed)
                    } catch {
                        Thread.sleep(forTimeInterval: 0.05)   // refused while the server is down
                    }
                }
            }.start()
        }
        defer {
            stop.store(true, ordering: .relaxed)
            _ = finished.wait(timeout: .now() + 30)
        }

        for cycle in 0..<5 {
            Thread.sleep(forTimeInterval: Double.random(in: 0...0.5))
            server.stop()
            Thread.sleep(forTimeInterval: Double.random(in: 0.2...2))
            try server.start()
            let back = Date()
            // A lost request is given up after `stall` (checked within 1¼ × stall) and asked again.
            let deadline = back.addingTimeInterval(20)
            while Date() < deadline, lastAnswer.withLock({ $0.contains { $0 < back } }) { Thread.sleep(forTimeInterval: 0.05) }
            let silent = lastAnswer.withLock { a in a.indices.filter { a[$0] < back } }
            XCTAssertEqual(silent, [], "cycle \(cycle): threads without an answer 20 s after the restart")
            if !silent.isEmpty { break }
        }
        XCTAssertEqual(wrong.withLock { $0 }, [], "lookups answered wrong rows")
        print("PostgresRestartTests: \(timeouts.load(ordering: .relaxed)) lookups given up after \(stall) and retried")
    }
}
