import Foundation
public import Logging
import StrataCore
import StrataKafka
public import StrataRuntime
public import StrataDims
import StrataQuery

/// The sink job: `dws.content` → the `dws_minute` table (SQLite or PostgreSQL), the OLAP table
/// `strata olap` and `strata reconcile` read; with a DWM table also `dwm.content_user` →
/// `dwm_minute`, for the questions about users.
///
/// Each commit upserts the rows consumed since the last one in one store transaction that keeps
/// the highest `rev` per (minute, content_id), then commits the consumer offsets. A crash between
/// the two delivers those rows again, and the upsert ignores what is already there: replays and
/// out-of-order revisions never replace a higher revision. For the same reason a write the table
/// could not take (PostgreSQL restarting) is asked again for up to `storeWait` before the job
/// gives up and exits.
public final class SinkJob: StreamJob {
    public struct Options: Sendable {
        public var brokers: String
        public var kafka: [String: String] = [:]
        public var groupId = Topology.sinkGroup
        public var instanceId = "0"
        public var topicPrefix = ""
        public var untilIdle: Duration?
        /// In `strata run`: stop idle only after the job upstream has finished.
        public var idleOrder = IdleOrder()
        public var staticMembership = false
        /// Rows per store transaction at most…
        public var maxRows = 20_000
        /// …and how long rows may wait for one (the table's freshness).
        public var flushInterval: Duration = .seconds(1)
        public var batchSize = 20_000
        /// How long a write waits for a table that cannot take it, asking again, before the job
        /// exits to be restarted. The loop does not poll while a write waits: past the consumer's
        /// max.poll.interval.ms (10 s) the member leaves its group, its offset commit after the
        /// write fails, and it rejoins and reads those rows again, which the upsert ignores
        /// (`SinkOutageTests`).
        public var storeWait: Duration = .seconds(120)

        public init(brokers: String) { self.brokers = brokers }
    }

    public struct Stats: Sendable {
        public var consumed = 0
        /// Rows handed to the table (each either stored or older than what the table holds).
        public var stored = 0
        /// …of which DWM rows (the rest are DWS rows).
        public var storedDWM = 0
        /// Rows that replaced or created a stored row.
        public var changed = 0
        /// Records that are not DWS rows (bad JSON, missing fields): skipped, counted, logged.
        public var rejected = 0
        /// Watermark markers and other null-key control records.
        public var markers = 0
        /// Table writes asked again while the table could not take them.
        public var storeRetries = 0
    }

    public let name = "sink"
    private let stage: SinkStage
    private let loop: TransactionalLoop

    /// `dwm`: also store `dwm.content_user` in it (nil: DWS only).
    public init(options: Options, table: any DWSTable, dwm: (any DWMTable)? = nil,
                logger: Logger = Logger(label: "strata.sink")) throws {
        try table.migrate()
        try dwm?.migrate()
        stage = SinkStage(options: options, table: table, dwm: dwm, logger: logger)
        var inputs = [options.topicPrefix + Topology.dws]
        if dwm != nil { inputs.append(options.topicPrefix + Topology.dwm) }
        var loopOptions = TransactionalLoop.Options(job: name, brokers: options.brokers, groupId: options.groupId,
                                                    inputs: inputs)
        loopOptions.kafka = options.kafka
        loopOptions.instanceId = options.instanceId
        loopOptions.topicPrefix = options.topicPrefix
        loopOptions.untilIdle = options.untilIdle
        loopOptions.idleOrder = options.idleOrder
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
        j.outcomes = ["stored": s.stored, "rejected": s.rejected, "markers": s.markers]
        j.details = ["stored": ["dws": s.stored - s.storedDWM, "dwm": s.storedDWM], "store": ["retries": s.storeRetries]]
        j.written = ["rows_changed": s.changed]
        j.transactions = loop.stats.transactions
        j.abortedTransactions = loop.stats.abortedTransactions
        j.addStages(loop.clock)
        return j
    }
}

final class SinkStage: DurableStage {
    private let options: SinkJob.Options
    private let table: any DWSTable
    private let dwm: (any DWMTable)?
    private let logger: Logger
    private(set) var stats = SinkJob.Stats()
    private var pending = SinkJob.Stats()
    private var rows: [DWSTableRow] = []
    private var dwmRows: [DWMTableRow] = []
    private var firstPendingAt: ContinuousClock.Instant?
    private var topicNames = TopicNames()
    private let dwmTopic: String
    private let storeWait: StoreWait

    init(options: SinkJob.Options, table: any DWSTable, dwm: (any DWMTable)?, logger: Logger) {
        self.options = options
        self.table = table
        self.dwm = dwm
        self.logger = logger
        dwmTopic = options.topicPrefix + Topology.dwm
        storeWait = StoreWait(limit: options.storeWait, subject: "warehouse table", logger: logger)
    }

