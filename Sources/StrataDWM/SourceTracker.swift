// Per-source progress: event time (for the watermark), offsets (for replay points), activity (for
// the idle timeout) and, while restoring, where replay ends and the checkpoint's watermark.
//
// Watermark rule (DESIGN.md): per source, highest ts seen − out-of-orderness; the engine's
// watermark is the minimum over active sources. A source with no record for longer than the idle
// timeout (wall clock, measured at collects) stops holding it back; a source never seen does not
// hold it back at all; when every source is idle the watermark moves to the furthest source. The
// watermark never goes backwards.
//
// Stamped sources (micro-queue partitions written by the split) are different: their records
// merge every ods.raw partition in the order the split read them, so their own order says nothing
// about event time. Their progress is tracked per upstream raw partition, from the stamps on the
// records and the split's markers; such a source holds the watermark at the minimum over its
// non-idle upstream partitions, waits for every raw partition to be heard of, and is never idle by
// the wall clock (idleness is the split's to declare: it knows when ods.raw is quiet, while a dwm
// job that merely lost its upstream must wait for it, or a restart after downtime would send
// on-time events to ods.late).

import StrataCore

/// Progress of one upstream ods.raw partition as seen on one source.
struct UpstreamState {
    /// Highest ts of the raw partition announced on this source (Int64.min: none).
    var maxTs = Int64.min
    /// Heard of through a stamp or a marker.
    var heard = false
    /// The split declared it idle (no records for its idle timeout).
    var idle = false
}

struct SourceState {
    let source: Source
    /// Highest ts seen (Int64.min: none).
    var maxTs = Int64.min
    /// Highest offset given to the engine (−1: none).
    var lastOffset: Int64 = -1
    /// Records arrived since the last collect (or the job noted input pending for the source).
    var activeSinceCollect = false
    /// The job noted since the last collect that the source has input it has not delivered yet.
    var inputPending = false
    /// Wall clock of the last collect that saw this source active.
    var lastActiveMs = Int64.min
    /// Raw-input sources: `maxTs` before the latest record (where a replay from it restarts).
    var priorMaxTs = Int64.min
    /// Records with offsets below this are replayed state (restore mode only).
    var restoreEnd = Int64.min
    /// The engine watermark at the checkpoint being restored.
    var restoreWatermark = Int64.min
    /// The engine's `dwmFinalMark` at that checkpoint, and its partly published window.
    var restoreDwmMark = Int64.min
    var restoreDwmPartialEnd = Int64.min
    var restoreDwmPartsOut = 0
    /// Declared by the job (an assigned partition) but no record yet: holds the watermark back
    /// from this wall-clock time until a record arrives or the idle timeout passes.
    var expectedSinceMs = Int64.min
    /// Records or markers from the split seen: progress comes from `upstream`.
    var stamped = false
    /// Partition count of ods.raw (from markers; 0: not known yet).
    var rawPartitions = 0
    /// Upstream progress indexed by raw partition (`upstreamCapacity` entries).
    var upstream: UnsafeMutablePointer<UpstreamState>?
    var upstreamCapacity = 0

    init(source: Source) { self.source = source }
}

struct SourceTracker {
    /// Dense source index -> state. Raw storage: no copy-on-write or ARC per record.
    private(set) var states = RawBuffer<SourceState>(capacity: 64)
    private var indexOf: [Source: Int] = [:]
    /// Direct-mapped cache in front of `indexOf` (records of many sources interleave).
    private var cache = RawBuffer<CacheEntry>(capacity: SourceTracker.cacheSize)

    struct CacheEntry { var source: Source; var index: Int }
    static let cacheSize = 256

    init() {
        cache.append(repeating: CacheEntry(source: Source(topic: .min, partition: .min), index: -1), count: Self.cacheSize)
    }

    func deallocate() {
        for i in 0..<states.count { states[i].upstream?.deallocate() }
        states.deallocate()
        cache.deallocate()
    }

    var count: Int { states.count }

    /// Dense index of `s`, registering it on first sight.
    @inline(__always)
    mutating func index(_ s: Source) -> Int {
        let slot = (s.topic &* 31 &+ s.partition) & (Self.cacheSize - 1)
        let e = cache.pointer(slot)
        if e.pointee.source == s { return e.pointee.index }
        let i = register(s)
        e.pointee = CacheEntry(source: s, index: i)
        return i
    }

    private mutating func register(_ s: Source) -> Int {
        if let k = indexOf[s] { return k }
        let i = states.count
        states.append(SourceState(source: s))
        indexOf[s] = i
        return i
    }

    @inline(__always)
    func state(_ i: Int) -> UnsafeMutablePointer<SourceState> { states.pointer(i) }

    /// Declares a source that will deliver records (see `SourceState.expectedSinceMs`).
    mutating func expect(_ s: Source, nowMs: Int64) {
        let i = index(s)
        if states[i].maxTs == .min { states.pointer(i).pointee.expectedSinceMs = nowMs }
    }

    /// Notes a record (any outcome) at `offset`; returns whether it is a replayed (restore) record.
    @inline(__always)
    func noteRecord(_ i: Int, offset: Int64) -> Bool {
        let p = states.pointer(i)
        if offset > p.pointee.lastOffset { p.pointee.lastOffset = offset }
        p.pointee.activeSinceCollect = true
        return offset < p.pointee.restoreEnd
    }

