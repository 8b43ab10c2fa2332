public import Logging
import Metrics
import StrataCore
public import StrataKafka

/// Event-time alignment of reading one topic's partitions (as Kafka Streams' timestamp-aligned
/// reading and Flink's watermark alignment do): a partition more than `aheadMs` of event time
/// ahead of the slowest partition that still has input is held back until that one catches up.
///
/// Catching up, librdkafka fetches partitions by bytes, not by event time: a sparse partition can
/// run minutes of event time ahead of a dense one, and a reader that is exact must then hold every
/// window in between open. Holding changes when rows appear, never which: lateness is decided per
/// partition by the partition's own order.
///
/// Held, not paused: pausing drops what librdkafka prefetched, and fetching it again cost a fifth
/// of a catch-up's throughput. A held partition's records wait in its librdkafka queue (fetching
/// for it stops when that queue is full) and come out in order when it is released. Records
/// already handed to the consumer queue still come, so the bound is `aheadMs` plus what librdkafka
/// had prefetched. Used by the split (over ods.raw) and by the dwm job reading ods.raw directly.
///
/// It also tells those jobs which partitions have input though they are quiet (`withInput`), so
/// that their wall-clock idle rule spares them; that holds with alignment off too.
public struct ReadAlignment {
    struct Partition {
        /// Wall clock of the last record (or of the assignment or release).
        var lastRecordAt: ContinuousClock.Instant
        /// The consumer reported the partition's end and no record came since.
        var atEnd = false
        var held = false
        /// Its starved wait ran out (reported once, until a record or a release restarts its clock).
        var starved = false
    }

    public let topic: String
    /// How far (ms of event time) a partition may run ahead of the slowest one with input; nil:
    /// alignment off (nothing is held; `withInput` still tells which partitions have input).
    public let aheadMs: Int64?
    /// A partition that delivered nothing for this long does not hold the others (it may be at its
    /// end without the consumer saying so: the local broker under-reports the end)...
    public let quietAfter: Duration
    /// ...unless the consumer knows it has unread records, or cannot tell yet (a partition not
    /// fetched yet: a broker may serve one partition's backlog before the next one's), for up to
    /// this long. A partition kept waiting for ever would stall the others.
    public let pendingWait: Duration
    /// How long a partition the broker does not serve, though it has input, is kept from being
    /// declared idle (`withInput`): long enough for a broker that serves one partition's backlog
    /// before the next one's, bounded so that a partition whose end the consumer never learns
    /// cannot hold the watermark for ever.
    public let starvedWait: Duration
    /// Owned partitions, by partition number.
    private var owned: [Int32: Partition] = [:]
    /// Partitions whose starved wait ran out since `takeStarved`.
    private var newlyStarved: [Int32] = []

    public init(topic: String, aheadMs: Int64?, quietAfter: Duration = .seconds(2), pendingWait: Duration = .seconds(10),
                starvedWait: Duration = .seconds(300)) {
        self.topic = topic
        self.aheadMs = aheadMs
        self.quietAfter = quietAfter
        self.pendingWait = pendingWait
        self.starvedWait = starvedWait
    }

    /// A new assignment: nothing stays held across one.
    public mutating func assign(_ partitions: [Int32], consumer: KafkaConsumer, now: ContinuousClock.Instant = .now) throws(KafkaError) {
        reset(partitions, now: now)
        guard aheadMs != nil else { return }
        try consumer.release(partitions.map { TopicPartitionOffset(topic: topic, partition: $0, offset: 0) })
    }

    mutating func reset(_ partitions: [Int32], now: ContinuousClock.Instant) {
        owned = Dictionary(uniqueKeysWithValues: partitions.map { ($0, Partition(lastRecordAt: now)) })
        newlyStarved = []
    }

    /// Records of `partition` were read.
    @inline(__always)
    public mutating func noteRecords(partition: Int32, now: ContinuousClock.Instant) {
        owned[partition]?.lastRecordAt = now
        owned[partition]?.atEnd = false
        owned[partition]?.starved = false
    }

    /// The consumer reached the end of `partition`: it has nothing to deliver for now.
    public mutating func noteEnd(partition: Int32) { owned[partition]?.atEnd = true }

    public var held: [Int32] { owned.filter(\.value.held).keys.sorted() }
    public var hasHeld: Bool { owned.values.contains { $0.held } }

    /// Owned partitions that have input though they may have delivered nothing for a while, which
    /// the job's wall clock must therefore not declare idle: held ones (ahead of the others), and
    /// ones not at their end with records the consumer has not handed out yet (`unread`: by its
    /// last known high watermark; nil: nothing read since the assignment), for up to
    /// `starvedWait` without a record. A broker may serve one partition's backlog before the next
    /// one's for longer than the idle timeout; declared idle meanwhile, a partition's events
    /// would be judged against minutes the others had moved past.
    /// A partition whose wait runs out is remembered for `takeStarved`.
    public mutating func withInput(unread: (Int32) -> Bool?, now: ContinuousClock.Instant = .now) -> [Int32] {
        var busy: [Int32] = []
        for (p, s) in owned {
            if s.held { busy.append(p); continue }
            guard !s.atEnd, unread(p) != false else { continue }
            if now - s.lastRecordAt < starvedWait {
                busy.append(p)
            } else if !s.starved {
                owned[p]!.starved = true
                newlyStarved.append(p)
            }
        }
        return busy.sorted()
    }

