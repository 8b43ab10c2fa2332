// Per-source progress: event time (for the watermark), offsets (for replay points), activity (for
// the idle timeout) and, while restoring, where replay ends and the checkpoint's watermark.
//
// Watermark rule (DESIGN.md): per source, highest ts seen − out-of-orderness; the engine's
// watermark is the minimum over active sources. A source with no record for longer than the idle
// timeout (wall clock, measured at collects) stops holding it back; a source never seen does not
// hold it back at all; when every source is idle the watermark moves to the furthest source. The
// watermark never goes backwards.

struct SourceState {
    let source: Source
    /// Highest ts seen (Int64.min: none).
    var maxTs = Int64.min
    /// Highest offset given to the engine (−1: none).
    var lastOffset: Int64 = -1
    /// Records arrived since the last collect.
    var activeSinceCollect = false
    /// Wall clock of the last collect that saw this source active.
    var lastActiveMs = Int64.min
    /// Records with offsets below this are replayed state (restore mode only).
    var restoreEnd = Int64.min
    /// The engine watermark at the checkpoint being restored.
    var restoreWatermark = Int64.min
    /// Declared by the job (an assigned partition) but no record yet: holds the watermark back
    /// from this wall-clock time until a record arrives or the idle timeout passes.
    var expectedSinceMs = Int64.min

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

    /// The watermark implied by the sources at wall-clock `nowMs` (not yet combined with the
    /// engine's current one). `commit` records the activity seen since the last collect.
    func watermark(nowMs: Int64, outOfOrderness: Int64, idleTimeout: Int64, commit: Bool) -> Int64? {
        var minActive = Int64.max
        var maxAll = Int64.min
        var anySeen = false
        var waitingForExpected = false
        for i in 0..<states.count {
            var s = states[i]
            guard s.maxTs != .min else {
                if s.expectedSinceMs != .min && s.expectedSinceMs >= nowMs - idleTimeout { waitingForExpected = true }
                continue
            }
            if s.activeSinceCollect {
                s.lastActiveMs = nowMs
                s.activeSinceCollect = false
            }
            if commit { states[i] = s }
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
