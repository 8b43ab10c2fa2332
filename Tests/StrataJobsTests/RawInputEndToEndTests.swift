import Foundation
import Synchronization
import StrataCore
import StrataDWM
import StrataJobs
import StrataKafka
import StrataRuntime
import StrataTestSupport
import XCTest

/// The dwm job reading a content-keyed `ods.raw` directly (`--read-raw`): one broker hop fewer,
/// and the same truth as through the split — a backlog with very late, out-of-order and
/// duplicate events, several instances, processes killed — while the split keeps publishing the
/// micro-queues for their other readers. An unkeyed `ods.raw` stops the job with a clear error.
final class RawInputEndToEndTests: XCTestCase {
    static let events = 20_000

    private func keyedBacklog(_ sandbox: PipelineSandbox, seed: UInt64, events: Int = events) throws -> PipelineTruth {
        let (lines, _) = generateWorkload(events: events, seed: seed, contents: sandbox.contents, users: sandbox.users)
        let partitionOf = keyedPartitions(lines)
        let truth = PipelineTruth(lines: lines, partitionOf: partitionOf, contents: sandbox.contents, actions: sandbox.topology.actions)
        XCTAssertGreaterThan(truth.lateCount, 100, "the input has very late events")
        try sandbox.produceRaw(lines[...], partitionOf: partitionOf, keyed: true)
        return truth
    }

    func testKeyedBacklogReadDirectlyPublishesTheTruthAndTheSplitStillFillsTheMicroQueues() throws {
        let sandbox = try PipelineSandbox(seed: 61)
        let truth = try keyedBacklog(sandbox, seed: 61)
        let jobs = try sandbox.runConcurrently(splits: [sandbox.splitOptions()], dwms: [sandbox.dwmOptions(readRaw: true)],
                                               cache: try sandbox.makeCache())
        try truth.assertMatches(sandbox)
        try truth.assertMicroQueues(sandbox, exactly: TestEnvironment.brokerHidesAbortedTransactions)
        let dwm = try XCTUnwrap(jobs.first)
        let a = dwm.stats.accounting
        XCTAssertTrue(a.isBalanced, "\(a)")
        XCTAssertEqual(a.consumed, Self.events, "every ods.raw record is accounted for by the dwm job")
        XCTAssertGreaterThan(a.filtered["invalid_content_id"] ?? 0, 0, "the split's filter reasons are counted as filtered")
        XCTAssertFalse(Set(a.filtered.keys).subtracting(["invalid_content_id", "unknown_content_id"]).isEmpty,
                       "what the split dead-letters is counted as filtered: \(a.filtered)")
        XCTAssertEqual(dwm.stats.lateForwarded, truth.lateCount)
    }

