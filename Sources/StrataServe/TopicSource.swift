import CoreMetrics
import Foundation
import Logging
import StrataCore
import StrataKafka
import StrataRuntime
import StrataQuery
import Synchronization

/// One consumer for one topic, shared by every query that reads it: each message is decoded once,
/// and each query is evaluated once per batch, whatever the number of its viewers. The queries
/// there from the start run as one `QuerySet` (each row's identity and revision looked up once
/// for all of them).
///
/// Queries come and go while it runs (a feed file edited, a WebSocket viewer's ad-hoc query): one
/// attached later is first primed from the topic's history on a short-lived reader of its own, up
/// to the shared consumer's position at the moment it was attached, then joins the live batches,
/// so it shows the same result as if it had been there from the start.
///
/// Runs on its own thread (librdkafka's poll blocks). The queries' current results go to their hubs.
final class TopicSource: Sendable {
    let topic: String
    let consumerConfig: KafkaConfig
    let options: ServeOptions
    let logger: Logger

    struct Status {
        var caughtUp = false
        var partitions = 0
        var rowsIn = 0
        var newestMinute: Int64?
        var lastError: String?
        var queries = 0
    }
    private let status = Mutex(Status())
    private let stopFlag = Atomic<Bool>(false)
    private let finished = Mutex<Bool>(false)
    /// Queries attached or detached since the consumer thread last looked.
    private let changes = Mutex<(attach: [Evaluation], detach: Set<ObjectIdentifier>)>(([], []))
    private let rowsCounter: Counter

    init(topic: String, feeds: [(definition: FeedDefinition, hub: FeedHub)], consumerConfig: KafkaConfig,
         options: ServeOptions, logger: Logger) {
        self.topic = topic
        self.consumerConfig = consumerConfig.merging(["enable.partition.eof": "true"])
        self.options = options
        self.logger = logger
        rowsCounter = MetricsRegistry.shared.counter("strata_serve_rows_consumed_total",
                                                     help: "Rows read by the shared topic consumers.", labels: ["topic": topic])
        for feed in feeds { attach(feed.definition, hub: feed.hub) }
    }

    /// True once every partition has been read to its end at least once.
    var caughtUp: Bool { status.withLock { $0.caughtUp } }
    var snapshot: Status { status.withLock { $0 } }

    /// Starts evaluating `definition` into `hub` (from the topic's history when the consumer runs).
    func attach(_ definition: FeedDefinition, hub: FeedHub) {
        let evaluation = Evaluation(definition: definition, hub: hub, limits: options.limits, options: options.queryOptions)
        changes.withLock { $0.attach.append(evaluation) }
    }

    /// Stops evaluating into `hub`.
    func detach(_ hub: FeedHub) {
        changes.withLock { c in
            c.attach.removeAll { $0.hub === hub }
            c.detach.insert(ObjectIdentifier(hub))
        }
    }

    func start() {
        let thread = Thread { [self] in
            self.run()
            self.finished.withLock { $0 = true }
        }
        thread.name = "strata-serve-\(topic)"
        thread.start()
    }

    func stop() { stopFlag.store(true, ordering: .relaxed) }
    var isFinished: Bool { finished.withLock { $0 } }

    private var stopping: Bool { stopFlag.load(ordering: .relaxed) }

    private func run() {
        var evaluations: [Evaluation] = []
        while !stopping {
            do {
                try consume(&evaluations)
                return
            } catch {
                let message = String(describing: error)
                status.withLock { $0.lastError = message }
                logger.warning("feed consumer failed, retrying in 2 s", metadata: ["topic": "\(topic)", "error": "\(message)"])
                for _ in 0..<20 where !stopping { Thread.sleep(forTimeInterval: 0.1) }
                // A new consumer starts over from the history: so does every query.
                let restart = evaluations.map { Evaluation(definition: $0.definition, hub: $0.hub, limits: options.limits, options: options.queryOptions) }
                evaluations = []
                changes.withLock { $0.attach.insert(contentsOf: restart, at: 0) }
            }
        }
    }

    /// One query's evaluation: its engine, the latest table of each window, what was last
    /// published. Until it is primed, the history reader owns it; the consumer thread only
    /// keeps the live rows it will need (`pending`). After, the consumer thread alone uses it.
    final class Evaluation: @unchecked Sendable {
        let definition: FeedDefinition
        let hub: FeedHub
        /// Its own engine, or (`member`) one of the consumer's `QuerySet`, which then drives it.
        var engine: QueryEngine
        var member = false
        var latest: [Int64: QueryResult] = [:]
        var lastPublished: String?
        var failed = false
        var newestMinute: Int64?
        /// Set by the history reader when it is done.
        let primed = Atomic<Bool>(false)
        /// Set when the query is detached: its history reader stops, nothing more is published.
        let cancelled = Atomic<Bool>(false)
        var live = false
        var pending: [(rows: RowBatch, newestMinute: Int64?)] = []

