import ArgumentParser
import Foundation
import Logging
import StrataCore
import StrataJobs
import StrataSplit
import Synchronization

/// split + dwm + dimsync in one process, one thread each. One process keeps the local set-up to one
/// command and lets dimsync update the dwm job's own valid-id filter; to scale out, run the jobs as
/// separate processes (`strata job …`), each a consumer-group member (docs/operations.md).
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run every job of the pipeline in one process: split, dwm (with dimsync following dim.changelog).",
        discussion: """
        Stops on SIGINT/SIGTERM (each job commits and leaves its group) or, with --until-idle, when every job is idle.
        Consumer groups: <topic-prefix>strata-split and <topic-prefix>strata-dwm, or G-split and G-dwm with --group G.
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var job: JobCommand.JobOptions
    @OptionGroup var dwm: DWMOptions
    @Option(help: "Split: pause an ods.raw partition this far (ms of event time) ahead of the slowest one with input; 0 turns alignment off.")
    var alignMs: Int64 = SplitJob.Options(brokers: "").alignMs ?? 0

    func run() throws {
        let config = try global.resolve()
        let topology = try global.loadTopology(config)
        Shutdown.install()
        let logger = Logger(label: "strata.run")
        let cache = try openDimensionCache(config: config, storeAddress: dwm.store, topicPrefix: job.topicPrefix)
        let failed = Mutex<[String]>([])
        let stopAll = StopFlag()
        let stop: @Sendable () -> Bool = { stopAll.isSet || Shutdown.isRequested }

        var so = SplitJob.Options(brokers: config.brokers)
        so.kafka = config.kafka
        so.instanceId = job.instanceId
        so.topicPrefix = job.topicPrefix
        so.untilIdle = job.untilIdle?.duration
        so.groupId = job.group.map { $0 + "-split" } ?? job.groupId("split")
        so.idleSourceTimeout = .milliseconds(dwm.idleSourceMs)
        so.alignMs = alignMs > 0 ? alignMs : nil
        let split = try SplitJob(options: so, topology: topology)

        var dwo = DWMJob.Options(brokers: config.brokers)
        dwo.kafka = config.kafka
        dwo.instanceId = job.instanceId
        dwo.topicPrefix = job.topicPrefix
        dwo.groupId = job.group.map { $0 + "-dwm" } ?? job.groupId("dwm")
        // dwm waits for split: it may only go idle after split has finished its input.
        dwo.untilIdle = job.untilIdle.map { $0.duration + .seconds(3) }
        dwm.apply(to: &dwo)
        let dwmJob = DWMJob(options: dwo, topology: topology, cache: cache)
        let follower = startChangelogFollower(config: config, topicPrefix: job.topicPrefix, cache: cache)

        func spawn(_ name: String, _ body: @escaping @Sendable () throws -> Void) -> DispatchSemaphore {
            let done = DispatchSemaphore(value: 0)
            let t = Thread {
                do { try body() } catch {
                    logger.error("job failed; stopping the others", metadata: ["job": "\(name)", "error": "\(error)"])
                    failed.withLock { $0.append(name) }
                    stopAll.set()
                }
                done.signal()
            }
            t.name = "strata-\(name)"
            t.start()
            return done
        }
        let splitBox = UncheckedBox(split), dwmBox = UncheckedBox(dwmJob)
        let splitDone = spawn("split") { try splitBox.value.run(shouldStop: stop) }
        let dwmDone = spawn("dwm") { try dwmBox.value.run(shouldStop: stop) }
        var metrics = MetricsFileWriter(path: job.metricsFile)
        var progress = Progress()
        while dwmDone.wait(timeout: .now() + 1) == .timedOut {
            progress.update("split: \(split.stats.consumed) consumed | dwm: \(dwmJob.stats.accounting.consumed) events, \(dwmJob.stats.dwsRows) DWS rows")
            metrics.maybeWrite()
        }
        splitDone.wait()
        follower.stop()
        progress.finish()
        metrics.write()
        let s = split.stats, a = dwmJob.stats.accounting
        print("{\"job\":\"split\",\"consumed\":\(s.consumed),\"routed\":\(s.routedTotal),\"filtered\":\(s.filteredTotal),\"dead_lettered\":\(s.deadLetteredTotal),\"balanced\":\(s.isBalanced)}")
        print("{\"job\":\"dwm\",\"consumed\":\(a.consumed),\"applied\":\(a.applied),\"duplicates\":\(a.duplicates),\"late\":\(a.late),\"filtered\":\(a.filteredTotal),\"dws_rows\":\(dwmJob.stats.dwsRows),\"dwm_rows\":\(dwmJob.stats.dwmRows),\"balanced\":\(a.isBalanced)}")
        let f = failed.withLock { $0 }
        if !f.isEmpty { throw ValidationError("jobs failed: \(f.joined(separator: ", ")) (see logs)") }
    }
}

/// Hands a job object to its thread; each job is used by that one thread only.
final class UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// A stop request shared by threads.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}
