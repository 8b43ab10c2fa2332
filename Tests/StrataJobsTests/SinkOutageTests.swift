import Foundation
import StrataDims
import StrataOffline
import StrataRuntime
import StrataTestSupport
import Synchronization
import XCTest

/// The sink's warehouse tables in PostgreSQL, and PostgreSQL down when the sink has rows to write:
/// the sink waits (`SinkJob.Options.storeWait`), asking again, instead of exiting, and the tables
/// end exactly as the independent computation says.
final class SinkOutageTests: XCTestCase {
    /// Stopped 12 s (immediate shutdown) right before the sink's first write: past the consumer's
    /// 10 s max poll interval, so the sink also leaves its group while it waits, rejoins, and its
    /// uncommitted rows come again.
    func testSinkWaitsOutAPostgresRestartAndTheTablesStayExact() throws {
        let (sandbox, truth) = try publishedPipeline(seed: 73, events: 6_000)

        let pg = try PostgresServerProcess()
        // A short stall bound, so a write lost in the pool at the cut is asked again soon.
        let table = try PostgresDWSTable(url: pg.url, stallTimeout: .seconds(5))
        let dwmTable = try PostgresDWMTable(url: pg.url, stallTimeout: .seconds(5))
        var o = SinkJob.Options(brokers: sandbox.brokers)
        o.topicPrefix = sandbox.prefix
        o.groupId = sandbox.prefix + "sink"
        o.untilIdle = .seconds(3)
        o.maxRows = 500
        let job = try SinkJob(options: o, table: table, dwm: dwmTable)   // creates the tables
        // The test server runs with synchronous_commit=off: without a checkpoint the immediate
        // shutdown could take the new tables with it.
        _ = try pg.psql("CHECKPOINT")

        pg.stop()
        let back = Mutex<Date?>(nil)
        let server = UncheckedSendable(pg)
        let restarter = Thread { Thread.sleep(forTimeInterval: 12); try? server.value.start(); back.withLock { $0 = Date() } }
        restarter.start()
        try job.run(shouldStop: { false }, report: { _ in })

        XCTAssertNotNil(back.withLock { $0 }, "the sink finished while PostgreSQL was still down")
        XCTAssertGreaterThan(job.stats.storeRetries, 0, "the sink's writes waited for PostgreSQL")
        XCTAssertTrue(job.summary.balanced, "\(job.summary)")
        XCTAssertEqual(job.stats.rejected, 0)
        truth.assertDWSTable(try table.allRows())
        truth.assertDWMTable(try dwmTable.allRows())
    }
}