    /// `withInput`, asking `consumer` what it has not handed out yet.
    public mutating func withInput(consumer: KafkaConsumer, now: ContinuousClock.Instant = .now) -> [Int32] {
        withInput(unread: unread(in: consumer), now: now)
    }

    /// The partitions whose starved wait ran out since the last call, each once per spell
    /// without records: from then on the job's wall clock may declare them idle.
    public mutating func takeStarved() -> [Int32] {
        defer { newlyStarved = [] }
        return newlyStarved.sorted()
    }

    /// Logs (a warning) and counts (`strata_alignment_starved_total`) each partition whose
    /// starved wait ran out: the broker served it nothing for that long though the consumer
    /// knew of unread records, so its events may now be judged against minutes the other
    /// partitions moved past. An operator should look at the broker (or raise the wait).
    public mutating func reportStarved(job: String, logger: Logger) {
        let starved = takeStarved()
        guard !starved.isEmpty else { return }
        MetricsRegistry.shared.counter("strata_alignment_starved_total",
                                       help: "Partitions with unread records the broker served nothing of for the starved wait (then allowed to go idle)",
                                       labels: ["job": job]).increment(by: starved.count)
        logger.warning("the broker served nothing of partitions with unread records for the starved wait: they may now be declared idle, and their events judged late against the others' minutes",
                       metadata: ["partitions": "\(starved.map { "\(topic)[\($0)]" }.joined(separator: ","))",
                                  "starved_wait_s": "\(starvedWait.components.seconds)"])
    }

    /// Whether `consumer` has records of a partition it has not handed out yet (nil: unknown).
    private func unread(in consumer: KafkaConsumer) -> (Int32) -> Bool? {
        let topic = topic
        return { consumer.hasUnreadRecords(topic: topic, partition: $0) }
    }

    /// Decides which partitions to hold from each one's highest event time read (`maxTs`,
    /// Int64.min: none yet), whether the job declared it idle, and whether it has unread records
    /// (`unread`, nil: unknown). The slowest partition with input holds the others: one at its end,
    /// idle, or quiet without unread records does not count; an unread partition with input
    /// pending holds the others until it delivers. Returns the partitions whose state changes; a
    /// released partition's quiet clock restarts with reading.
    public mutating func decide(maxTs: (Int32) -> Int64, idle: (Int32) -> Bool = { _ in false },
                                unread: (Int32) -> Bool? = { _ in false },
                                now: ContinuousClock.Instant = .now) -> (hold: [Int32], release: [Int32]) {
        guard let aheadMs else { return ([], []) }
        var slowest = Int64.max
        for (p, s) in owned where !s.held && !s.atEnd && !idle(p) {
            let quiet = now - s.lastRecordAt
            guard quiet < quietAfter || (quiet < pendingWait && unread(p) != false) else { continue }
            slowest = min(slowest, maxTs(p))
        }
        var hold: [Int32] = [], release: [Int32] = []
        for p in owned.keys.sorted() {
            let s = owned[p]!, ts = maxTs(p)
            let ahead = slowest != .max && ts != .min && (slowest == .min || ts - slowest > aheadMs)
            if ahead && !s.held && !s.atEnd {
                owned[p]!.held = true
                hold.append(p)
            } else if !ahead && s.held {
                owned[p]!.held = false
                owned[p]!.lastRecordAt = now
                owned[p]!.starved = false
                release.append(p)
            }
        }
        return (hold, release)
    }

    /// `decide`, then holds and releases on the consumer. Every owned partition not held is
    /// forwarded again at each call (idempotent): once held, librdkafka leaves its forwarding to
    /// us, and a revoke clears it.
    @discardableResult
    public mutating func align(consumer: KafkaConsumer, maxTs: (Int32) -> Int64, idle: (Int32) -> Bool = { _ in false },
                               now: ContinuousClock.Instant = .now) throws(KafkaError) -> (hold: [Int32], release: [Int32]) {
        guard aheadMs != nil else { return ([], []) }
        let topic = topic
        let changes = decide(maxTs: maxTs, idle: idle, unread: unread(in: consumer), now: now)
        let tps = owned.map { (TopicPartitionOffset(topic: topic, partition: $0.key, offset: 0), $0.value.held) }
        try consumer.hold(changes.hold.map { TopicPartitionOffset(topic: topic, partition: $0, offset: 0) })
        try consumer.release(tps.filter { !$0.1 }.map(\.0))
        return changes
    }
}
