import Foundation
import StrataDWM
import StrataDims
import StrataJobs
import StrataSplit
import StrataTestSupport
import Synchronization
import XCTest

/// The dimension store unavailable in the middle of a run: the dwm job waits for it (in the
/// connection pool, or retrying failed lookups: `DimensionCacheConfig.storeWait`) instead of
/// failing or guessing, and the final rows are exactly the independent computation's. Redis
/// points at a closed port, so every lookup (and every content-id confirmation) reaches the store.
/// (SQLite in WAL mode has no such outage for readers: another process's write lock never blocks
/// them. The retry path itself is covered by `DimensionCacheTests` with a failing store.)
extension DWMEndToEndTests {
    /// PostgreSQL stopped (immediate shutdown: connections cut) for a few seconds, then started.
    func testPostgresStoppedMidRunIsWaitedOutAndRowsStayExact() throws {
        let pg = try PostgresServerProcess()
        var env = try makeEnv(seed: 43, redisURL: "redis://127.0.0.1:1", storeAddress: pg.url) { $0.localCapacity = 0 }
        env.lines = generate(events: 6_000, seed: 43)
        // A 10 s poll interval (the dwm default is 60 s): the 14 s wait takes the member out of its
        // group, which it must survive.
        let run = try PhasedRun(self, env: env, dwmKafka: ["consumer.max.poll.interval.ms": "10000"])
        defer { _ = run.finish() }   // a test that throws midway stops the jobs too
        try run.phase(0..<2_000)
        let before = env.cache.stats

        pg.stop()
        let back = Mutex<Date?>(nil)
        let server = UncheckedSendable(pg)
        Thread { Thread.sleep(forTimeInterval: 14); try? server.value.start(); back.withLock { $0 = Date() } }.start()
        try run.phase(2_000..<4_000, timeout: 90)
        // The lookups waited: in the pool for a connection, or retried (StoreWait) after an error.
        let restarted = try XCTUnwrap(back.withLock { $0 }, "the phase completed while PostgreSQL was still down")
        XCTAssertLessThanOrEqual(restarted, Date())
        XCTAssertEqual(env.cache.stats.storeQueries - before.storeQueries > 0, true, "the phase's lookups reached the store")
        try run.phase(4_000..<6_000)
        XCTAssertEqual(run.finish(), [])
        try assertOutageRun(run, env: env, fault: "PostgreSQL stopped 14 s", injected: 1)
    }

    private func assertOutageRun(_ run: PhasedRun, env: Env, fault: String, injected: Int,
                                 file: StaticString = #filePath, line: UInt = #line) throws {
        let accounting = run.dwm.stats.accounting
        XCTAssertTrue(accounting.isBalanced, "\(accounting)", file: file, line: line)
        XCTAssertEqual(accounting.consumed, run.split.stats.routedTotal, "every routed event reached the dwm job", file: file, line: line)
        XCTAssertEqual(run.dwm.stats.rowsWithoutContent, 0, "no row lost its dimensions to the outage", file: file, line: line)
        let failuresBefore = testRun?.totalFailureCount ?? 0
        try assertMatches(env, file: file, line: line)
        FaultReport.record(fault: fault, injected: injected, recordsIn: run.split.stats.routedTotal, recordsOut: accounting.consumed,
                           lost: max(0, run.split.stats.routedTotal - accounting.consumed),
                           duplicated: max(0, accounting.consumed - run.split.stats.routedTotal),
                           exact: (testRun?.totalFailureCount ?? 0) == failuresBefore)
    }
}
