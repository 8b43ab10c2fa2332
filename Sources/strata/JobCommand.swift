import ArgumentParser
import Foundation
import Synchronization
import Logging
import StrataCore
import StrataSplit
import StrataDims
import StrataJobs
import StrataRedis
import StrataRuntime

struct JobCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "Run one stream job (a consumer-group member; start more instances to scale out).",
        subcommands: [Split.self, DWM.self, DimSyncJob.self, Archive.self, Sink.self])

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
        @Option(help: "Consumer group (default <topic-prefix>strata-<job>); instances of one job share it.")
        var group: String?
        @Flag(help: "Static group membership (group.instance.id from the instance id): a restarted instance takes its partitions back without a rebalance; a crashed one holds them for the session timeout.")
        var staticMembership = false

        /// The group of `job`: --group, else the topic prefix + strata-<job>, so isolated runs on one
        /// broker do not share groups.
        func groupId(_ job: String) -> String { group ?? topicPrefix + "strata-" + job }
    }

    struct Split: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "ods.raw → ods.<action> micro-queues (key content_id, original bytes) and ods.dlq, exactly once.",
            discussion: """
            Malformed or schema-invalid records go to ods.dlq with their original bytes and a `reason` header;
            records whose content id does not match the topology's pattern are filtered and counted.
            Every routed record carries its ods.raw partition's event-time progress (header strata.src), and
            watermark markers (null key, header strata.wm) go to every micro-queue partition, so the dwm job
            decides lateness by each raw partition's own order, whatever the read speed
            (docs/time-semantics.md). On exit prints the accounting as one JSON line on stdout
            (consumed = routed + filtered + dead_lettered) and exits 3 if it does not balance.
            """)
        @OptionGroup var global: GlobalOptions
        @OptionGroup var job: JobOptions
        @Option(help: "Most records per transaction (a poll takes what arrived within 100 ms).") var batchSize = SplitJob.Options(brokers: "").batchSize
        @Option(help: "An ods.raw partition without records this long is announced idle and stops holding the dwm watermark back (ms).")
        var idleSourceMs: Int64 = 30_000
        @Option(help: "Hold back an ods.raw partition this far (ms of event time) ahead of the slowest one with input, so a catch-up holds few windows open; 0 turns alignment off.")
        var alignMs: Int64 = SplitJob.Options(brokers: "").alignMs ?? 0

        func run() throws {
            let config = try global.resolve()
            let topology = try global.loadTopology(config)
            var options = SplitJob.Options(brokers: config.brokers)
            options.kafka = config.kafka
            options.instanceId = job.instanceId
            options.batchSize = batchSize
            options.untilIdle = job.untilIdle?.duration
            options.topicPrefix = job.topicPrefix
            options.groupId = job.groupId("split")
            options.idleSourceTimeout = .milliseconds(idleSourceMs)
            options.alignMs = alignMs > 0 ? alignMs : nil
            options.staticMembership = job.staticMembership
            try runJobs([try SplitJob(options: options, topology: topology)], metricsFile: job.metricsFile)
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

/// Store + Redis + cache as every job that looks up dimensions opens them. Redis connects lazily:
/// a job starts (degraded, from the store) while Redis is down and uses it once it answers.
/// Its Redis keys live under `dim:<topic-prefix>`: a prefixed run has its own store and changelog,
/// so its cache entries must not mix with another run's.
func openDimensionCache(config: StrataConfig, storeAddress: String?, topicPrefix: String,
                        storeWait: Duration = DimensionCacheConfig().storeWait) throws -> DimensionCache {
    let store = try DimensionStoreFactory.open(storeAddress ?? config.store)
    try store.migrate()
    var rc = try RedisConfig(url: config.redisURL)
    // A failed attempt is what a lookup pays before falling back to the store: keep it short.
    rc.maxAttempts = 2
    rc.commandTimeout = .milliseconds(500)
    var cc = DimensionCacheConfig()
    cc.keyPrefix += topicPrefix
    cc.storeWait = storeWait
    return try DimensionCache(store: store, redisConfig: rc, config: cc)
}

struct DWMOptions: ParsableArguments {
    @Option(help: "Dimension store: sqlite:PATH or postgres://… (env STRATA_STORE).") var store: String?
    @Option(help: "Out-of-orderness: watermark = highest ts − this (ms).") var outOfOrdernessMs: Int64 = 5_000
    @Option(help: "Allowed lateness after a window's end for corrections (ms); later events go to ods.late.") var allowedLatenessMs: Int64 = 120_000
    @Option(help: "Early-revision (and transaction) interval (ms).") var earlyIntervalMs: Int64 = 2_000
    @Flag(help: "Publish a minute's DWM finals in the same transaction as its DWS finals. By default the DWS finals go first and the DWM finals follow in the next transaction, so the minute's few DWS rows do not wait for its every DWM row.") var finalsTogether = false
    @Option(help: "A minute's DWM finals go out over several transactions of about this many rows each (whole parts of the minute's contents), each also carrying the next minute's early rows, so those do not wait for the whole minute's finals; 0: all in one transaction.") var dwmFinalsPerTransaction = DWMJob.Options(brokers: "").dwmFinalsPerTransaction
    @Flag(help: "Read ods.raw directly instead of the split's micro-queues: one broker hop fewer, and the minutes close without waiting for the split's transactions. ods.raw must be keyed by content_id (the job stops at the first record keyed otherwise); the split keeps publishing the micro-queues and ods.dlq for their other readers. Switching an existing group between the two inputs starts it from the beginning of the new input.") var readRaw = false
    @Option(help: "Hold back an ods.raw partition this far (ms of event time) ahead of the slowest one with input, so a catch-up holds few windows open: the dwm job with --read-raw, and in `strata run` the split too. It changes when rows appear, never which; 0 turns alignment off.") var alignMs: Int64 = DWMJob.Options(brokers: "").alignMs ?? 0
    @Option(name: .customLong("dwm-batch-size"), help: "Most records the dwm job takes per poll.") var dwmBatchSize = DWMJob.Options(brokers: "").batchSize
    @Option(help: "How long dimension lookups wait for a store that cannot answer (PostgreSQL down or restarting), retrying, before the job exits to be restarted (s). A wait past the consumer's max.poll.interval.ms (60 s for dwm) takes the member out of its group; it rejoins and redoes its uncommitted work.") var storeWaitS = 120
    @Option(help: "A micro-queue partition not written by the split, idle this long, stops holding the watermark back (ms); the split declares its ods.raw partitions idle itself.") var idleSourceMs: Int64 = 30_000
    @Option(help: "Which of its checkpoints the dwm job believes when it rebuilds its windows: auto (learn at start whether the broker shows aborted transactions to read_committed readers, as the local Tansu does; then proven), proven (only checkpoints known to have committed: a killed job's last publishing-only transaction is redone, its rows republished identical), all (every checkpoint read; right on brokers that hide aborted transactions, as Kafka does). docs/exactly-once.md") var checkpointTrust: Trust = .auto
    enum Trust: String, ExpressibleByArgument, CaseIterable { case auto, proven, all }

    func apply(to o: inout DWMJob.Options) {
        o.batchSize = dwmBatchSize
        o.outOfOrdernessMs = outOfOrdernessMs
        o.allowedLatenessMs = allowedLatenessMs
        o.earlyIntervalMs = earlyIntervalMs
        o.dwsFinalsFirst = !finalsTogether
        o.dwmFinalsPerTransaction = dwmFinalsPerTransaction
        o.readRaw = readRaw
        o.alignMs = alignMs > 0 ? alignMs : nil
        o.idleSourceTimeoutMs = idleSourceMs
        o.checkpointTrust = CheckpointTrust(rawValue: checkpointTrust.rawValue) ?? .auto
    }
}

extension JobCommand {
    struct DWM: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dwm",
            abstract: "Micro-queues → minute windows per (content, user) → enriched dwm.content_user and dws.content upsert rows, exactly once.",
            discussion: """
            Early revisions (final:false) every --early-interval-ms while a minute is open, the final row when the
            watermark passes its end, corrected revisions for events within the allowed lateness; later events go
            to ods.late. Content ids unknown to the dimension store are filtered and counted. Follows dim.changelog
            to keep its valid-id filter current. Prints its accounting as one JSON line on exit
            (consumed = applied + duplicates + late + filtered) and exits 3 if it does not balance.
            """)
        @OptionGroup var global: GlobalOptions
        @OptionGroup var job: JobOptions
        @OptionGroup var dwm: DWMOptions

        func run() throws {
            let config = try global.resolve()
            let topology = try global.loadTopology(config)
            let cache = try openDimensionCache(config: config, storeAddress: dwm.store, topicPrefix: job.topicPrefix,
                                           storeWait: .seconds(dwm.storeWaitS))
            var o = DWMJob.Options(brokers: config.brokers)
            o.kafka = config.kafka
            o.instanceId = job.instanceId
            o.topicPrefix = job.topicPrefix
            o.untilIdle = job.untilIdle?.duration
            o.groupId = job.groupId("dwm")
            o.staticMembership = job.staticMembership
            dwm.apply(to: &o)
            let follower = startChangelogFollower(config: config, topicPrefix: job.topicPrefix, cache: cache)
            try runJobs([DWMJob(options: o, topology: topology, cache: cache)], metricsFile: job.metricsFile) {
                follower.stop()
                cache.awaitWriteBack() // the lookups' last write-backs reach Redis before the exit
            }
        }
    }

    struct DimSyncJob: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dimsync", abstract: "Apply dim.changelog to the Redis dimension cache (fresh staggered TTLs).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var job: JobOptions
        @Option(help: "Dimension store (env STRATA_STORE).") var store: String?

        func run() throws {
            let config = try global.resolve()
            Shutdown.install()
            let cache = try openDimensionCache(config: config, storeAddress: store, topicPrefix: job.topicPrefix)
            var o = DimSync.Options(brokers: config.brokers)
            o.kafka = config.kafka
            o.topicPrefix = job.topicPrefix
            o.untilIdle = job.untilIdle?.duration
            o.groupId = job.groupId("dimsync")
            let sync = DimSync(options: o, cache: cache)
            try sync.run(shouldStop: { Shutdown.isRequested })
            print("{\"job\":\"dimsync\",\"applied\":\(sync.applied),\"rejected\":\(sync.rejected)}")
        }
    }
}

/// Runs a group-less changelog follower on its own thread: keeps this process's valid-id filter
/// and in-process tier current.
final class ChangelogFollower: @unchecked Sendable {
    private let stopFlag = StopFlag()
    private let done = DispatchSemaphore(value: 0)

    init(_ sync: DimSync) {
        let box = UncheckedBox(sync)
        let thread = Thread { [self] in
            do { try box.value.run(shouldStop: { self.stopFlag.isSet || Shutdown.isRequested }) } catch {
                Logger(label: "strata.dimsync").error("changelog follower stopped", metadata: ["error": "\(error)"])
            }
            done.signal()
        }
        thread.name = "strata-dimsync-follower"
        thread.start()
    }

    func stop() {
        stopFlag.set()
        done.wait()
    }
}

func startChangelogFollower(config: StrataConfig, topicPrefix: String, cache: DimensionCache) -> ChangelogFollower {
    var o = DimSync.Options(brokers: config.brokers)
    o.kafka = config.kafka
    o.topicPrefix = topicPrefix
    o.groupId = nil
    return ChangelogFollower(DimSync(options: o, cache: cache))
}
