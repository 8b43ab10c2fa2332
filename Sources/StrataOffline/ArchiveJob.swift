import Foundation
import Glibc
public import Logging
import StrataCore
import StrataKafka
public import StrataRuntime
import StrataArchive

/// The archive job: `ods.raw` → compressed NDJSON files by event hour
/// (`<archive>/dt=YYYY-MM-DD/hour=HH/part-<partition>-<first offset>.ndjson.zst`, docs/reconciliation.md),
/// the offline layer that `strata reconcile` recomputes from.
///
/// Exactly once per line, across crashes: lines go to staging files; a commit finishes and fsyncs
/// them, renames them into place (atomic), fsyncs the folders, and only then commits the consumer
/// offsets. A crash before the offsets commit reads the same records again from the committed
/// offset, so each file is written again under the same name (a file is named by the first offset
/// of its hour within a batch, and every batch starts at the committed offset) and the rename
/// replaces the earlier copy whole: never a line twice, never a line lost. That needs one writer per
/// partition at a time: a batch is published only under the partition's lease (`ArchiveLeases`),
/// which the partition's next owner takes, so a stalled instance that lost the partition
/// (a zombie) publishes nothing of it.
public final class ArchiveJob: StreamJob {
    public struct Options: Sendable {
        public var brokers: String
        public var kafka: [String: String] = [:]
        public var groupId = Topology.archiveGroup
        public var instanceId = "0"
        public var topicPrefix = ""
        public var untilIdle: Duration?
        public var staticMembership = false
        /// The archive's root folder.
        public var root: String
        /// A batch is published when its uncompressed lines reach this many bytes…
        public var rollBytes = 128 << 20
        /// …or this long after its first line (the archive's freshness).
        public var rollInterval: Duration = .seconds(60)
        /// 1: on event NDJSON as small as level 3 (ratio 8.0 vs 7.9) for less CPU (docs/benchmarks.md).
        public var compressionLevel: Int32 = 1
        public var batchSize = 20_000

        public init(brokers: String, root: String) {
            self.brokers = brokers
            self.root = root
        }
    }

    public struct Stats: Sendable {
        public var consumed = 0
        public var archived = 0
        /// Lines whose `ts` could not be read: archived under `dt=…/invalid/` by arrival day.
        public var archivedInvalid = 0
        /// Records without a value (tombstones): nothing to archive.
        public var filteredEmpty = 0
        public var filesPublished = 0
        public var bytesIn = 0
        public var bytesOut: Int64 = 0

        mutating func add(_ o: Stats) {
            consumed += o.consumed
            archived += o.archived
            archivedInvalid += o.archivedInvalid
            filteredEmpty += o.filteredEmpty
            filesPublished += o.filesPublished
            bytesIn += o.bytesIn
            bytesOut += o.bytesOut
        }
    }

    public let name = "archive"
    private let stage: ArchiveStage
    private let loop: TransactionalLoop

    public init(options: Options, logger: Logger = Logger(label: "strata.archive")) throws {
        stage = try ArchiveStage(options: options, logger: logger)
        var loopOptions = TransactionalLoop.Options(job: name, brokers: options.brokers, groupId: options.groupId,
                                                    inputs: [options.topicPrefix + Topology.raw])
        loopOptions.kafka = options.kafka
        loopOptions.instanceId = options.instanceId
        loopOptions.topicPrefix = options.topicPrefix
        loopOptions.untilIdle = options.untilIdle
        loopOptions.staticMembership = options.staticMembership
        loopOptions.batchSize = options.batchSize
        loop = TransactionalLoop(options: loopOptions, logger: logger)
    }

    public var stats: Stats { stage.stats }

    public func run(shouldStop: @escaping () -> Bool, report: @escaping (JobSummary) -> Void) throws {
        try loop.run(durable: stage, shouldStop: shouldStop) { [unowned self] in report(summary) }
    }

    public var summary: JobSummary {
        let s = stage.stats
        var j = JobSummary(job: name)
        j.consumed = s.consumed
        j.outcomes = ["archived": s.archived, "archived_invalid": s.archivedInvalid, "filtered": s.filteredEmpty]
        j.details = ["filtered": s.filteredEmpty > 0 ? ["empty": s.filteredEmpty] : [:]]
        j.written = ["files": s.filesPublished, "bytes_in": s.bytesIn, "bytes_out": Int(s.bytesOut)]
        j.transactions = loop.stats.transactions
        j.abortedTransactions = loop.stats.abortedTransactions
        j.addStages(loop.clock)
        return j
    }
}

