// One event-time minute [start, start + 60 s): its cells, per-content totals, and per input source
// the smallest offset that contributed (for replay points). Evicting the window frees all of it at
// once, so memory is bounded by the windows still open.

final class MinuteWindow {
    let start: Int64
    let end: Int64
    /// The watermark has passed `end`: revisions are final (odd rev).
    @exclusivity(unchecked) var isFinal: Bool
    /// Every cell's final revision has been emitted (with DWS finals first, one collect after
    /// `isFinal`; a rebuilt window checks its cells once more). Not evicted before.
    @exclusivity(unchecked) var dwmFinalsOut = false
    /// With `WindowConfig.dwmFinalsPerCollect`: how many of the `WindowEngine.finalParts` have had
    /// their DWM finals published, and the cells listed by part (the first `cellsParted` cells;
    /// listed when the first part goes out, cells added later by corrections at the next collect).
    @exclusivity(unchecked) var dwmPartsOut = 0
    @exclusivity(unchecked) var partCells: [RawBuffer<UInt32>] = []
    @exclusivity(unchecked) var cellsParted = 0
    @exclusivity(unchecked) var cells: CellStore
    @exclusivity(unchecked) var totals: ContentTotals
    /// Event-id hash sets of the cells with more than 4 events.
    @exclusivity(unchecked) var spills: [Set<UInt64>] = []
    /// Per dense source index: smallest offset applied to this window (Int64.max: none).
    @exclusivity(unchecked) var minOffsets = RawBuffer<Int64>(capacity: 32)
    /// Per dense source index: the source's highest ts before the record at `minOffsets` (where a
    /// replay of a raw-input source restarts its progress).
    @exclusivity(unchecked) var minOffsetPriors = RawBuffer<Int64>(capacity: 32)

    init(start: Int64, length: Int64, actionCount: Int, isFinal: Bool) {
        self.start = start
        self.end = start + length
        self.isFinal = isFinal
        cells = CellStore(actionCount: actionCount)
        totals = ContentTotals(actionCount: actionCount)
    }

    deinit {
        cells.deallocate()
        totals.deallocate()
        minOffsets.deallocate()
        minOffsetPriors.deallocate()
        for p in partCells { p.deallocate() }
    }

    /// Every cell's DWM final is out: the part lists are no longer needed (whichever path got it
    /// there, a part at a time or all at once after a catch-up).
    func markDwmFinalsOut() {
        dwmFinalsOut = true
        for p in partCells { p.deallocate() }
        partCells = []
    }

    @inline(__always)
    func noteOffset(_ offset: Int64, source: Int, prior: Int64) {
        if source >= minOffsets.count {
            minOffsetPriors.append(repeating: .min, count: source + 1 - minOffsets.count)
            minOffsets.append(repeating: .max, count: source + 1 - minOffsets.count)
        }
        if offset < minOffsets[source] {
            minOffsets[source] = offset
            minOffsetPriors[source] = prior
        }
    }

    var allocatedBytes: Int {
        var spilled = spills.capacity * 8
        for s in spills { spilled += 48 + s.capacity * 9 }
        for p in partCells { spilled += p.allocatedBytes }
        return cells.allocatedBytes + totals.allocatedBytes + 2 * minOffsets.allocatedBytes + spilled + 128
    }
}
