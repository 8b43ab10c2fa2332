/// The bookkeeping of one source's rows that does not depend on the query reading them: each row's
/// time, the watermark over the input partitions, and the rows' identities — the revision stored
/// per (minute, content_id, user_id) of an upsert stream, the (event_id, ts) seen of an event
/// stream. A query alone owns one; the queries of a `QuerySet` share one, so a batch's identities
/// are looked up once however many queries read it (as one KTable feeds every aggregation built
/// on it).
///
/// Per batch, `resolve` hands each row a `RowVerdict`: its time, and whether it is a new revision
/// (with the index of its identity), a stale one, a first or repeated event, or a row without
/// identity. Each query then judges lateness by its own windows and keeps its own contribution per
/// identity index. An identity is forgotten once no query's windows can take its minute any more.
final class SourceTable {
    let options: QueryOptions
    /// Where time, the final flag and identity sit in the rows' layout.
    private(set) var slots: EngineSlots
    let events: Bool

    private(set) var wm: Int64?
    private var partitionMax: [Int: Int64] = [:]
    private var partitionSeen: [Int: Int64] = [:]
    /// Partitions the caller will read but that have delivered nothing yet, and since when.
    private var partitionExpected: [Int: Int64] = [:]
    private var clock: Int64?

    /// Identity → index, per minute (events: per minute of `ts`).
    @exclusivity(unchecked) private var identities: [Int64: [IdentityKey: Int32]] = [:]
    /// The identities of the minute the last row had, taken out of `identities` while rows keep
    /// that minute (they mostly come in minute order): one hash lookup per row instead of two.
    /// Put back at the end of each batch (`closeBucket`).
    @exclusivity(unchecked) private var bucket: [IdentityKey: Int32] = [:]
    private var bucketMinute: Int64?
    private var bucketHint = 0
    /// The stored revision per identity index (nil: the last row had none).
    @exclusivity(unchecked) private var revisions: [Int64?] = []
    private var free: [Int32] = []
    /// One verdict per row of the last resolved batch.
    @exclusivity(unchecked) private(set) var verdicts: [RowVerdict] = []
    private var batchMax: [Int: Int64] = [:]

    /// Identity indexes handed out so far: each query's per-identity storage spans this many.
    var capacity: Int { revisions.count }

    static let maxMinute: Int64 = 1 << 53

    init(layout: RowLayout, events: Bool, options: QueryOptions) {
        self.options = options
        self.events = events
        slots = EngineSlots(layout, events: events)
    }

    func bind(_ layout: RowLayout) { slots = EngineSlots(layout, events: events) }

    /// Judges every row of `batch` (see `RowVerdict`), records new revisions and events, and
    /// notes each partition's newest time; the watermark moves only in `advance`, so every row of
    /// a batch is judged against the watermark the batch started with.
    func resolve(_ batch: RowBatch) {
        verdicts.removeAll(keepingCapacity: true)
        verdicts.reserveCapacity(batch.count)
        batchMax.removeAll(keepingCapacity: true)
        var singleMax: Int64?  // partition 0 when no partitions are given (the common case)
        let partitions = batch.partitions
        // Any row (final or not) shows its partition is alive, for the idle-partition rule.
        if let partitions { for p in Set(partitions) { partitionSeen[p] = clock ?? 0 } }
        let width = batch.layout.width
        let slots = self.slots
        batch.values.withUnsafeBufferPointer { base in
            for index in 0..<batch.count {
                let row = UnsafeBufferPointer(rebasing: base[(index * width)..<(index * width + width)])
                // Minutes beyond ±2^53 ms (±285 000 years) are treated as missing: window arithmetic
                // near Int64's edges would wrap.
                // The row's time: its minute (upsert rows), or its event time `ts` (events).
                let minute = row[slots.time].exactInt.flatMap { $0 >= -Self.maxMinute && $0 <= Self.maxMinute ? $0 : nil }
                // In an upsert layer only final rows move time (a row without the flag does).
                let advancesTime: Bool
                switch slots.final.map({ row[$0] }) ?? .null {
                case .null: advancesTime = true
                case .bool(let f): advancesTime = f
                default: advancesTime = false
                }
                if let m = minute, advancesTime {
                    if let partitions {
                        let p = index < partitions.count ? partitions[index] : 0
                        if let cur = batchMax[p] { if m > cur { batchMax[p] = m } } else { batchMax[p] = m }
                    } else if m > singleMax ?? Int64.min {
                        singleMax = m
                    }
                }
                guard let m = minute else { verdicts.append(RowVerdict(time: nil, kind: .plain)); continue }
                if let idSlot = slots.eventId, case let id = row[idSlot], !id.isNull {
                    // An event's identity is (event_id, ts), kept per minute of ts for the grace: a
                    // duplicate (redelivered or resent) arriving within it counts once.
                    let key = IdentityKey(content: id, user: .int(m))
                    openBucket(floorDiv(m, 60_000) &* 60_000)
                    if bucket[key] != nil {
                        verdicts.append(RowVerdict(time: m, kind: .duplicate))
                    } else {
                        bucket[key] = -1
                        verdicts.append(RowVerdict(time: m, kind: .event))
                    }
                    continue
                }
                guard let contentSlot = slots.content, case let content = row[contentSlot], !content.isNull else {
                    verdicts.append(RowVerdict(time: m, kind: .plain))
                    continue
                }
                let key = IdentityKey(content: content, user: slots.user.map { row[$0] } ?? .null)
                let rev = slots.rev.flatMap { row[$0].exactInt }
                openBucket(m)
                // One hash lookup: the entry is read and written in place.
                let verdict = record(&bucket[key], rev: rev, time: m)
                verdicts.append(verdict)
            }
        }
        closeBucket()
        if let singleMax { batchMax[0] = singleMax }
    }

