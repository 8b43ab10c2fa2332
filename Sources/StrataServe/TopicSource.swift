import CoreMetrics
import Foundation
import Logging
import StrataCore
import StrataKafka
import StrataRuntime
import StrataQuery
import Synchronization

/// One consumer for one topic, shared by every feed that reads it: each message is decoded once,
/// and each feed's query is evaluated once per batch, whatever the number of viewers.
///
/// Runs on its own thread (librdkafka's poll blocks). The feeds' current results go to their hubs.
final class TopicSource: Sendable {
    let topic: String
    let feeds: [(definition: FeedDefinition, hub: FeedHub)]
    let consumerConfig: KafkaConfig
    let options: ServeOptions
    let logger: Logger

    struct Status {
        var caughtUp = false
        var partitions = 0
        var rowsIn = 0
        var newestMinute: Int64?
        var lastError: String?
    }
    private let status = Mutex(Status())
    private let stopFlag = Atomic<Bool>(false)
    private let finished = Mutex<Bool>(false)
    private let rowsCounter: Counter

    init(topic: String, feeds: [(definition: FeedDefinition, hub: FeedHub)], consumerConfig: KafkaConfig,
         options: ServeOptions, logger: Logger) {
        self.topic = topic
        self.feeds = feeds
        self.consumerConfig = consumerConfig.merging(["enable.partition.eof": "true"])
        self.options = options
        self.logger = logger
        rowsCounter = MetricsRegistry.shared.counter("strata_serve_rows_consumed_total",
                                                     help: "Rows read by the shared topic consumers.", labels: ["topic": topic])
    }

    /// True once every partition has been read to its end at least once.
    var caughtUp: Bool { status.withLock { $0.caughtUp } }
    var snapshot: Status { status.withLock { $0 } }

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
        while !stopping {
            do {
                try consume()
                return
            } catch {
                let message = String(describing: error)
                status.withLock { $0.lastError = message }
                logger.warning("feed consumer failed, retrying in 2 s", metadata: ["topic": "\(topic)", "error": "\(message)"])
                for _ in 0..<20 where !stopping { Thread.sleep(forTimeInterval: 0.1) }
            }
        }
    }

    /// Per feed: the engine, the latest table of each window, and what was last published.
    final class Evaluation {
        let definition: FeedDefinition
        let hub: FeedHub
        let engine: QueryEngine
        var latest: [Int64: QueryResult] = [:]
        var lastPublished: String?
        var failed = false
        init(definition: FeedDefinition, hub: FeedHub, limits: QueryLimits, options: QueryOptions) {
            self.definition = definition
            self.hub = hub
            engine = QueryEngine(definition.query, limits: limits, options: options)
        }
    }

    private func consume() throws {
        let consumer = try KafkaConsumer(config: consumerConfig)
        defer { consumer.close() }
        let partitions = try consumer.partitionCount(topic: topic)
        let start: Int64 = options.fromBeginning ? TopicPartitionOffset.beginning : TopicPartitionOffset.end
        try consumer.assign((0..<partitions).map { TopicPartitionOffset(topic: topic, partition: Int32($0), offset: start) })
        status.withLock { $0.partitions = partitions; $0.lastError = nil }
        logger.info("feed consumer started", metadata: ["topic": "\(topic)", "partitions": "\(partitions)", "feeds": "\(feeds.map(\.definition.name))"])

        let evaluations = feeds.map { Evaluation(definition: $0.definition, hub: $0.hub, limits: options.limits, options: options.queryOptions) }
        for evaluation in evaluations {
            do throws(QueryError) { try evaluation.engine.validate() } catch {
                evaluation.failed = true
                evaluation.hub.fail(error.message)
                logger.error("feed query cannot run", metadata: ["feed": "\(evaluation.definition.name)", "error": "\(error.message)"])
            }
        }
        var atEnd = Set<Int32>()
        var newestMinute: Int64?
        let historyStart: Int64? = options.historyMs.map { Self.nowMs() - $0 }

        while !stopping {
            let batch = try consumer.poll(maxMessages: 5000, timeoutMs: 100)
            var rows: [[String: Value]] = []
            var rowPartitions: [Int] = []
            for message in batch {
                if let error = message.error {
                    if error.code == .partitionEOF { atEnd.insert(message.partition) }
                    continue
                }
                // The split's watermark markers carry progress, not rows.
                if message.isWatermarkMarker { continue }
                guard let row = Value.decodeRow(message.value) else { continue }
                let minute = row["minute"]?.exactInt
                if let historyStart, let minute, minute < historyStart { continue }
                if let minute { newestMinute = max(newestMinute ?? minute, minute) }
                rows.append(row)
                rowPartitions.append(Int(message.partition))
            }
            if !rows.isEmpty { rowsCounter.increment(by: rows.count) }
            let now = Self.nowMs()
            for evaluation in evaluations where !evaluation.failed {
                var results: [QueryResult] = []
                do throws(QueryError) {
                    if !rows.isEmpty { results = try evaluation.engine.ingest(rows, partitions: rowPartitions) }
                } catch {
                    evaluation.failed = true
                    evaluation.hub.fail(error.message)
                    evaluation.hub.broadcast("event: error\ndata: \(ResultJSON.error(error.message))\n\n")
                    logger.error("feed query failed", metadata: ["feed": "\(evaluation.definition.name)", "error": "\(error.message)"])
                    continue
                }
                results += evaluation.engine.tick(nowMs: now)
                guard !results.isEmpty else { continue }
                for result in results { evaluation.latest[result.windowStart ?? Int64.min] = result }
                guard let current = Self.current(evaluation.latest, newestMinute: newestMinute) else { continue }
                Self.prune(&evaluation.latest, keep: current.windowStart ?? Int64.min)
                let payload = ResultJSON.feedEvent(feed: evaluation.definition.name, current)
                if payload != evaluation.lastPublished {
                    evaluation.lastPublished = payload
                    evaluation.hub.publishResult(json: payload)
                }
            }
            let caughtUp = atEnd.count >= partitions
            status.withLock { s in
                s.rowsIn += rows.count
                s.newestMinute = newestMinute
                if caughtUp { s.caughtUp = true }
            }
        }
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
}