        init(definition: FeedDefinition, hub: FeedHub, limits: QueryLimits, options: QueryOptions) {
            self.definition = definition
            self.hub = hub
            engine = QueryEngine(definition.query, limits: limits, options: options)
        }
    }

    private func consume(_ evaluations: inout [Evaluation]) throws {
        let consumer = try KafkaConsumer(config: consumerConfig)
        defer { consumer.close() }
        let partitions = try consumer.partitionCount(topic: topic)
        let historyStart: Int64? = options.historyMs.map { Self.nowMs() - $0 }
        let start = try startPositions(consumer, partitions: partitions, historyStart: historyStart)
        try consumer.assign(start)
        // The next offset the consumer will hand out per partition: where a query attached now
        // stops reading history and starts taking live batches.
        var next: [Int32: Int64] = [:]
        for position in start { next[position.partition] = position.offset }
        status.withLock { $0.partitions = partitions; $0.lastError = nil }
        logger.info("feed consumer started", metadata: ["topic": "\(topic)", "partitions": "\(partitions)",
                                                         "from": "\(historyStart.map(Self.iso) ?? (options.fromBeginning ? "beginning" : "end"))"])

        var atEnd = Set<Int32>()
        var newestMinute: Int64?
        var first = true

        // Every message is decoded once, into the fields the attached queries read (see RowLayout).
        var layout = RowLayout([])
        // The queries attached before the first poll: their identities are tracked once for all.
        var set: QuerySet?
        while !stopping {
            let before = evaluations.count
            applyChanges(&evaluations, next: next, partitions: partitions, historyStart: historyStart, immediate: first, set: &set)
            // Rebuilt when queries come or go (a new one's fields are missing; a gone one's are not needed).
            if evaluations.count != before || evaluations.contains(where: { !layout.covers($0.engine.query) }) {
                layout = RowLayout(evaluations.map(\.engine.query))
            }
            first = false
            let batch = try consumer.poll(maxMessages: 5000, timeoutMs: 100)
            var rows = RowBatch(layout: layout, capacity: batch.count)
            var batchNewest: Int64?
            for message in batch {
                if let error = message.error {
                    if error.code == .partitionEOF {
                        atEnd.insert(message.partition)
                        next[message.partition] = max(next[message.partition] ?? 0, message.offset)
                    }
                    // Feeds without those rows would be wrong without a word: the feed's status
                    // shows the error while the consumer retries from the history.
                    try message.throwIfRecordsLost()
                    continue
                }
                next[message.partition] = message.offset + 1
                // The split's watermark markers carry progress, not rows.
                if message.isWatermarkMarker { continue }
                guard let minute = Self.decode(message.value, partition: Int(message.partition), into: &rows, historyStart: historyStart) else { continue }
                if let minute { batchNewest = max(batchNewest ?? minute, minute) }
            }
            if let batchNewest { newestMinute = max(newestMinute ?? batchNewest, batchNewest) }
            if !rows.isEmpty { rowsCounter.increment(by: rows.count) }
            let now = Self.nowMs()
            if let set, !set.engines.isEmpty {
                let out = rows.isEmpty ? [] : set.ingest(rows)
                let ticks = set.tick(nowMs: now)
                for (i, engine) in set.engines.enumerated() {
                    guard let evaluation = evaluations.first(where: { $0.engine === engine }) else { continue }
                    publish(evaluation, results: (out.isEmpty ? [] : out[i]) + ticks[i], newestMinute: batchNewest)
                }
            }
            for evaluation in evaluations where !evaluation.failed && !evaluation.member {
                if !evaluation.live {
                    if !rows.isEmpty { evaluation.pending.append((rows, batchNewest)) }
                    guard evaluation.primed.load(ordering: .acquiring) else { continue }
                    evaluation.live = true
                    let pending = evaluation.pending
                    evaluation.pending = []
                    for chunk in pending {
                        evaluate(evaluation, rows: chunk.rows, newestMinute: chunk.newestMinute, nowMs: now)
                    }
                    evaluate(evaluation, rows: RowBatch(layout: layout), newestMinute: nil, nowMs: now)
                    continue
                }
                evaluate(evaluation, rows: rows, newestMinute: batchNewest, nowMs: now)
            }
            let caughtUp = atEnd.count >= partitions
            status.withLock { s in
                s.rowsIn += rows.count
                if let newestMinute { s.newestMinute = newestMinute }
                s.queries = evaluations.count
                if caughtUp { s.caughtUp = true }
            }
        }
    }