    /// `strata run --read-raw --no-split`, for when nothing reads the micro-queues: the dwm job
    /// alone reads ods.raw (once, not twice) and publishes the same truth; no micro-queue and no
    /// dead letter is written, and what the split would dead-letter is counted as filtered.
    func testStrataRunWithoutTheSplitPublishesTheTruthAndNoMicroQueue() throws {
        let sandbox = try PipelineSandbox(seed: 67)
        let truth = try keyedBacklog(sandbox, seed: 67)
        let args = ["run", "--topic-prefix", sandbox.prefix, "--group", sandbox.prefix + "run",
                    "--instance-id", sandbox.prefix + "run-0", "--brokers", sandbox.brokers,
                    "--topology", PipelineSandbox.topologyPath, "--log-format", "json",
                    "--redis", sandbox.redisURL, "--store", "sqlite:" + sandbox.storePath, "--early-interval-ms", "300",
                    "--read-raw", "--no-split", "--no-offline", "--until-idle", "4"]
        let out = Pipe()
        let run = try launchStrata(StrataTestSupport.strataBinary(packageRoot: PipelineSandbox.root), args, standardOutput: out,
                                   standardError: try sandbox.appendingLog("run"))
        let summaries = out.fileHandleForReading.readDataToEndOfFile()
        run.waitUntilExit()
        XCTAssertEqual(run.terminationStatus, 0)
        let jobs = String(decoding: summaries, as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        XCTAssertEqual(jobs.compactMap { $0["job"] as? String }, ["dwm"], "the split did not run")
        let dwm = try XCTUnwrap(jobs.first)
        XCTAssertEqual(dwm["balanced"] as? Bool, true, "\(dwm)")
        XCTAssertEqual(dwm["consumed"] as? Int, Self.events, "every ods.raw record is accounted for by the dwm job")
        let filtered = ((dwm["details"] as? [String: Any])?["filtered"] as? [String: Int]) ?? [:]
        XCTAssertFalse(Set(filtered.keys).subtracting(["invalid_content_id", "unknown_content_id"]).isEmpty,
                       "what the split dead-letters is counted as filtered, with its reason: \(filtered)")
        try truth.assertMatches(sandbox)
        for topic in sandbox.topology.actions.map({ Topology.microQueue(for: $0) }) + [Topology.deadLetter] {
            XCTAssertEqual(try sandbox.read(topic).count, 0, "\(topic) is not written without the split")
        }
    }

    /// A backlog whose partitions are unequally dense: partition 3 holds a tenth of the others'
    /// events over the same 27 minutes, so a reader that fetches by bytes reads it ten times
    /// faster in event time; and the local broker serves one partition's backlog before the
    /// next one's. Exact either way; with alignment (the default) the engine holds a few minutes
    /// open at once, without it nearly every minute of the backlog.
    func testASkewedBacklogReadDirectlyIsAlignedAndExact() throws {
        let aligned = try runSkewedBacklog(seed: 89, alignMs: 60_000)
        let unaligned = try runSkewedBacklog(seed: 89, alignMs: nil)
        print("peak open windows: aligned \(aligned), unaligned \(unaligned)")
        XCTAssertGreaterThanOrEqual(unaligned, 20, "without alignment, partitions read one after the other hold the backlog open")
        // Aligned: the alignment (1 min), what librdkafka had prefetched of the sparse partition
        // and the allowed lateness (2 min). The peak comes at the start: what was fetched before
        // the first alignment decision is applied whole (in a run peaking at 14, the sparse
        // partition was 12 minutes ahead at the first commit). With 4 KB partition fetches and
        // 50 queued messages the peak ranged 9–17 (17 failed); with the 2 KB fetches and 20
        // messages below, 8–12 over 9 runs, leaving four minutes of room.
        XCTAssertLessThanOrEqual(aligned, 16)
        // Unaligned, the peak is bounded by the backlog's 27 minutes (27–28 seen), so a ratio
        // of two failed at aligned = 14 (28 > 27): the gap is what alignment buys.
        XCTAssertGreaterThanOrEqual(unaligned - aligned, 10, "alignment holds at least ten fewer minutes open")
    }

    /// The same skewed backlog read unaligned with a 2 s idle timeout: the local broker serves
    /// one partition's backlog before the others deliver anything, for longer than that. A
    /// partition with records the broker has not served yet is not idle, so none of its events
    /// meets minutes the others moved past (judged late, they would be missing from the rows).
    func testAPartitionTheBrokerHasNotServedYetIsNotDeclaredIdle() throws {
        _ = try runSkewedBacklog(seed: 97, alignMs: nil, idleSourceTimeoutMs: 2_000)
    }

    /// Runs the dwm job reading a skewed keyed backlog (small fetches, so reading really is
    /// interleaved); checks its rows against the truth and returns its peak open windows.
    private func runSkewedBacklog(seed: UInt64, alignMs: Int64?, idleSourceTimeoutMs: Int64 = 300_000) throws -> Int {
        let sandbox = try PipelineSandbox(seed: seed)
        let (all, _) = generateWorkload(events: 16_000, seed: seed, contents: sandbox.contents, users: sandbox.users, eventsPerSecond: 10)
        let allPartitions = keyedPartitions(all)
        var kept: [Int] = []
        var sparse = 0
        for i in all.indices {
            if allPartitions[i] == 3 { sparse += 1; if sparse % 10 != 0 { continue } }
            kept.append(i)
        }
        let lines = kept.map { all[$0] }, partitionOf = kept.map { allPartitions[$0] }
        let truth = PipelineTruth(lines: lines, partitionOf: partitionOf, contents: sandbox.contents, actions: sandbox.topology.actions)
        try sandbox.produceRaw(lines[...], partitionOf: partitionOf, keyed: true)
        var options = sandbox.dwmOptions(batchSize: 100, readRaw: true)
        options.alignMs = alignMs
        // Unaligned, the local broker can serve partition 0's whole backlog before the others
        // deliver anything, for longer than the default idle timeout: the next test is about that.
        options.idleSourceTimeoutMs = idleSourceTimeoutMs
        options.kafka = ["consumer.max.partition.fetch.bytes": "2048", "consumer.fetch.max.bytes": "8192", "consumer.message.max.bytes": "8192",
                         "consumer.queued.max.messages.kbytes": "8", "consumer.queued.min.messages": "20"]
        let dwm = try XCTUnwrap(try sandbox.runConcurrently(splits: [], dwms: [options], cache: try sandbox.makeCache()).first)
        try truth.assertMatches(sandbox)
        XCTAssertTrue(dwm.stats.accounting.isBalanced, "\(dwm.stats.accounting)")
        XCTAssertEqual(dwm.stats.accounting.consumed, lines.count)
        return dwm.stats.peakOpenWindows
    }

    /// Scale-out: a content's events share an ods.raw partition, so each instance's minutes are whole.
    func testSeveralInstancesReadingDirectlyPublishTheTruth() throws {
        let sandbox = try PipelineSandbox(seed: 67)
        let truth = try keyedBacklog(sandbox, seed: 67, events: 12_000)
        // Idle times staggered: instances leaving together while another rejoins can wedge Tansu
        // 0.6's group coordinator, and the one left then waits for an assignment that never comes.
        let dwms = ["a", "b", "c"].enumerated().map { sandbox.dwmOptions(instance: $1, untilIdle: .seconds(6 + 3 * $0), readRaw: true) }
        _ = try sandbox.runConcurrently(splits: [], dwms: dwms, cache: try sandbox.makeCache())
        try truth.assertMatches(sandbox)
    }

    /// Instances that finish leave the group; the one still running has its partitions revoked
    /// and must not finish before the group hands them back (with the finished peers' share),
    /// or the minutes it holds open are never flushed: nobody is left to own them. A fourth
    /// member of the group holds that rebalance open for longer than the instances' idle time:
    /// it takes 15 s to give its partition up (its revoke callback sleeps), then leaves.
    func testAnInstanceWhosePartitionsAreRevokedWhenItsPeersFinishWaitsForThemBeforeItFinishes() throws {
        let sandbox = try PipelineSandbox(seed: 79)
        let truth = try keyedBacklog(sandbox, seed: 79, events: 12_000)
        var options = ["a", "b", "c"].map { sandbox.dwmOptions(instance: $0, readRaw: true) }
        // c goes idle last: a and b finish while c still holds open windows.
        options[2].untilIdle = .seconds(9)
        let started = ContinuousClock.now
        var slowRevokeAt: ContinuousClock.Instant?
        _ = try sandbox.runConcurrently(splits: [], dwms: options, cache: try sandbox.makeCache()) {
            var config = KafkaConfig.consumer(bootstrapServers: sandbox.brokers, groupId: sandbox.prefix + "dwm")
            config["partition.assignment.strategy"] = "range"
            let assignment = AssignmentTracker()
            let revokedAt = Mutex<ContinuousClock.Instant?>(nil)
            let member = try KafkaConsumer(config: config) { event in
                assignment.apply(event)
                // Slow only in the rebalance the peers' leaving starts: its own leaving (close
                // revokes too) is prompt. Slow there as well, it would hold partitions 0 and 1
                // for 15 s without working on them while the group looks settled to c, which
                // then rightly finishes with what it owns, and nobody reads them.
                if case .revoked = event, revokedAt.withLock({ $0 == nil }) {
                    revokedAt.withLock { $0 = .now }
                    Thread.sleep(forTimeInterval: 15)
                }
            }
            defer { member.close() }
            try member.subscribe([sandbox.prefix + Topology.raw])
            // Joined, then revoked (peers finished) and settled again: then it leaves.
            let deadline = ContinuousClock.now + .seconds(90)
            while ContinuousClock.now < deadline && !(assignment.isSettled && revokedAt.withLock({ $0 }) != nil) {
                _ = try member.poll(maxMessages: 10, timeoutMs: 100)
            }
            slowRevokeAt = revokedAt.withLock { $0 }
            XCTAssertTrue(assignment.isSettled, "the slow member took part in the rebalance")
        }
        let revoked = try XCTUnwrap(slowRevokeAt, "the peers' leaving revoked the slow member's partition")
        print("slow revoke \(revoked - started) after the start; all instances done after \(ContinuousClock.now - started)")
        XCTAssertGreaterThan(ContinuousClock.now - revoked, .seconds(15), "the last instance waited for the rebalance to end")
        try truth.assertMatches(sandbox)
    }

    /// A bounded run whose group does not complete a rebalance gives up after its settle timeout
    /// with an error that says so (a broker-side stall would otherwise keep it waiting for good):
    /// here another member of the group holds the rebalance open for 25 s in its revoke callback.
    func testABoundedRunWhoseGroupDoesNotSettleGivesUpWithAClearError() throws {
        let sandbox = try PipelineSandbox(seed: 83)
        _ = try keyedBacklog(sandbox, seed: 83)
        let assigned = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let brokers = sandbox.brokers, group = sandbox.prefix + "dwm", topic = sandbox.prefix + Topology.raw
        let memberError = Mutex<String?>(nil)
        Thread {
            defer { done.signal() }
            do {
                var config = KafkaConfig.consumer(bootstrapServers: brokers, groupId: group)
                config["partition.assignment.strategy"] = "range"
                let stalled = Mutex(false)
                let member = try KafkaConsumer(config: config) { event in
                    if case .assigned(let p) = event, !p.isEmpty { assigned.signal() }
                    if case .revoked = event, !stalled.withLock({ $0 }) {
                        stalled.withLock { $0 = true }
                        Thread.sleep(forTimeInterval: 25)
                    }
                }
                defer { member.close() }
                try member.subscribe([topic])
                let deadline = ContinuousClock.now + .seconds(60)
                while ContinuousClock.now < deadline && !stalled.withLock({ $0 }) {
                    _ = try member.poll(maxMessages: 10, timeoutMs: 100)
                }
            } catch {
                memberError.withLock { $0 = "\(error)" }
            }
        }.start()
        XCTAssertEqual(assigned.wait(timeout: .now() + 60), .success, "the other member joined first")

        var options = sandbox.dwmOptions(untilIdle: .seconds(3), readRaw: true)
        options.settleTimeout = .seconds(8)
        let job = DWMJob(options: options, topology: sandbox.topology, cache: try sandbox.makeCache())
        XCTAssertThrowsError(try job.run()) { error in
            guard case LoopError.rebalanceNotCompleted(_, let g, let waited) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(g, group)
            XCTAssertGreaterThanOrEqual(waited, .seconds(8))
            XCTAssertLessThan(waited, .seconds(20), "gave up at its timeout, not when the rebalance ended")
            XCTAssertTrue("\(error)".contains("did not complete a rebalance") && "\(error)".contains("Run the job again"), "\(error)")
        }
        XCTAssertEqual(done.wait(timeout: .now() + 90), .success)
        XCTAssertNil(memberError.withLock { $0 })
    }

    func testUnkeyedODSRawStopsTheJobBeforeItPublishesAnything() throws {
        let sandbox = try PipelineSandbox(seed: 71)
        let (lines, partitionOf) = generateWorkload(events: 2_000, seed: 71, contents: sandbox.contents, users: sandbox.users)
        try sandbox.produceRaw(lines[...], partitionOf: partitionOf)
        let job = DWMJob(options: sandbox.dwmOptions(untilIdle: .seconds(3), readRaw: true), topology: sandbox.topology,
                         cache: try sandbox.makeCache())
        XCTAssertThrowsError(try job.run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("keyed null") && text.contains("keyed by content_id") && text.contains("--read-raw"), text)
        }
        XCTAssertEqual(try sandbox.read(Topology.dws).count, 0, "nothing published")
        XCTAssertEqual(try sandbox.read(Topology.dwm).count, 0, "nothing published")
    }

