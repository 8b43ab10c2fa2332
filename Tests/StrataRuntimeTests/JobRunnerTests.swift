import Foundation
import StrataRuntime
import Synchronization
import XCTest

/// The runner both `strata job <name>` and `strata run` use: its exit status, its stop path and
/// the summary shape they print.
final class JobRunnerTests: XCTestCase {
    /// A job that counts `consumed` records into `outcomes`, optionally losing some or failing.
    final class CountingJob: StreamJob {
        let name: String
        let records: Int
        let lose: Int
        let failAfter: Duration?
        private(set) var stoppedByRequest = false
        private var s: JobSummary

        init(name: String, records: Int, lose: Int = 0, failAfter: Duration? = nil) {
            self.name = name
            self.records = records
            self.lose = lose
            self.failAfter = failAfter
            s = JobSummary(job: name)
        }

        struct Boom: Error {}

        func run(shouldStop: @escaping () -> Bool, report: @escaping (JobSummary) -> Void) throws {
            for i in 0..<records {
                s.consumed += 1
                if i >= lose { s.outcomes["published", default: 0] += 1 }
                report(s)
            }
            let started = ContinuousClock.now
            // A long-running job: runs until asked to stop (or fails on its own).
            while !shouldStop() {
                if let failAfter, ContinuousClock.now - started >= failAfter { throw Boom() }
                if failAfter == nil && ContinuousClock.now - started >= .seconds(30) { return }
                Thread.sleep(forTimeInterval: 0.01)
            }
            stoppedByRequest = true
        }

        var summary: JobSummary { s }
    }

    func testBalancedJobsExitZeroWithSummariesInOrder() {
        let stop = Atomic<Bool>(false)
        let jobs = [CountingJob(name: "a", records: 5), CountingJob(name: "b", records: 7)]
        let ticks = Mutex(0)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { stop.store(true, ordering: .relaxed) }
        let outcome = JobRunner.run(jobs, shouldStop: { stop.load(ordering: .relaxed) }) { _ in ticks.withLock { $0 += 1 } }
        XCTAssertEqual(outcome.exitCode, 0)
        XCTAssertEqual(outcome.summaries.map(\.job), ["a", "b"])
        XCTAssertEqual(outcome.summaries.map(\.consumed), [5, 7])
        XCTAssertTrue(jobs.allSatisfy(\.stoppedByRequest), "the stop request reached every job")
        XCTAssertGreaterThan(ticks.withLock { $0 }, 0)
    }

    func testUnbalancedAccountingExitsThree() {
        let stop = Atomic<Bool>(false)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { stop.store(true, ordering: .relaxed) }
        let outcome = JobRunner.run([CountingJob(name: "ok", records: 4), CountingJob(name: "leaky", records: 10, lose: 2)],
                                    shouldStop: { stop.load(ordering: .relaxed) })
        XCTAssertEqual(outcome.exitCode, 3)
        XCTAssertEqual(outcome.summaries.map(\.balanced), [true, false])
        XCTAssertTrue(outcome.failures.isEmpty)
    }

    func testAFailedJobStopsTheOthers() {
        let survivor = CountingJob(name: "survivor", records: 3)
        let started = ContinuousClock.now
        let outcome = JobRunner.run([survivor, CountingJob(name: "doomed", records: 1, failAfter: .milliseconds(200))],
                                    shouldStop: { false })
        XCTAssertEqual(outcome.exitCode, 1)
        XCTAssertEqual(Array(outcome.failures.keys), ["doomed"])
        XCTAssertTrue(survivor.stoppedByRequest, "the failure stopped the other job")
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(10), "not after the survivor's own 30 s")
    }

    func testSummaryLineHasOneShapeForEveryJob() throws {
        var s = JobSummary(job: "split")
        s.consumed = 3
        s.outcomes = ["routed": 2, "filtered": 1]
        s.details = ["routed": ["click": 2]]
        s.written = ["markers": 28]
        s.transactions = 2
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(s.jsonLine.utf8)) as? [String: Any])
        XCTAssertEqual(Set(object.keys), ["job", "consumed", "outcomes", "details", "written", "transactions",
                                          "aborted_transactions", "balanced"])
        XCTAssertEqual(object["balanced"] as? Bool, true)
        s.consumed = 4
        XCTAssertFalse(s.balanced)
        XCTAssertEqual(s.progressLine, "split: consumed 4, filtered 1, routed 2")
    }
}