    /// Where the shared consumer starts: the history's start found by time (the broker's
    /// ListOffsets), else the beginning or the end; each as a concrete offset.
    private func startPositions(_ consumer: KafkaConsumer, partitions: Int, historyStart: Int64?) throws -> [TopicPartitionOffset] {
        var positions: [TopicPartitionOffset] = []
        var byTime: [TopicPartitionOffset]?
        if options.fromBeginning, let historyStart {
            // A row of minute m is produced at or after m, so seeking a minute earlier than the
            // history's start misses none (a minute of slack for clocks).
            do { byTime = try consumer.offsetsForTimes(topic: topic, partitions: partitions, timestampMs: historyStart - 60_000) } catch {
                logger.warning("the broker cannot find offsets by time; reading the topic from its beginning",
                               metadata: ["topic": "\(topic)", "error": "\(error)"])
            }
        }
        for p in 0..<partitions {
            let partition = Int32(p)
            let marks = try consumer.watermarks(topic: topic, partition: partition)
            var offset: Int64
            if let byTime {
                let found = byTime.first { $0.partition == partition }?.offset ?? TopicPartitionOffset.end
                offset = min(max(found == TopicPartitionOffset.end ? marks.high : found, marks.low), marks.high)
            } else {
                // The first record by its offset, not the broker's low watermark (see
                // `TopicPartitionOffset.first`: Tansu's can lie past the first batches).
                offset = options.fromBeginning ? TopicPartitionOffset.first : marks.high
            }
            positions.append(TopicPartitionOffset(topic: topic, partition: partition, offset: offset))
        }
        return positions
    }

    /// Takes in attached and detached queries. At start (`immediate`) new queries go live at
    /// once; later ones are primed from history on a reader thread of their own.
    private func applyChanges(_ evaluations: inout [Evaluation], next: [Int32: Int64], partitions: Int,
                              historyStart: Int64?, immediate: Bool, set: inout QuerySet?) {
        let (added, removed) = changes.withLock { c in
            defer { c = ([], []) }
            return (c.attach, c.detach)
        }
        if !removed.isEmpty {
            evaluations.removeAll { evaluation in
                guard removed.contains(ObjectIdentifier(evaluation.hub)) else { return false }
                evaluation.cancelled.store(true, ordering: .relaxed)
                if evaluation.member { set?.remove(evaluation.engine) }
                return true
            }
        }
        for evaluation in added {
            do throws(QueryError) { try evaluation.engine.validate() } catch {
                evaluation.failed = true
                evaluation.hub.fail(error.message)
                logger.error("feed query cannot run", metadata: ["feed": "\(evaluation.definition.name)", "error": "\(error.message)"])
            }
            evaluations.append(evaluation)
            if evaluation.failed { continue }
            if immediate {
                evaluation.live = true
                let query = evaluation.engine.query
                let shared = set ?? QuerySet(layout: RowLayout([query]), events: query.readsEvents, options: options.queryOptions)
                set = shared
                evaluation.engine = shared.add(query, limits: options.limits)
                evaluation.member = true
                continue
            }
            let until = (0..<partitions).map { TopicPartitionOffset(topic: topic, partition: Int32($0), offset: next[Int32($0)] ?? 0) }
            let thread = Thread { [self] in
                prime(evaluation, until: until, historyStart: historyStart)
                evaluation.primed.store(true, ordering: .releasing)
            }
            thread.name = "strata-serve-prime"
            thread.start()
        }
    }

    /// Reads the topic's history up to `until` (exclusive, per partition) into a new query.
    private func prime(_ evaluation: Evaluation, until: [TopicPartitionOffset], historyStart: Int64?) {
        let started = ContinuousClock.now
        var rowsRead = 0
        do {
            let consumer = try KafkaConsumer(config: consumerConfig)
            defer { consumer.close() }
            let start = try startPositions(consumer, partitions: until.count, historyStart: historyStart)
            var remaining = Set<Int32>()
            var limit: [Int32: Int64] = [:]
            for (from, to) in zip(start, until) where from.offset < to.offset {
                remaining.insert(from.partition)
                limit[from.partition] = to.offset
            }
            try consumer.assign(start.filter { remaining.contains($0.partition) })
            let layout = RowLayout([evaluation.engine.query])
            while !remaining.isEmpty && !stopping && !evaluation.cancelled.load(ordering: .relaxed) {
                let batch = try consumer.poll(maxMessages: 5000, timeoutMs: 100)
                var rows = RowBatch(layout: layout, capacity: batch.count)
                var batchNewest: Int64?
                for message in batch {
                    let partition = message.partition
                    guard remaining.contains(partition), let end = limit[partition] else { continue }
                    if let error = message.error {
                        try message.throwIfRecordsLost()
                        if error.code == .partitionEOF && message.offset >= end { remaining.remove(partition) }
                        continue
                    }
                    if message.offset >= end { remaining.remove(partition); continue }
                    if message.offset == end - 1 { remaining.remove(partition) }
                    if message.isWatermarkMarker { continue }
                    guard let minute = Self.decode(message.value, partition: Int(partition), into: &rows, historyStart: historyStart) else { continue }
                    if let minute { batchNewest = max(batchNewest ?? minute, minute) }
                }
                rowsRead += rows.count
                if !rows.isEmpty { evaluate(evaluation, rows: rows, newestMinute: batchNewest, nowMs: nil) }
                if evaluation.failed { return }
            }
            logger.info("query primed from history", metadata: ["feed": "\(evaluation.definition.name)", "rows": "\(rowsRead)",
                                                                 "seconds": "\((ContinuousClock.now - started).seconds)"])
        } catch {
            // The query goes live with what it has; its windows fill from the live rows.
            logger.warning("reading history for a new query failed", metadata: ["feed": "\(evaluation.definition.name)", "error": "\(error)"])
        }
    }

