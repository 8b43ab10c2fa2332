import StrataCore
import StrataKafka

/// Event-time progress of the `ods.raw` partitions one split instance owns: what it stamps on each
/// routed record and announces in watermark markers (StrataCore's `SourceProgress`).
///
/// The highest `ts` of a partition up to a record is a function of the partition's contents alone,
/// so it must survive restarts and rebalances: it is checkpointed per partition, with the offset it
/// applies to, in `split.checkpoint` inside the transaction that commits that offset.
struct RawProgress {
    struct Partition {
        /// Highest ts read up to the consumer position (Int64.min: none yet).
        var maxTs = Int64.min
        /// Wall clock of the last record (or of the assignment): drives the idle flag.
        var lastRecordAt: ContinuousClock.Instant
        var idle = false
    }

    /// Indexed by partition number (a handful to a few hundred): no hashing per record.
    private var slots: [Partition?] = []
    /// Partition count of ods.raw (markers tell readers how many partitions to wait for).
    let rawPartitionCount: Int
    /// Progress or idleness changed since the last marker.
    private(set) var changedSinceMarker = false

    init(rawPartitionCount: Int) { self.rawPartitionCount = rawPartitionCount }

    /// The owned partitions and their progress.
    var partitions: [Int32: Partition] {
        var out: [Int32: Partition] = [:]
        for (i, p) in slots.enumerated() { if let p { out[Int32(i)] = p } }
        return out
    }

    /// Replaces the owned partitions (after a rebalance) with their checkpointed progress.
    mutating func reset(to owned: [Int32: Int64], now: ContinuousClock.Instant) {
        slots = [Partition?](repeating: nil, count: max(rawPartitionCount, Int(owned.keys.max() ?? -1) + 1))
        for (p, maxTs) in owned { slots[Int(p)] = Partition(maxTs: maxTs, lastRecordAt: now) }
        changedSinceMarker = true
    }

    /// Replaces a partition's progress (its checkpoint, once the first record shows where reading
    /// really starts).
    mutating func restore(partition: Int32, maxTs: Int64, now: ContinuousClock.Instant) {
        let i = Int(partition)
        if i >= slots.count { slots += [Partition?](repeating: nil, count: i + 1 - slots.count) }
        if slots[i] == nil { slots[i] = Partition(lastRecordAt: now) }
        slots[i]!.maxTs = maxTs
        changedSinceMarker = true
    }

    /// Notes a record of `partition` with event time `ts` (nil: no usable ts) and returns the
    /// partition's max ts including it: the record's stamp.
    @inline(__always)
    mutating func note(partition: Int32, ts: Int64?, now: ContinuousClock.Instant) -> Int64 {
        let i = Int(partition)
        if i >= slots.count { slots += [Partition?](repeating: nil, count: i + 1 - slots.count) }
        if slots[i] == nil { slots[i] = Partition(lastRecordAt: now) }
        slots[i]!.lastRecordAt = now
        if slots[i]!.idle { slots[i]!.idle = false; changedSinceMarker = true }
        if let ts, ts <= SourceProgress.maxTs, ts > slots[i]!.maxTs { slots[i]!.maxTs = ts; changedSinceMarker = true }
        return slots[i]!.maxTs
    }

    /// Flags partitions without records for `timeout` as idle; true when a flag changed. A
    /// partition in `hasInput` (held by event-time alignment, or not served yet by the broker
    /// though it has records: `ReadAlignment.withInput`) is not idle.
    mutating func updateIdle(now: ContinuousClock.Instant, timeout: Duration, hasInput: [Int32] = []) -> Bool {
        var changed = false
        for i in slots.indices where slots[i].map({ !$0.idle && now - $0.lastRecordAt >= timeout }) ?? false
            && !hasInput.contains(Int32(i)) {
            slots[i]!.idle = true
            changed = true
        }
        if changed { changedSinceMarker = true }
        return changed
    }

    mutating func markerSent() { changedSinceMarker = false }

    /// Reading `partitions` starts again (released by alignment): their idle clocks restart.
    mutating func restartIdleClocks(_ partitions: [Int32], now: ContinuousClock.Instant) {
        for p in partitions where Int(p) < slots.count && slots[Int(p)] != nil { slots[Int(p)]!.lastRecordAt = now }
    }

    var marker: SourceProgress.Marker {
        SourceProgress.Marker(rawPartitions: rawPartitionCount, progress: slots.indices.compactMap { i in
            slots[i].map { SourceProgress.PartitionProgress(partition: Int32(i), maxTs: $0.maxTs, idle: $0.idle) }
        })
    }

    func maxTs(of partition: Int32) -> Int64? {
        Int(partition) < slots.count ? slots[Int(partition)]?.maxTs : nil
    }

    func isIdle(_ partition: Int32) -> Bool {
        Int(partition) < slots.count ? slots[Int(partition)]?.idle ?? false : false
    }

    var isEmpty: Bool { !slots.contains { $0 != nil } }
}

/// One checkpoint of `split.checkpoint`: key `<group>|<partition>`, value `<next offset>|<max ts>`.
struct SplitCheckpoint: Equatable {
    var partition: Int32
    var nextOffset: Int64
    var maxTs: Int64

    func key(group: String) -> [UInt8] { Array("\(group)|\(partition)".utf8) }
    var value: [UInt8] { Array("\(nextOffset)|\(maxTs)".utf8) }

    init(partition: Int32, nextOffset: Int64, maxTs: Int64) {
        self.partition = partition; self.nextOffset = nextOffset; self.maxTs = maxTs
    }

    init?(key: [UInt8], value: [UInt8], group: String) {
        let k = String(decoding: key, as: UTF8.self).split(separator: "|", omittingEmptySubsequences: false)
        let v = String(decoding: value, as: UTF8.self).split(separator: "|")
        guard k.count == 2, k[0] == group, let p = Int32(k[1]), v.count == 2, let o = Int64(v[0]), let t = Int64(v[1]) else { return nil }
        self.init(partition: p, nextOffset: o, maxTs: t)
    }

    /// The max ts of each partition at its committed offset. A checkpoint counts only when its
    /// offset is the committed one: a broker that shows aborted transactions (the local one does)
    /// would otherwise hand back progress from a batch that never committed. Without an exact
    /// match (e.g. compacted away) the newest checkpoint at or below the committed offset is the
    /// best lower bound, and the caller logs it.
    static func select(_ all: [SplitCheckpoint], committed: [Int32: Int64]) -> (maxTs: [Int32: Int64], inexact: [Int32]) {
        var out: [Int32: Int64] = [:]
        var inexact: [Int32] = []
        for (p, offset) in committed {
            let mine = all.filter { $0.partition == p }
            guard offset >= 0 else { out[p] = .min; continue }   // nothing committed: from the start
            if let exact = mine.last(where: { $0.nextOffset == offset }) {
                out[p] = exact.maxTs
            } else {
                out[p] = mine.filter { $0.nextOffset <= offset }.max { $0.nextOffset < $1.nextOffset }?.maxTs ?? .min
                inexact.append(p)
            }
        }
        return (out, inexact)
    }
}
