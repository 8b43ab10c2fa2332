import Foundation
import StrataCore
import StrataTestSupport
import XCTest

/// A rebalance storm: three real `strata job dwm` instances of one group join and leave every
/// couple of seconds (each leave a SIGTERM: finish the batch, commit, leave the group) while the
/// split routes input that keeps arriving. Every join and leave moves partitions, so engines are
/// rebuilt from checkpoints over and over, mid-minute. Then one instance finishes the input: the
/// final rows and late events equal the truth (kept rows on Tansu, exactly on a strict broker).
///
/// Each change waits until the group has settled (every running instance rebuilt its engine):
/// a member that leaves while its JoinGroup is pending wedges Tansu 0.6's coordinator (later
/// joins loop on "rebalance in progress" for good; seen in this test's first version).
///
/// A chaos round (`deploy/local/chaos`), not in the suite: on Tansu 0.6 it found, in 2 of 3
/// runs, a micro-queue record the split had produced inside a committed transaction that the
/// broker never serves (its offset is taken, between the two transactions' markers, and it is
/// absent even for read_uncommitted readers); the split's own accounting counted it routed. On
/// noida the same storm loses nothing, but its static members hold their partitions for the
/// session timeout after leaving, so the storm there is slow and the final instance may end
/// before it owns every partition.
extension CatchUpEndToEndTests {
    func testRebalanceStormKeepsRowsExact() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["STRATA_CHAOS"] == "1",
                          "chaos round: deploy/local/chaos (Tansu 0.6 loses a record under this load; see the comment)")
        let strict = TestEnvironment.brokerHidesAbortedTransactions
        let sandbox = try PipelineSandbox(seed: 59, on: try TestEnvironment.brokers)
        let (lines, partitionOf) = generateWorkload(events: 18_000, seed: 59, contents: sandbox.contents, users: sandbox.users)
        let truth = PipelineTruth(lines: lines, partitionOf: partitionOf, contents: sandbox.contents, actions: sandbox.topology.actions)
        let seed = UInt64.random(in: 1...UInt64.max)
        print("storm seed: \(seed)")
        var rng = SeededRandom(seed: seed)

        let (split, _) = try sandbox.launchJob("split", untilIdle: nil, batch: 500, staticMembership: strict)
        let log = "\(sandbox.logDir)/\(sandbox.prefix)dwm.log"
        func rebuilt() -> Int {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").components(separatedBy: "\n").filter { $0.contains("\"engine rebuilt\"") }.count
        }
        var members: [Process?] = [nil, nil, nil]
        var joins = 0, leaves = 0
        let bursts = 6
        let stormEnd = Date().addingTimeInterval(25)
        var produced = 0
        while Date() < stormEnd {
            // The input keeps arriving during the storm, in bursts.
            if produced < bursts {
                let range = (produced * lines.count / bursts)..<((produced + 1) * lines.count / bursts)
                try sandbox.produceRaw(lines[range], partitionOf: partitionOf)
                produced += 1
            }
            let slot = Int(rng.below(3))
            let rebuiltBefore = rebuilt()
            if let p = members[slot], p.isRunning {
                p.terminate()          // SIGTERM: a graceful leave
                p.waitUntilExit()
                XCTAssertEqual(p.terminationStatus, 0, "instance \(slot) left cleanly")
                members[slot] = nil
                leaves += 1
            } else {
                members[slot] = try sandbox.launchJob("dwm", instance: slot, untilIdle: nil, batch: 1_000, staticMembership: strict).0
                joins += 1
            }
            let running = members.compactMap { $0 }.count
            if running > 0 {
                waitForLogLine("\"engine rebuilt\"", count: rebuiltBefore + running, in: log, timeout: .seconds(30))
            }
            Thread.sleep(forTimeInterval: 0.5 + Double(rng.below(1_500)) / 1_000)
        }
        if produced < bursts {
            try sandbox.produceRaw(lines[(produced * lines.count / bursts)...], partitionOf: partitionOf)
        }
        // The remaining instances leave one at a time, each after the group settled.
        while let slot = members.firstIndex(where: { $0 != nil }), let p = members[slot] {
            let rebuiltBefore = rebuilt()
            p.terminate()
            p.waitUntilExit()
            members[slot] = nil
            leaves += 1
            let running = members.compactMap { $0 }.count
            if running > 0 { waitForLogLine("\"engine rebuilt\"", count: rebuiltBefore + running, in: log, timeout: .seconds(30)) }
        }
        split.terminate()
        split.waitUntilExit()
        XCTAssertGreaterThanOrEqual(joins, 4, "the storm had joins")
        XCTAssertGreaterThanOrEqual(leaves, 4, "and leaves")

        let (lastSplit, _) = try sandbox.launchJob("split", untilIdle: 4, batch: 500, staticMembership: strict)
        let (last, _) = try sandbox.launchJob("dwm", untilIdle: 8, batch: 1_000, staticMembership: strict)
        lastSplit.waitUntilExit()
        last.waitUntilExit()
        XCTAssertEqual(lastSplit.terminationStatus, 0)
        XCTAssertEqual(last.terminationStatus, 0)
        let dwmLog = try String(contentsOfFile: "\(sandbox.logDir)/\(sandbox.prefix)dwm.log", encoding: .utf8)
        let rebuilds = dwmLog.split(separator: "\n").filter { $0.contains("\"engine rebuilt\"") && !$0.contains("\"checkpoints\":\"0\"") }.count
        XCTAssertGreaterThan(rebuilds, 3, "engines were rebuilt from checkpoints during the storm")

        let failuresBefore = testRun?.totalFailureCount ?? 0
        let queues = try truth.assertMicroQueues(sandbox, exactly: strict)
        try truth.assertMatches(sandbox, lateAsSet: !strict, tolerateAborted: !strict)
        FaultReport.record(fault: "rebalance storm (3 dwm instances)", injected: joins + leaves, recordsIn: truth.routedEvents,
                           recordsOut: truth.routedEvents - queues.missing + queues.extra, lost: queues.missing,
                           duplicated: queues.extra, exact: (testRun?.totalFailureCount ?? 0) == failuresBefore)
    }
}