    /// Feeds rows to one query (its own engine) and publishes its current result if it changed.
    /// `nowMs` nil: no wall-clock tick (history). `newestMinute`: the newest `minute` among `rows`.
    private func evaluate(_ evaluation: Evaluation, rows: RowBatch, newestMinute: Int64?, nowMs: Int64?) {
        guard !evaluation.failed, !evaluation.cancelled.load(ordering: .relaxed) else { return }
        var results: [QueryResult] = []
        do throws(QueryError) {
            if !rows.isEmpty { results = try evaluation.engine.ingest(rows) }
        } catch {
            fail(evaluation, error)
            return
        }
        if let nowMs { results += evaluation.engine.tick(nowMs: nowMs) }
        publish(evaluation, results: results, newestMinute: newestMinute)
    }

    private func fail(_ evaluation: Evaluation, _ error: QueryError) {
        evaluation.failed = true
        evaluation.hub.fail(error.message)
        evaluation.hub.broadcast(.error(ResultJSON.error(error.message)))
        logger.error("feed query failed", metadata: ["feed": "\(evaluation.definition.name)", "error": "\(error.message)"])
    }

    /// Takes in what a query emitted for a batch and publishes its current result if it changed.
    private func publish(_ evaluation: Evaluation, results: [QueryResult], newestMinute: Int64?) {
        guard !evaluation.failed, !evaluation.cancelled.load(ordering: .relaxed) else { return }
        if let error = evaluation.engine.failure { return fail(evaluation, error) }
        if let newestMinute { evaluation.newestMinute = max(evaluation.newestMinute ?? newestMinute, newestMinute) }
        guard !results.isEmpty else { return }
        for result in results { evaluation.latest[result.windowStart ?? Int64.min] = result }
        guard let current = Self.current(evaluation.latest, newestMinute: evaluation.newestMinute) else { return }
        Self.prune(&evaluation.latest, keep: current.windowStart ?? Int64.min)
        let payload = ResultJSON.feedEvent(feed: evaluation.definition.name, current)
        if payload != evaluation.lastPublished {
            evaluation.lastPublished = payload
            evaluation.hub.publishResult(json: payload)
        }
    }

    /// Decodes a message into the next row of `rows`, unless it does not decode or its `minute` is
    /// older than the history. nil: no row added; else the row's minute, if it has one.
    static func decode(_ bytes: UnsafeRawBufferPointer, partition: Int, into rows: inout RowBatch, historyStart: Int64?) -> Int64?? {
        guard rows.append(json: bytes, partition: partition) else { return nil }
        let minute = rows.value(rows.count - 1, "minute").exactInt
        if let historyStart, let minute, minute < historyStart {
            rows.removeLast()
            return nil
        }
        return .some(minute)
    }

    /// "Now": the window holding the newest minute seen with the earliest end (for SLIDING, the
    /// window that ends right after it); without such a window, the one that ends last.
    static func current(_ latest: [Int64: QueryResult], newestMinute: Int64?) -> QueryResult? {
        let all = latest.values
        if let newestMinute,
           let holding = all.filter({ ($0.windowStart ?? Int64.min) <= newestMinute && ($0.windowEnd ?? Int64.max) > newestMinute })
            .min(by: { ($0.windowEnd ?? Int64.max) < ($1.windowEnd ?? Int64.max) }) {
            return holding
        }
        return all.max { ($0.windowEnd ?? Int64.min) < ($1.windowEnd ?? Int64.min) }
    }

    /// Drops final windows that ended before the current one (they will not change any more).
    static func prune(_ latest: inout [Int64: QueryResult], keep: Int64) {
        guard latest.count > 64 else { return }
        let keepEnd = latest[keep]?.windowEnd ?? Int64.max
        for (start, result) in latest where result.final && (result.windowEnd ?? Int64.max) < keepEnd {
            latest[start] = nil
        }
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    static func iso(_ ms: Int64) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