    /// Takes in the resolved batch's times: the partitions' newest minutes and the watermark.
    func advance() {
        for (p, m) in batchMax {
            partitionMax[p] = max(partitionMax[p] ?? m, m)
            partitionSeen[p] = clock ?? 0
        }
        updateWatermark()
    }

    private func record(_ entry: inout Int32?, rev: Int64?, time m: Int64) -> RowVerdict {
        if let i = entry {
            // A row without rev replaces whatever is stored.
            if let r = rev, let o = revisions[Int(i)], r <= o { return RowVerdict(time: m, kind: .stale) }
            revisions[Int(i)] = rev
            return RowVerdict(time: m, kind: .revision, identity: i)
        }
        let i = allocate(rev)
        entry = i
        return RowVerdict(time: m, kind: .revision, identity: i, fresh: true)
    }

    private func allocate(_ rev: Int64?) -> Int32 {
        if let i = free.popLast() {
            revisions[Int(i)] = rev
            return i
        }
        revisions.append(rev)
        return Int32(revisions.count - 1)
    }

    private func openBucket(_ minute: Int64) {
        guard bucketMinute != minute else { return }
        closeBucket()
        bucket = identities.removeValue(forKey: minute) ?? Dictionary(minimumCapacity: bucketHint)
        bucketMinute = minute
    }

    private func closeBucket() {
        guard let m = bucketMinute else { return }
        identities[m] = bucket
        bucket = [:]
        bucketMinute = nil
    }

    /// Forgets the identities of every minute that no query still holds (`held(minute, watermark)`),
    /// handing their indexes to `release` so each query drops what it kept for them.
    func forget(held: (Int64, Int64) -> Bool, release: ([Int32]) -> Void) {
        guard let w = wm else { return }
        var freed: [Int32] = []
        for (m, minuteBucket) in identities where !held(m, w) {
            // Size the next minute's map like the ones before it, so it does not grow by rehashing.
            bucketHint = max(bucketHint, minuteBucket.count)
            identities[m] = nil
            for i in minuteBucket.values where i >= 0 {
                revisions[Int(i)] = nil
                freed.append(i)
            }
        }
        guard !freed.isEmpty else { return }
        // In index order, and handed out again lowest first: the identities of a minute then sit
        // side by side in every query's per-identity storage (a cache line serves eight of them),
        // instead of scattered in the order a hash map happened to list them.
        freed.sort()
        release(freed)
        free.append(contentsOf: freed)
        free.sort(by: >)
    }

    /// Forgets every identity (end of input).
    func reset() {
        identities = [:]
        revisions = []
        free = []
    }

    // MARK: - Time

    /// See `QueryEngine.expectPartitions`.
    func expectPartitions(_ partitions: [Int], nowMs: Int64) {
        for p in partitions where partitionMax[p] == nil { partitionExpected[p] = nowMs }
    }

    /// Sets the wall clock; true when the watermark moved (an idle partition stopped holding it).
    func tick(nowMs: Int64) -> Bool {
        clock = nowMs
        guard partitionMax.count > 1 || !partitionExpected.isEmpty else { return false }
        let before = wm
        updateWatermark()
        return wm != before
    }

    private func updateWatermark() {
        guard !partitionMax.isEmpty else { return }
        for p in partitionExpected.keys where partitionMax[p] != nil { partitionExpected[p] = nil }
        if let since = partitionExpected.values.max() {
            // A declared partition has not delivered yet: hold until it does or goes idle.
            guard let now = clock, now - since >= options.idlePartitionTimeoutMs else { return }
            partitionExpected.removeAll()
        }
        var candidates = Array(partitionMax)
        if candidates.count > 1, let now = clock {
            let active = candidates.filter { now - (partitionSeen[$0.key] ?? now) < options.idlePartitionTimeoutMs }
            candidates = active.isEmpty ? [candidates.max { $0.value < $1.value }].compactMap { $0 } : active
        }
        guard let w = candidates.map(\.value).min() else { return }
        wm = max(wm ?? w, w)
    }
}

/// What the source table decided about one row.
struct RowVerdict {
    enum Kind: UInt8 {
        /// No identity: no time, no event_id, or no content_id. Only ever added.
        case plain
        /// An event seen for the first time within its minute plus the grace.
        case event
        /// An event already seen.
        case duplicate
        /// A newer revision of an upsert identity (or its first): replaces what the identity gave.
        case revision
        /// A revision at or below the stored one: ignored.
        case stale
    }
    /// The row's minute (or `ts`), nil when it has none.
    var time: Int64?
    var kind: Kind
    /// The identity's index (`.revision`).
    var identity: Int32 = -1
    /// The identity's first revision (nothing is kept for its index yet: no query need look).
    var fresh = false
}
