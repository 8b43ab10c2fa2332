import ArgumentParser
import Foundation
import Logging
import StrataCore
import StrataDims
import StrataJobs
import StrataOffline
import StrataRuntime
import StrataSplit
import Synchronization

/// split + dwm + dimsync (+ archive and sink) in one process, one thread each. One process keeps the local set-up to one
/// command and lets dimsync update the dwm job's own valid-id filter; to scale out, run the jobs as
/// separate processes (`strata job …`), each a consumer-group member (docs/operations.md).
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run every job of the pipeline in one process: split, dwm (with dimsync following dim.changelog), archive and sink.",
        discussion: """
        With --read-raw --no-split the split does not run: the dwm job alone reads ods.raw.
        Stops on SIGINT/SIGTERM (each job commits and leaves its group) or, with --until-idle, when every job is idle: in data-flow order, dwm only after split has finished and the sink only after dwm, each then idle for the given time.
        Prints one JSON summary line per job (as `strata job` does); exits 3 if a job's accounting does not balance.
        Consumer groups: <topic-prefix>strata-<job>, or G-<job> with --group G.
        The offline layer (archive: ods.raw → --archive; sink: dws.content → dws_minute) runs beside them unless --no-offline.
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var job: JobCommand.JobOptions
    @OptionGroup var dwm: DWMOptions
    @OptionGroup var offline: OfflineOptions
    @Flag(help: "Run only split and dwm, without the archive and sink jobs.") var noOffline = false
    @Flag(help: "With --read-raw: run without the split, for when nothing else reads the micro-queues. ods.raw is then read once instead of twice, and nothing publishes the micro-queues or ods.dlq (the dwm job counts malformed records as filtered, with their reason; the archive keeps their bytes).") var noSplit = false

    func validate() throws {
        if noSplit && !dwm.readRaw {
            throw ValidationError("--no-split needs --read-raw: without it the dwm job reads the split's micro-queues")
        }
    }

    func run() throws {
        let config = try global.resolve()
        let topology = try global.loadTopology(config)
        let cache = try openDimensionCache(config: config, storeAddress: dwm.store, topicPrefix: job.topicPrefix,
                                           storeWait: .seconds(dwm.storeWaitS))

        var splitOptions = SplitJob.Options(brokers: config.brokers)
        splitOptions.kafka = config.kafka
        splitOptions.instanceId = job.instanceId
        splitOptions.topicPrefix = job.topicPrefix
        splitOptions.untilIdle = job.untilIdle?.duration
        // Idle stops in data-flow order: dwm after split has finished, the sink after dwm.
        let splitEnd = JobCompletion(), dwmEnd = JobCompletion()
        splitOptions.idleOrder = IdleOrder(signals: splitEnd)
        splitOptions.groupId = job.group.map { $0 + "-split" } ?? job.groupId("split")
        splitOptions.idleSourceTimeout = .milliseconds(dwm.idleSourceMs)
        splitOptions.alignMs = dwm.alignMs > 0 ? dwm.alignMs : nil
        splitOptions.staticMembership = job.staticMembership

        var dwmOptions = DWMJob.Options(brokers: config.brokers)
        dwmOptions.kafka = config.kafka
        dwmOptions.instanceId = job.instanceId
        dwmOptions.topicPrefix = job.topicPrefix
        dwmOptions.groupId = job.group.map { $0 + "-dwm" } ?? job.groupId("dwm")
        dwmOptions.untilIdle = job.untilIdle?.duration
        dwmOptions.idleOrder = noSplit ? IdleOrder(signals: dwmEnd) : IdleOrder(after: splitEnd, signals: dwmEnd)
        dwmOptions.staticMembership = job.staticMembership
        dwm.apply(to: &dwmOptions)

        var jobs: [any StreamJob] = noSplit ? [] : [try SplitJob(options: splitOptions, topology: topology)]
        jobs.append(DWMJob(options: dwmOptions, topology: topology, cache: cache))
        if !noOffline {
            func group(_ name: String) -> String { job.group.map { $0 + "-" + name } ?? job.groupId(name) }
            jobs.append(try ArchiveJob(options: offline.archiveOptions(brokers: config.brokers, kafka: config.kafka, job: job,
                                                                       group: group("archive"))))
            var sinkOptions = offline.sinkOptions(brokers: config.brokers, kafka: config.kafka, job: job, group: group("sink"))
            sinkOptions.idleOrder = IdleOrder(after: dwmEnd)
            let address = offline.warehouse ?? dwm.store ?? config.store
            jobs.append(try SinkJob(options: sinkOptions, table: try DWSTableFactory.open(address),
                                    dwm: offline.dwm ? try DWMTableFactory.open(address) : nil))
        }
        let follower = startChangelogFollower(config: config, topicPrefix: job.topicPrefix, cache: cache)
        try runJobs(jobs, metricsFile: job.metricsFile) {
            follower.stop()
            cache.awaitWriteBack() // the lookups' last write-backs reach Redis before the exit
        }
    }
}