/// Files being written between two commits, one per (partition, folder).
final class ArchiveStage: DurableStage {
    private struct FileKey: Hashable {
        let partition: Int32
        let day: ArchiveDay
        let hour: Int?   // nil: the invalid folder
    }
    private struct OpenFile {
        let partition: Int32
        let writer: ZstdFileWriter
        let staging: String
        let final: String
    }

    private let options: ArchiveJob.Options
    private let logger: Logger
    private let stagingDir: String
    private let leases: ArchiveLeases
    private(set) var stats = ArchiveJob.Stats()
    /// Per partition, counted when published: a batch dropped by a rebalance is read and counted
    /// again (by this instance or by the partition's next owner).
    private var pending: [Int32: ArchiveJob.Stats] = [:]
    private var open: [FileKey: OpenFile] = [:]
    private var batchBytes = 0
    private var batchStarted: ContinuousClock.Instant?

    init(options: ArchiveJob.Options, logger: Logger) throws {
        self.options = options
        self.logger = logger
        // Staging lives under the root so the publishing rename stays on one file system.
        stagingDir = options.root + "/_staging"
        try FileManager.default.createDirectory(atPath: stagingDir, withIntermediateDirectories: true)
        leases = try ArchiveLeases(root: options.root, owner: "\(options.groupId)/\(options.instanceId)")
    }

    /// Takes the leases of the partitions this instance now owns (from then on their former
    /// owner cannot publish them), drops unpublished files (their records come again from the
    /// committed offsets) and removes staging files a crashed predecessor left for those partitions.
    func restore(owned: [TopicPartitionOffset], consumer: KafkaConsumer) throws -> Restore {
        try leases.take(owned.map(\.partition))
        discardOpenFiles()
        let mine = Set(owned.map(\.partition))
        for name in (try? FileManager.default.contentsOfDirectory(atPath: stagingDir)) ?? [] {
            guard let p = Self.stagingPartition(name), mine.contains(p) else { continue }
            unlink(stagingDir + "/" + name)
        }
        return try Restore.atCommitted(owned, consumer: consumer)
    }

    func consume(_ records: [KafkaMessage]) throws {
        // A poll hands records out in runs of one partition: its counts are kept here meanwhile.
        guard var partition = records.first?.partition else { return }
        var counts = pending[partition] ?? ArchiveJob.Stats()
        defer { pending[partition] = counts }
        for m in records {
            if m.partition != partition {
                pending[partition] = counts
                partition = m.partition
                counts = pending[partition] ?? ArchiveJob.Stats()
            }
            counts.consumed += 1
            let value = m.value
            guard value.count > 0 else { counts.filteredEmpty += 1; continue }
            // Arrival time is the record's own timestamp, not the clock: a batch written again
            // after a crash puts every line where the first attempt did.
            let placement = ArchiveLayout.placement(value: value, arrivalMs: m.timestampMs > 0 ? m.timestampMs : 0)
            let key: FileKey
            var escape = false
            switch placement {
            case .hour(let day, let hour): key = FileKey(partition: m.partition, day: day, hour: hour)
            case .invalid(let day, let needsEscape): key = FileKey(partition: m.partition, day: day, hour: nil); escape = needsEscape
            }
            let writer: ZstdFileWriter
            if let file = open[key] { writer = file.writer } else {
                let file = try openFile(key, firstOffset: m.offset)
                open[key] = file
                writer = file.writer
            }
            try writer.writeArchiveLine(value, replacingNewlines: escape)
            if key.hour == nil { counts.archivedInvalid += 1 } else { counts.archived += 1 }
            counts.bytesIn += value.count
            batchBytes += value.count
            if batchStarted == nil { batchStarted = .now }
        }
    }

    func wantsTransaction(_ tick: Tick) -> Bool {
        if tick.finishing { return true }
        guard let started = batchStarted else { return !pending.isEmpty }
        return batchBytes >= options.rollBytes || tick.now - started >= options.rollInterval
    }