    /// The real `strata job dwm --read-raw`, SIGKILLed at seeded random moments (5 kills) and
    /// restarted: the same final rows and late events as the truth. Strict on a broker that hides
    /// aborted transactions; on Tansu, whose readers see them, rows are compared as kept and
    /// `ods.late` as a set (docs/exactly-once.md).
    func testKilledDirectDWMJobPublishesTheTruth() throws {
        try killDirectDWMJob(seed: 73)
    }

    /// The same with `--checkpoint-trust proven` (the local Tansu's mode, here on noida's strict
    /// checks too) and partitions idle after 0.5 s: kills fall while minutes close by the clock,
    /// in transactions that read nothing. A killed life's last such transaction is not believed:
    /// the restore takes the one before it and republishes its rows, which must be the same
    /// revisions with the same numbers.
    func testKilledDirectDWMJobPublishesTheTruthTrustingOnlyProvenCheckpoints() throws {
        let redone = try killDirectDWMJob(seed: 79, extra: ["--checkpoint-trust", "proven", "--idle-source-ms", "500"])
        print("restores that passed over an unproven newest checkpoint: \(redone)")
    }

    /// Five SIGKILLs of `strata job dwm --read-raw` at seeded random moments over a keyed backlog,
    /// then a run to the end; the rows against the truth. The number of restores that passed over
    /// newest checkpoints not known to have committed.
    @discardableResult
    func killDirectDWMJob(seed workloadSeed: UInt64, extra: [String] = []) throws -> Int {
        let strict = TestEnvironment.brokerHidesAbortedTransactions
        let sandbox = try PipelineSandbox(seed: workloadSeed)
        let truth = try keyedBacklog(sandbox, seed: workloadSeed)
        let log = "\(sandbox.logDir)/\(sandbox.prefix)dwm.log"
        func launch(untilIdle: Int?) throws -> (Process, Pipe) {
            try sandbox.launchJob("dwm", untilIdle: untilIdle, batch: 200, staticMembership: strict, extra: ["--read-raw"] + extra)
        }
        let seed = UInt64.random(in: 1...UInt64.max)
        print("kill moments seed: \(seed)")
        var rng = SeededRandom(seed: seed)
        var killedRunning = 0, committedAtKills: [Int] = []
        for round in 0..<5 {
            let (dwm, _) = try launch(untilIdle: nil)
            waitForLogLine("\"engine rebuilt\"", count: round + 1, in: log, timeout: .seconds(30))
            // The first kill soon after the join, while the backlog is being read (noida serves
            // the 20 000 records in well under a second); the others at random later moments.
            Thread.sleep(forTimeInterval: round == 0 ? Double(rng.below(150)) / 1_000 : 0.3 + Double(rng.below(2_000)) / 1_000)
            if dwm.isRunning { killedRunning += 1 }
            kill(dwm.processIdentifier, SIGKILL)
            dwm.waitUntilExit()
            committedAtKills.append(try committedTotal(brokers: sandbox.brokers, group: sandbox.prefix + "dwm",
                                                       topics: [sandbox.prefix + Topology.raw], partitions: 4))
        }
        XCTAssertEqual(killedRunning, 5, "every kill hit a running process")
        print("committed ods.raw records at the kills: \(committedAtKills)")
        XCTAssertLessThan(committedAtKills.min() ?? .max, Self.events, "a kill interrupted the reading")
        let (dwm, out) = try launch(untilIdle: 6)
        let deadline = ContinuousClock.now + .seconds(300)
        while dwm.isRunning && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.2) }
        if dwm.isRunning { kill(dwm.processIdentifier, SIGKILL); XCTFail("the final run did not finish within 300 s") }
        dwm.waitUntilExit()
        XCTAssertEqual(dwm.terminationStatus, 0)
        print("final dwm: \(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
        let text = try String(contentsOfFile: log, encoding: .utf8)
        let replays = text.split(separator: "\n").filter { $0.contains("\"state restored\"") && !$0.contains("consumed=0 ") }
        XCTAssertGreaterThan(replays.count, 0, "a kill hit the job with open windows to rebuild")
        try truth.assertMatches(sandbox, lateAsSet: !strict, tolerateAborted: !strict)
        return text.split(separator: "\n").filter { $0.contains("which are not known to have committed") }.count
    }
}
