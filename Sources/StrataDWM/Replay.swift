import StrataCore

// Crash recovery by replay. At each commit the job stores, per source, `replayPoints()` next to the
// committed position; after a restart it re-reads every source from its replay offset. Records
// below the committed position rebuild the windows that were retained at that commit (dedupe sets,
// watermarks, strategy winners) and count as already published; records past it are new.

extension WindowEngine {
    /// Per source seen: the smallest offset that still contributes to a retained window (or the
    /// next offset when none does), its highest ts, and the current watermark. Take it right
    /// after `collect`, i.e. when everything has been published.
    public func replayPoints() -> [Source: SourceCheckpoint] {
        var out: [Source: SourceCheckpoint] = [:]
        for i in 0..<sources.count {
            let s = sources.state(i).pointee
            guard s.lastOffset >= 0 || s.maxTs != .min || s.stamped else { continue }
            var r = s.lastOffset + 1, prior = s.maxTs
            for w in windows where i < w.minOffsets.count && w.minOffsets[i] < r {
                r = w.minOffsets[i]
                prior = w.minOffsetPriors[i]
            }
            // A raw-input source's replay rebuilds its progress record by record from the replay
            // offset on (each record's own progress decides its lateness): it restarts from there.
            out[s.source] = SourceCheckpoint(replayOffset: r, maxTs: rawInput ? prior : s.maxTs, watermark: watermark, dwmFinalMark: dwmFinalMark,
                                             dwmPartialEnd: dwmPartialEnd, dwmPartsOut: dwmPartsOut,
                                             rawPartitions: s.rawPartitions, upstream: sources.upstreamProgress(i))
        }
        return out
    }

    /// Enters restore mode. For each source, records with offset < `committedOffsets[source]` that
    /// are applied from now on are replayed state (missing entry: nothing of it is replayed). Other
    /// records of any source are processed normally, but `collect` waits for `endRestore`.
    /// `unstarted`: assigned sources that nobody has committed yet (no checkpoint, no committed
    /// offset), read from their beginning.
    public func beginRestore(checkpoints: [Source: SourceCheckpoint], committedOffsets: [Source: Int64],
                             unstarted: [Source] = []) {
        precondition(!isRestoring, "beginRestore() while already restoring")
        // Checkpoints may come from several instances (after a rebalance), each with its own
        // watermark. The engine resumes at the lowest: windows another instance already closed stay
        // final (they are rebuilt final from their own source's checkpoint), but none is evicted
        // while a slower source may still correct it. The next collect recomputes it from the sources.
        var lowest = Int64.max, lowestMark = Int64.max
        for (src, cp) in checkpoints {
            let si = sources.index(src)
            if cp.rawPartitions > 0 || !cp.upstream.isEmpty {
                // The upstream progress at the commit; replayed stamps and markers are older.
                sources.noteMarker(si, SourceProgress.Marker(rawPartitions: cp.rawPartitions, progress: cp.upstream), replayed: false)
            }
            let s = sources.state(si)
            if cp.maxTs > s.pointee.maxTs { s.pointee.maxTs = cp.maxTs }
            if cp.replayOffset - 1 > s.pointee.lastOffset { s.pointee.lastOffset = cp.replayOffset - 1 }
            s.pointee.restoreEnd = committedOffsets[src] ?? cp.replayOffset
            s.pointee.restoreWatermark = cp.watermark
            s.pointee.restoreDwmMark = cp.dwmFinalMark
            s.pointee.restoreDwmPartialEnd = cp.dwmPartialEnd
            s.pointee.restoreDwmPartsOut = cp.dwmPartsOut
            s.pointee.activeSinceCollect = true
            lowest = Swift.min(lowest, cp.watermark)
            lowestMark = Swift.min(lowestMark, cp.dwmFinalMark)
        }
        // A source nobody has committed yet may start minutes behind the checkpoints (its first
        // owner left before its first commit while the others went on): nothing is closed for it
        // yet, so the engine resumes below every window, as a checkpoint taken before any
        // watermark would. Its first record then holds the watermark (`expectSources`).
        if !unstarted.isEmpty { lowest = .min }
        if lowest != .max && lowest > watermark { watermark = lowest }
        // Windows final at a checkpoint but past its mark get their DWM finals at the next collect.
        if lowestMark != .max && lowestMark > dwmFinalMark { dwmFinalMark = lowestMark }
        isRestoring = true
    }

    /// Declares the sources the job is assigned. Until each has delivered a record (or stayed
    /// silent for the idle timeout) the watermark does not move: when catching up on a backlog,
    /// partitions are fetched unevenly, and the first one seen must not close windows the others
    /// still feed (their events would otherwise be late).
    public func expectSources(_ list: [Source], nowMs: Int64) {
        for s in list { sources.expect(s, nowMs: nowMs) }
    }

    /// Leaves restore mode once every source has been re-read up to its committed position.
    public func endRestore() {
        for i in 0..<sources.count { sources.state(i).pointee.restoreEnd = .min }
        isRestoring = false
    }
}
