import ArgumentParser
import Foundation
import Logging
import StrataCore
import StrataSplit

struct JobCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "Run one stream job (a consumer-group member; start more instances to scale out).",
        subcommands: [Split.self])

    /// Options every job takes.
    struct JobOptions: ParsableArguments {
        @Option(help: "Exit after this long without new input, having committed everything (e.g. 10, 30s).")
        var untilIdle: DurationArgument?
        @Option(help: "Stable id of this instance; its transactional id derives from it, so a restarted instance fences its predecessor.")
        var instanceId: String = ProcessInfo.processInfo.environment["STRATA_INSTANCE_ID"] ?? "0"
        @Option(help: "Write Prometheus metrics to this file (textfile-collector format) every few seconds and on exit.")
        var metricsFile: String?
        @Option(help: "Prefix for every topic name (isolated runs on a shared broker).")
        var topicPrefix: String = ""
        @Option(help: "Consumer group (default strata-<job>); instances of one job share it.")
        var group: String?
    }

    struct Split: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "ods.raw → ods.<action> micro-queues (key content_id, original bytes) and ods.dlq, exactly once.",
            discussion: """
            Malformed or schema-invalid records go to ods.dlq with their original bytes and a `reason` header;
            records whose content id does not match the topology's pattern are filtered and counted.
            On exit prints the accounting as one JSON line on stdout:
            consumed = routed + filtered + dead_lettered.
            """)
        @OptionGroup var global: GlobalOptions
        @OptionGroup var job: JobOptions
        @Option(help: "Records per transaction.") var batchSize = 5_000

        func run() throws {
            let config = try global.resolve()
            let topology = try global.loadTopology(config)
            Shutdown.install()
            var options = SplitJob.Options(brokers: config.brokers)
            options.kafka = config.kafka
            options.instanceId = job.instanceId
            options.batchSize = batchSize
            options.untilIdle = job.untilIdle?.duration
            options.topicPrefix = job.topicPrefix
            if let g = job.group { options.groupId = g }
            let split = try SplitJob(options: options, topology: topology)
            var progress = Progress()
            var metrics = MetricsFileWriter(path: job.metricsFile)
            try split.run(shouldStop: { Shutdown.isRequested }) { stats in
                progress.update("split: consumed \(stats.consumed), routed \(stats.routedTotal), filtered \(stats.filteredTotal), dead-lettered \(stats.deadLetteredTotal)")
                metrics.maybeWrite()
            }
            progress.finish()
            metrics.write()
            let s = split.stats
            let summary: [String: Any] = ["job": "split", "consumed": s.consumed, "routed": s.routed, "filtered": s.filtered,
                                          "dead_lettered": s.deadLettered, "balanced": s.isBalanced,
                                          "retried_batches": split.retriedBatches]
            let data = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            if !s.isBalanced { throw ExitCode(3) }
        }
    }
}

/// Periodic Prometheus textfile output for jobs.
struct MetricsFileWriter {
    let path: String?
    private var last = ContinuousClock.now
    init(path: String?) { self.path = path }

    mutating func maybeWrite() {
        guard path != nil, ContinuousClock.now - last >= .seconds(5) else { return }
        write()
    }

    mutating func write() {
        guard let path else { return }
        last = .now
        do { try MetricsRegistry.shared.writeTextfile(path: path) } catch {
            Logger(label: "strata.metrics").warning("cannot write metrics file", metadata: ["error": "\(error)"])
        }
    }
}