    /// Publishes the batch, partition by partition under its lease: finish + fsync each file,
    /// rename it into its folder, fsync the folders. A partition whose lease another instance
    /// took since (this one stalled past its group's timeouts) is dropped, files and counts: its
    /// new owner archives it from the committed offset, and this instance's offset commit fails.
    /// The folders are fsynced once, after every partition's renames: the offsets commit only
    /// after that, and the lease need not cover it (a later owner reads from those offsets anyway).
    func write(_ tick: Tick) throws {
        let byPartition = Dictionary(grouping: open.values, by: \.partition)
        var folders = Set<String>()
        for partition in Set(byPartition.keys).union(pending.keys).sorted() {
            let files = (byPartition[partition] ?? []).sorted { $0.final < $1.final }
            var bytesOut: Int64 = 0
            for file in files {
                try file.writer.finish()
                try file.writer.sync()
                bytesOut += file.writer.compressedBytes
                try file.writer.close()
            }
            let published = try leases.whileHeld(partition) {
                for file in files {
                    let folder = (file.final as NSString).deletingLastPathComponent
                    try Self.makeFolder(folder)
                    guard rename(file.staging, file.final) == 0 else {
                        throw ArchiveJobError.io("rename \(file.staging) → \(file.final)", errno)
                    }
                    folders.insert(folder)
                }
            }
            if published {
                pending[partition, default: ArchiveJob.Stats()].bytesOut += bytesOut
                pending[partition, default: ArchiveJob.Stats()].filesPublished += files.count
            } else {
                for file in files { unlink(file.staging) }
                pending[partition] = nil
                logger.warning("another instance took this partition since its batch began (this one stalled past the group's timeouts): its files are dropped, the new owner archives them",
                               metadata: ["partition": "\(options.topicPrefix + Topology.raw)[\(partition)]", "files": "\(files.count)"])
            }
        }
        for folder in folders { try Self.syncFolder(folder) }
        if !open.isEmpty {
            logger.debug("archive files published", metadata: ["files": "\(open.count)", "bytes_in": "\(batchBytes)"])
        }
        open = [:]
        batchBytes = 0
        batchStarted = nil
    }

    func committed(_ tick: Tick) {
        for p in pending.values { stats.add(p) }
        pending = [:]
    }

    private func openFile(_ key: FileKey, firstOffset: Int64) throws -> OpenFile {
        let final = ArchiveLayout.path(root: options.root, day: key.day, hour: key.hour, partition: key.partition, firstOffset: firstOffset)
        let folderTag = key.hour.map { "\(key.day)-\($0)" } ?? "\(key.day)-invalid"
        let staging = "\(stagingDir)/part-\(key.partition)-\(firstOffset)-\(folderTag)\(ArchiveLayout.inProgressSuffix)"
        let writer = try ZstdFileWriter(path: staging, level: options.compressionLevel)
        return OpenFile(partition: key.partition, writer: writer, staging: staging, final: final)
    }

    private func discardOpenFiles() {
        for file in open.values {
            try? file.writer.close()
            unlink(file.staging)
        }
        open = [:]
        pending = [:]
        batchBytes = 0
        batchStarted = nil
    }

    /// `part-<partition>-…` in the staging folder.
    static func stagingPartition(_ name: String) -> Int32? {
        let parts = name.split(separator: "-", maxSplits: 2)
        guard parts.count >= 2, parts[0] == "part" else { return nil }
        return Int32(parts[1])
    }

    /// mkdir -p, fsyncing each parent whose entry was created, so the new folder survives a crash.
    static func makeFolder(_ path: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue { return }
        let parent = (path as NSString).deletingLastPathComponent
        try makeFolder(parent)
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw ArchiveJobError.io("mkdir \(path)", errno) }
        try syncFolder(parent)
    }

    static func syncFolder(_ path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw ArchiveJobError.io("open folder \(path)", errno) }
        defer { Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw ArchiveJobError.io("fsync folder \(path)", errno) }
    }
}

public enum ArchiveJobError: Error, CustomStringConvertible {
    case io(String, Int32)

    public var description: String {
        switch self {
        case .io(let what, let code): return "archive: \(what) failed: \(String(cString: strerror(code)))"
        }
    }
}
