import ArgumentParser
import Foundation
import StrataCore
import StrataDims
import StrataOffline

/// Options of the offline layer's jobs, shared by `strata job archive|sink` and `strata run`.
struct OfflineOptions: ParsableArguments {
    @Option(help: "Archive root folder: ods.raw lands in <archive>/dt=YYYY-MM-DD/hour=HH/ (env STRATA_ARCHIVE).")
    var archive: String = ProcessInfo.processInfo.environment["STRATA_ARCHIVE"] ?? "data/ods"
    @Option(help: "Publish archive files when a batch reaches this many uncompressed MB…") var archiveRollMb = 128
    @Option(help: "…or this long after its first line (e.g. 60s, 5m).") var archiveRoll: DurationArgument = DurationArgument(.seconds(60))
    @Option(help: "Zstandard level of the archive files (1 fastest … 19 smallest; 1 measured best for NDJSON events, docs/benchmarks.md).") var archiveLevel: Int32 = 1
    @Option(help: "Store of the dws_minute table: sqlite:PATH or postgres://… (default: the dimension store, env STRATA_STORE).")
    var warehouse: String?
    @Option(help: "Most time a DWS row waits before the sink stores it (e.g. 1s).") var sinkFlush: DurationArgument = DurationArgument(.seconds(1))
    @Flag(help: "The sink also stores dwm.content_user in dwm_minute (strata olap's questions about users).") var dwm = false
    @Option(name: .customLong("offline-batch-size"), help: "Most records the archive and sink jobs take per poll.") var batchSize = 20_000
    @Option(help: "How long the sink waits for a warehouse table that cannot take its rows (PostgreSQL down or restarting), asking again, before it exits to be restarted (s).")
    var sinkStoreWaitS = 120

    func archiveOptions(brokers: String, kafka: [String: String], job: JobCommand.JobOptions, group: String) -> ArchiveJob.Options {
        var o = ArchiveJob.Options(brokers: brokers, root: archive)
        o.kafka = kafka
        o.instanceId = job.instanceId
        o.topicPrefix = job.topicPrefix
        o.untilIdle = job.untilIdle?.duration
        o.groupId = group
        o.staticMembership = job.staticMembership
        o.rollBytes = archiveRollMb << 20
        o.rollInterval = archiveRoll.duration
        o.compressionLevel = archiveLevel
        o.batchSize = batchSize
        return o
    }

    func sinkOptions(brokers: String, kafka: [String: String], job: JobCommand.JobOptions, group: String) -> SinkJob.Options {
        var o = SinkJob.Options(brokers: brokers)
        o.kafka = kafka
        o.instanceId = job.instanceId
        o.topicPrefix = job.topicPrefix
        o.untilIdle = job.untilIdle?.duration
        o.groupId = group
        o.staticMembership = job.staticMembership
        o.flushInterval = sinkFlush.duration
        o.batchSize = batchSize
        o.storeWait = .seconds(sinkStoreWaitS)
        return o
    }
}

extension JobCommand {
    struct Archive: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "ods.raw → compressed NDJSON files by event hour, each line exactly once (the offline layer).",
            discussion: """
            Files: <archive>/dt=YYYY-MM-DD/hour=HH/part-<partition>-<first offset>.ndjson.zst (UTC, by the event's ts);
            values whose ts cannot be read go to <archive>/dt=<arrival day>/invalid/. A batch is written to
            <archive>/_staging, then each file is fsynced and renamed into place and only then are the offsets
            committed, so a crash at any moment neither loses nor doubles a line (a file written again replaces
            its earlier copy whole). Several instances need one shared archive folder. Prints its accounting as
            one JSON line on exit (consumed = archived + archived_invalid + filtered) and exits 3 if it does not balance.
            """)
        @OptionGroup var global: GlobalOptions
        @OptionGroup var job: JobOptions
        @OptionGroup var offline: OfflineOptions

        func run() throws {
            let config = try global.resolve()
            let o = offline.archiveOptions(brokers: config.brokers, kafka: config.kafka, job: job, group: job.groupId("archive"))
            try runJobs([try ArchiveJob(options: o)], metricsFile: job.metricsFile)
        }
    }

    struct Sink: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "dws.content → the dws_minute table (SQLite or PostgreSQL), highest revision per (minute, content); with --dwm also dwm.content_user → dwm_minute.",
            discussion: """
            Upserts in batches, one store transaction each (a row replaces the stored one only with a higher rev),
            then commits the consumer offsets: replays and out-of-order revisions never replace a newer row.
            `strata olap` and `strata reconcile` read the table. Prints its accounting as one JSON line on exit
            (consumed = stored + rejected + markers) and exits 3 if it does not balance.
            """)
        @OptionGroup var global: GlobalOptions
        @OptionGroup var job: JobOptions
        @OptionGroup var offline: OfflineOptions

        func run() throws {
            let config = try global.resolve()
            let address = offline.warehouse ?? config.store
            let o = offline.sinkOptions(brokers: config.brokers, kafka: config.kafka, job: job, group: job.groupId("sink"))
            try runJobs([try SinkJob(options: o, table: try DWSTableFactory.open(address),
                                     dwm: offline.dwm ? try DWMTableFactory.open(address) : nil)], metricsFile: job.metricsFile)
        }
    }
}