    @inline(__always)
    func noteTs(_ i: Int, _ ts: Int64) {
        let p = states.pointer(i)
        if ts > p.pointee.maxTs { p.pointee.maxTs = ts }
    }

    /// Notes a raw-input record's ts (any record that parses: the split's stamp counts it too).
    @inline(__always)
    func noteRawProgress(_ i: Int, _ ts: Int64) {
        let p = states.pointer(i)
        p.pointee.priorMaxTs = p.pointee.maxTs
        if ts <= SourceProgress.maxTs, ts > p.pointee.maxTs { p.pointee.maxTs = ts }
    }

    /// Notes a split stamp (a routed record's raw partition and that partition's max ts); returns
    /// whether it went backwards, which only a re-delivered aborted batch can do. Replayed records
    /// do not touch idleness: the checkpoint already holds the state at the commit.
    @inline(__always)
    func noteStamp(_ i: Int, _ stamp: SourceProgress.Stamp, replayed: Bool) -> Bool {
        let u = upstream(i, Int(stamp.partition))
        let regressed = u.pointee.heard && stamp.maxTs < u.pointee.maxTs
        if stamp.maxTs > u.pointee.maxTs { u.pointee.maxTs = stamp.maxTs }
        u.pointee.heard = true
        if !replayed { u.pointee.idle = false }
        return regressed
    }

    /// Applies a split marker: progress and idleness of the raw partitions it lists.
    func noteMarker(_ i: Int, _ marker: SourceProgress.Marker, replayed: Bool) {
        let p = states.pointer(i)
        if marker.rawPartitions > p.pointee.rawPartitions { p.pointee.rawPartitions = marker.rawPartitions }
        for e in marker.progress where e.partition >= 0 {
            let u = upstream(i, Int(e.partition))
            if e.maxTs > u.pointee.maxTs { u.pointee.maxTs = e.maxTs }
            u.pointee.heard = true
            if !replayed { u.pointee.idle = e.idle }
        }
        p.pointee.stamped = true
    }

    /// The upstream slot of raw partition `partition` on source `i`, growing the table on first sight.
    @inline(__always)
    func upstream(_ i: Int, _ partition: Int) -> UnsafeMutablePointer<UpstreamState> {
        let p = states.pointer(i)
        p.pointee.stamped = true
        if partition < p.pointee.upstreamCapacity, let u = p.pointee.upstream { return u + partition }
        let capacity = Swift.max(partition + 1, p.pointee.rawPartitions, 2 * p.pointee.upstreamCapacity)
        let grown = UnsafeMutablePointer<UpstreamState>.allocate(capacity: capacity)
        grown.initialize(repeating: UpstreamState(), count: capacity)
        if let old = p.pointee.upstream {
            grown.update(from: old, count: p.pointee.upstreamCapacity)
            old.deallocate()
        }
        p.pointee.upstream = grown
        p.pointee.upstreamCapacity = capacity
        return grown + partition
    }

    /// The upstream entries of source `i` that were heard of, for checkpoints and metrics.
    func upstreamProgress(_ i: Int) -> [SourceProgress.PartitionProgress] {
        let s = states[i]
        guard let u = s.upstream else { return [] }
        return (0..<s.upstreamCapacity).compactMap { p in
            u[p].heard ? SourceProgress.PartitionProgress(partition: Int32(p), maxTs: u[p].maxTs, idle: u[p].idle) : nil
        }
    }

    /// The watermark implied by the sources at wall-clock `nowMs` (not yet combined with the
    /// engine's current one). `commit` records the activity seen since the last collect.
    func watermark(nowMs: Int64, outOfOrderness: Int64, idleTimeout: Int64, commit: Bool) -> Int64? {
        var minActive = Int64.max
        var maxAll = Int64.min
        var anySeen = false
        var waitingForExpected = false
        for i in 0..<states.count {
            var s = states[i]
            guard s.maxTs != .min || s.stamped else {
                // Not delivered yet: waited for up to the idle timeout from its assignment, or for
                // as long as the job says it has input (the broker has not served it yet).
                if s.inputPending || (s.expectedSinceMs != .min && s.expectedSinceMs >= nowMs - idleTimeout) {
                    waitingForExpected = true
                }
                if commit { states[i].inputPending = false }
                continue
            }
            if s.activeSinceCollect {
                s.lastActiveMs = nowMs
                s.activeSinceCollect = false
            }
            if commit { states[i] = s }
            if s.stamped {
                // Every raw partition must have been heard of; idle ones stop holding.
                if s.rawPartitions == 0 { waitingForExpected = true }
                for p in 0..<s.rawPartitions {
                    guard p < s.upstreamCapacity, let u = s.upstream?[p], u.heard, u.maxTs != .min || u.idle else {
                        waitingForExpected = true
                        continue
                    }
                    guard u.maxTs != .min else { continue }
                    anySeen = true
                    let w = u.maxTs - outOfOrderness
                    if w > maxAll { maxAll = w }
                    if !u.idle, w < minActive { minActive = w }
                }
            }
            // Records that did not come through the split: the source's own order.
            guard s.maxTs != .min else { continue }
            anySeen = true
            let w = s.maxTs - outOfOrderness
            if w > maxAll { maxAll = w }
            let active = s.lastActiveMs == .min || s.lastActiveMs >= nowMs - idleTimeout
            if active, w < minActive { minActive = w }
        }
        guard anySeen, !waitingForExpected else { return nil }
        return minActive != .max ? minActive : maxAll
    }
}