    /// Rows not yet stored are dropped and read again from the committed offsets.
    func restore(owned: [TopicPartitionOffset], consumer: KafkaConsumer) throws -> Restore {
        rows.removeAll(keepingCapacity: true)
        dwmRows.removeAll(keepingCapacity: true)
        pending = SinkJob.Stats()
        firstPendingAt = nil
        return try Restore.atCommitted(owned, consumer: consumer)
    }

    func consume(_ records: [KafkaMessage]) throws {
        for m in records {
            pending.consumed += 1
            if m.isWatermarkMarker { pending.markers += 1; continue }
            if dwm != nil, topicNames.of(m) == dwmTopic {
                guard let row = Self.decodeDWM(m.value) else { reject(m, as: "DWM"); continue }
                dwmRows.append(row)
                pending.stored += 1
                pending.storedDWM += 1
                continue
            }
            guard let row = Self.decode(m.value) else { reject(m, as: "DWS"); continue }
            rows.append(row)
            pending.stored += 1
        }
        if firstPendingAt == nil, pending.consumed > 0 { firstPendingAt = .now }
    }

    func wantsTransaction(_ tick: Tick) -> Bool {
        if tick.finishing { return true }
        guard let first = firstPendingAt else { return false }
        return rows.count + dwmRows.count >= options.maxRows || tick.now - first >= options.flushInterval || tick.inputPaused
    }

    /// Each table's upsert is one transaction, so one that failed is asked again whole; one that
    /// committed but whose answer was lost is harmless to repeat (its rows then count as unchanged).
    func write(_ tick: Tick) throws {
        let before = storeWait.retries
        defer { stats.storeRetries += storeWait.retries - before }
        if !rows.isEmpty {
            pending.changed += try storeWait.run("upsert of \(rows.count) dws rows") { try table.upsert(rows) }
            rows.removeAll(keepingCapacity: true)
        }
        if let dwm, !dwmRows.isEmpty {
            pending.changed += try storeWait.run("upsert of \(dwmRows.count) dwm rows") { try dwm.upsert(dwmRows) }
            dwmRows.removeAll(keepingCapacity: true)
        }
    }

    /// A record that is not a row of its topic: skipped, counted, logged with its start.
    private func reject(_ m: KafkaMessage, as kind: String) {
        pending.rejected += 1
        logger.warning("not a \(kind) row; skipped", metadata: [
            "partition": "\(m.partition)", "offset": "\(m.offset)",
            "value": "\(String(decoding: m.value.prefix(200), as: UTF8.self))"])
    }

    func committed(_ tick: Tick) {
        stats.consumed += pending.consumed
        stats.stored += pending.stored
        stats.storedDWM += pending.storedDWM
        stats.changed += pending.changed
        stats.rejected += pending.rejected
        stats.markers += pending.markers
        pending = SinkJob.Stats()
        firstPendingAt = nil
    }

    /// A `dws.content` value as a table row; nil when a required field is missing or mistyped.
    static func decode(_ bytes: UnsafeRawBufferPointer) -> DWSTableRow? {
        guard let o = Value.decodeRow(bytes) else { return nil }
        func int(_ k: String) -> Int64? { o[k]?.exactInt }
        guard let minute = int("minute"), let contentId = o["content_id"]?.string, let rev = int("rev") else { return nil }
        let isFinal: Bool
        switch o["final"] {
        case .bool(let b)?: isFinal = b
        case nil, .null?: isFinal = false
        default: return nil
        }
        return DWSTableRow(minute: minute, contentId: contentId,
                           expose: int("expose") ?? 0, click: int("click") ?? 0, play: int("play") ?? 0,
                           playMs: int("play_ms") ?? 0, like: int("like") ?? 0, share: int("share") ?? 0,
                           comment: int("comment") ?? 0, report: int("report") ?? 0, uv: int("uv") ?? 0,
                           rev: rev, isFinal: isFinal, emittedAt: int("emitted_at") ?? 0)
    }

    /// A `dwm.content_user` value as a table row; nil when a required field is missing or mistyped.
    static func decodeDWM(_ bytes: UnsafeRawBufferPointer) -> DWMTableRow? {
        guard let o = Value.decodeRow(bytes) else { return nil }
        func int(_ k: String) -> Int64? { o[k]?.exactInt }
        guard let minute = int("minute"), let contentId = o["content_id"]?.string, let userId = o["user_id"]?.string,
              let rev = int("rev") else { return nil }
        let isFinal: Bool
        switch o["final"] {
        case .bool(let b)?: isFinal = b
        case nil, .null?: isFinal = false
        default: return nil
        }
        return DWMTableRow(minute: minute, contentId: contentId, userId: userId,
                           expose: int("expose") ?? 0, click: int("click") ?? 0, play: int("play") ?? 0,
                           playMs: int("play_ms") ?? 0, like: int("like") ?? 0, share: int("share") ?? 0,
                           comment: int("comment") ?? 0, report: int("report") ?? 0, strategy: o["strategy"]?.string,
                           rev: rev, isFinal: isFinal, emittedAt: int("emitted_at") ?? 0)
    }
}
