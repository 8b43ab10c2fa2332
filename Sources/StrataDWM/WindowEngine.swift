public import StrataCore

/// What happened to one record.
public enum ApplyOutcome: Sendable, Equatable {
    /// Counted into an open window.
    case applied
    /// Counted into a final window still within the allowed lateness: a corrected revision follows.
    case corrected
    /// Its event_id was already counted in its cell.
    case duplicate
    /// Not applied (reason code, see `Accounting.filtered`).
    case filtered(String)
    /// Past the allowed lateness: not applied; the caller forwards the record to ods.late.
    case late
    /// A restore-mode record: state rebuilt, nothing to forward (see `beginRestore`).
    case replayed
}

/// The minute row-to-column window engine of the dwm job, without any broker: raw events in,
/// upsert rows (DWM per (minute, content, user), DWS per (minute, content)) out.
///
/// Exactly-once contract with the job (see docs/time-semantics.md):
/// - `apply` every record of every source in offset order;
/// - at each transaction: `collect` (publish everything it returns), then store `replayPoints()`
///   with the committed positions. After `collect` the whole state has been published, except
///   with `dwsFinalsFirst` the DWM finals of the windows it just closed: they are owed to the next
///   collect (or, with `dwmFinalsPerCollect`, to the next few), and the checkpoint's
///   `dwmFinalMark` and partial window say so.
/// - after a crash: `beginRestore` with the stored checkpoints and committed positions, re-apply
///   each source from its replay offset (records below the committed position rebuild state and
///   publish nothing), `endRestore`, continue. `rev` = 2 × distinct events + (final ? 1 : 0), so a
///   replay reproduces the revisions it already published.
///
/// Not thread-safe: one engine belongs to one consumer loop.
public final class WindowEngine {
    public static let unknownContentId = "unknown_content_id"
    public static let unknownAction = "unknown_action"
    public static let tsOutOfRange = "out_of_range:ts"
    /// Larger timestamps (year ~36 million) would overflow window arithmetic.
    static let maxTs: Int64 = 1 << 60

    public let config: WindowConfig
    let isKnownContent: (UnsafeRawBufferPointer) -> Bool
    let scanner: EventScanner
    let actionCount: Int
    let actionPacked: [UInt64]
    let actionLengths: [Int]
    let actionBytes: [[UInt8]]
    let playIndex: Int
    let windowMs: Int64
    let lateness: Int64
    let rawInput: Bool

    /// Known content ids seen so far (engine-wide: a content stays known once the gate said so).
    @exclusivity(unchecked) var contents = InternTable()
    @exclusivity(unchecked) var strategies = InternTable()
    /// Retained windows, ascending by start.
    @exclusivity(unchecked) var windows: [MinuteWindow] = []
    /// The window of the previous event (owned by `windows`).
    @exclusivity(unchecked) var lastWindow: Unmanaged<MinuteWindow>?
    @exclusivity(unchecked) var sources = SourceTracker()
    /// Event-time watermark (epoch ms; Int64.min before the first collect). Advances only in
    /// `collect`/`flushAll`, so lateness is judged against the last committed watermark.
    @exclusivity(unchecked) public internal(set) var watermark = Int64.min
    /// Windows ending at or before this have had their DWM finals published: the watermark, or
    /// with `dwsFinalsFirst` the watermark of the collect before (see `publish`).
    @exclusivity(unchecked) public internal(set) var dwmFinalMark = Int64.min
    /// The oldest window past `dwmFinalMark` some of whose DWM finals are out (its end;
    /// `Int64.min`: none) and how many of its `finalParts` (see `WindowConfig.dwmFinalsPerCollect`).
    @exclusivity(unchecked) public internal(set) var dwmPartialEnd = Int64.min
    @exclusivity(unchecked) public internal(set) var dwmPartsOut = 0
    /// Per content index: its part of a window's DWM finals (`finalPart`).
    @exclusivity(unchecked) var contentParts = RawBuffer<UInt8>(capacity: 64)
    @exclusivity(unchecked) var live = Counters()
    @exclusivity(unchecked) var replay = Counters()
    @exclusivity(unchecked) public internal(set) var isRestoring = false

    /// `isKnownContent` is the valid-id gate (Bloom filter + store): called once per content id
    /// until it says yes, then cached; events of unknown contents are filtered, not applied.
    public init(config: WindowConfig, maxEventBytes: Int = 64 * 1024,
                isKnownContent: @escaping (UnsafeRawBufferPointer) -> Bool) {
        self.config = config
        self.isKnownContent = isKnownContent
        scanner = EventScanner(maxBytes: maxEventBytes)
        actionCount = config.actions.count
        actionBytes = config.actions.map { Array($0.utf8) }
        actionLengths = actionBytes.map(\.count)
        actionPacked = actionBytes.map { b in b.withUnsafeBytes { Self.pack($0) } }
        playIndex = config.playAction.flatMap { config.actions.firstIndex(of: $0) } ?? -1
        windowMs = config.windowMs
        lateness = config.allowedLatenessMs
        rawInput = config.rawInput
    }

    deinit {
        contentParts.deallocate()
        contents.deallocate()
        strategies.deallocate()
        sources.deallocate()
    }

    // MARK: - Apply

    /// Scans and applies one micro-queue record (the raw JSON event) read from `source` at `offset`.
    /// `stamp` is the split's stamp on the record (`SourceProgress.stampHeader`): with it, the
    /// record is late exactly when it is late against its own ods.raw partition's order.
    @discardableResult
    public func apply(_ record: UnsafeRawBufferPointer, source: Source, offset: Int64,
                      stamp: SourceProgress.Stamp? = nil) -> ApplyOutcome {
        let (si, replayed) = consume(source, offset: offset)
        let ev: ScannedEvent
        do { ev = try scanner.scan(record) } catch { return filtered(error.reason, replayed) }
        if rawInput { sources.noteRawProgress(si, ev.ts) }
        return applyScanned(ev, record, si: si, offset: offset, replayed: replayed, stamp: stamp)
    }

    /// As `apply`, for a record the caller already scanned (`event` describes `record`).
    /// `action`: the event's index in `config.actions` when the caller already matched it (the
    /// split's router did, reading ods.raw directly), so it is not matched again.
    @discardableResult
    public func apply(scanned event: ScannedEvent, in record: UnsafeRawBufferPointer, source: Source,
                      offset: Int64, stamp: SourceProgress.Stamp? = nil, action: Int? = nil) -> ApplyOutcome {
        let (si, replayed) = consume(source, offset: offset)
        if rawInput { sources.noteRawProgress(si, event.ts) }
        return applyScanned(event, record, si: si, offset: offset, replayed: replayed, stamp: stamp, action: action)
    }

    /// A record that is not counted: the job's validation filtered it for `reason` (with
    /// `WindowConfig.rawInput`, the split's rules: what the split filters or dead-letters). A
    /// record whose fields parsed (`ts`) still moves a raw-input source's progress, as it moves
    /// the split's stamp.
    @discardableResult
    public func skip(source: Source, offset: Int64, ts: Int64?, reason: String) -> ApplyOutcome {
        let (si, replayed) = consume(source, offset: offset)
        if let ts, rawInput { sources.noteRawProgress(si, ts) }
        return filtered(reason, replayed)
    }

    /// A record of `source` at `offset` arrives: its source's index, whether it is replayed state,
    /// and it is counted as consumed (live or replayed).
    @inline(__always)
    private func consume(_ source: Source, offset: Int64) -> (si: Int, replayed: Bool) {
        let si = sources.index(source)
        let replayed = sources.noteRecord(si, offset: offset)
        if replayed { replay.consumed += 1 } else { live.consumed += 1 }
        return (si, replayed)
    }

    /// True when the gate already said yes to this content id (its events need no lookup).
    public func knowsContent(_ id: UnsafeRawBufferPointer) -> Bool {
        contents.find(id, hash: ByteHash.hash(id)) != nil
    }

    /// A split watermark marker read from `source` at `offset` (not an event: not counted as consumed).
    public func applyMarker(_ marker: SourceProgress.Marker, source: Source, offset: Int64) {
        let si = sources.index(source)
        let replayed = sources.noteRecord(si, offset: offset)
        sources.noteMarker(si, marker, replayed: replayed)
    }

    @inline(__always)
    private func applyScanned(_ ev: ScannedEvent, _ record: UnsafeRawBufferPointer, si: Int, offset: Int64,
                              replayed: Bool, stamp: SourceProgress.Stamp?, action known: Int? = nil) -> ApplyOutcome {
        if ev.hasEscapes { return applyEscaped(ev, record, si: si, offset: offset, replayed: replayed, stamp: stamp) }
        guard let action = known ?? actionIndex(ev.action.bytes(in: record)) else { return filtered(Self.unknownAction, replayed) }
        return applyEvent(si: si, offset: offset, replayed: replayed, stamp: stamp, action: action, ts: ev.ts,
                          durationMs: ev.durationMs ?? 0, eventId: ev.eventId.bytes(in: record),
                          contentId: ev.contentId.bytes(in: record), userId: ev.userId.bytes(in: record),
                          strategy: ev.strategy.map { $0.bytes(in: record) })
    }

    /// Rare path: some string field holds JSON escapes; compare and hash the decoded bytes.
    private func applyEscaped(_ ev: ScannedEvent, _ record: UnsafeRawBufferPointer, si: Int, offset: Int64,
                              replayed: Bool, stamp: SourceProgress.Stamp?) -> ApplyOutcome {
        let action = EventScanner.decodeString(record, ev.action)
        guard let a = action.withUnsafeBytes({ actionIndex($0) }) else { return filtered(Self.unknownAction, replayed) }
        let eventId = EventScanner.decodeString(record, ev.eventId)
        let contentId = EventScanner.decodeString(record, ev.contentId)
        let userId = EventScanner.decodeString(record, ev.userId)
        let strategy = ev.strategy.map { EventScanner.decodeString(record, $0) }
        return eventId.withUnsafeBytes { e in
            contentId.withUnsafeBytes { c in
                userId.withUnsafeBytes { u in
                    func go(_ s: UnsafeRawBufferPointer?) -> ApplyOutcome {
                        applyEvent(si: si, offset: offset, replayed: replayed, stamp: stamp, action: a, ts: ev.ts,
                                   durationMs: ev.durationMs ?? 0, eventId: e, contentId: c, userId: u, strategy: s)
                    }
                    guard let strategy else { return go(nil) }
                    return strategy.withUnsafeBytes { go($0) }
                }
            }
        }
    }

    /// The hot path: gate, lateness, cell, dedupe, metrics, totals, bookkeeping.
    @inline(__always)
    private func applyEvent(si: Int, offset: Int64, replayed: Bool, stamp: SourceProgress.Stamp?, action: Int, ts: Int64,
                            durationMs: Int64, eventId: UnsafeRawBufferPointer, contentId: UnsafeRawBufferPointer,
                            userId: UnsafeRawBufferPointer, strategy: UnsafeRawBufferPointer?) -> ApplyOutcome {
        guard ts <= Self.maxTs else { return filtered(Self.tsOutOfRange, replayed) }
        // The record's own ods.raw partition's progress up to and including it, when known: the
        // split's stamp, or a raw-input source's own highest ts (noted when it was scanned).
        var regressed = false
        var own = Int64.min, ownKnown = false, prior = Int64.min
        if let stamp {
            regressed = sources.noteStamp(si, stamp, replayed: replayed)
            own = stamp.maxTs
            ownKnown = true
        } else if rawInput {
            own = sources.state(si).pointee.maxTs
            prior = sources.state(si).pointee.priorMaxTs
            ownKnown = true
        } else {
            sources.noteTs(si, ts)
        }

        let contentHash = ByteHash.hash(contentId)
        let content: UInt32
        if let c = contents.find(contentId, hash: contentHash) {
            content = c
        } else if isKnownContent(contentId) {
            content = contents.intern(contentId, hash: contentHash)
            contentParts.append(Self.finalPart(contentId))
        } else {
            if replayed { replay.unknownContent += 1; return .replayed }
            live.unknownContent += 1
            return .filtered(Self.unknownContentId)
        }

        let start = ts - ts % windowMs
        let end = start + windowMs
        // Replayed records are judged against the checkpoint's watermark: exactly the windows
        // retained at that commit get rebuilt (the watermark only grows, so none of their events
        // was late before the crash). A window past its lateness whose DWM finals were still owed
        // (past the checkpoint's mark) was retained too.
        // Live records are judged against the higher of the engine's watermark and their source's
        // checkpoint's: the engine may resume lower (checkpoints of several instances, a partition
        // nobody committed), but a window past its lateness at the checkpoint is gone all the
        // same (its rows are final; one made anew would publish under a rev already used).
        let checkpointWatermark = sources.state(si).pointee.restoreWatermark
        let restoreWatermark = replayed ? checkpointWatermark : 0
        let gone = replayed ? restoreWatermark > end + lateness && end <= sources.state(si).pointee.restoreDwmMark
                            : Swift.max(watermark, checkpointWatermark) > end + lateness
        if ownKnown {
            // Late against its own ods.raw partition: decided by the input alone.
            let ownWatermark = own == .min ? Int64.min : own - config.outOfOrdernessMs
            if ownWatermark > end + lateness {
                if replayed { replay.late += 1; return .replayed }
                live.late += 1
                return .late
            }
            if gone {
                // In time for its partition, but the window is gone: at a checkpoint, it was not
                // rebuilt; live, either a re-delivered aborted batch (the stamp went backwards:
                // the event was counted when first seen) or its partition was declared idle
                // while the others moved on (the wall-clock exception, counted late).
                if replayed { replay.late += 1; return .replayed }
                if regressed { live.duplicates += 1; return .duplicate }
                live.late += 1
                live.lateAfterIdle += 1
                return .late
            }
        } else if gone {
            if replayed { replay.late += 1; return .replayed }
            live.late += 1
            return .late
        }

        // A rebuilt window is final if it was at its source's checkpoint.
        return window(start, finalBound: replayed ? Swift.max(restoreWatermark, watermark) : watermark)._withUnsafeGuaranteedRef { w in
            applyInWindow(w, si: si, offset: offset, prior: prior, replayed: replayed, restoreWatermark: restoreWatermark,
                          action: action, ts: ts, durationMs: durationMs, eventId: eventId, content: content,
                          userId: userId, strategy: strategy)
        }
    }

    /// The part of `applyEvent` inside the event's window (borrowed: no reference counting).
    @inline(__always)
    private func applyInWindow(_ w: MinuteWindow, si: Int, offset: Int64, prior: Int64, replayed: Bool, restoreWatermark: Int64,
                               action: Int, ts: Int64, durationMs: Int64, eventId: UnsafeRawBufferPointer,
                               content: UInt32, userId: UnsafeRawBufferPointer,
                               strategy: UnsafeRawBufferPointer?) -> ApplyOutcome {
        let end = w.end
        let (c, created) = w.cells.findOrInsert(content: content, user: UserKey(userId, content: content), bytes: userId) {
            UInt32(w.totals.findOrInsert(content: content))
        }
        guard w.cells.insertEventHash(c, ByteHash.hash(eventId), spills: &w.spills) else {
            if replayed { replay.duplicates += 1; return .replayed }
            live.duplicates += 1
            return .duplicate
        }

        let cell = w.cells.header(c)
        cell.pointee.n &+= 1
        w.cells.bump(c, action: action)
        if action == playIndex { cell.pointee.playMs &+= durationMs }
        if w.cells.beatsWinner(c, ts: ts, eventId: eventId) {
            w.cells.setWinner(c, ts: ts, eventId: eventId, strategy: strategyId(strategy, current: cell.pointee.strategy))
        }

        let t = Int(cell.pointee.totals)
        let totals = w.totals.header(t)
        totals.pointee.n &+= 1
        if created { totals.pointee.uv &+= 1 }
        w.totals.countsOf(t)[action] &+= 1
        if action == playIndex { totals.pointee.playMs &+= durationMs }

        if replayed {
            // This event was in a revision the crashed job already published; the DWS final of
            // its window if the window was final at the checkpoint, its DWM final if the window
            // was also within the checkpoint's DWM mark.
            let fin: UInt8 = end <= restoreWatermark ? CellHeader.pubFinal : 0
            let src = sources.state(si)
            let dwmOut = end <= src.pointee.restoreDwmMark
                || (end == src.pointee.restoreDwmPartialEnd && Int(contentParts[Int(content)]) < src.pointee.restoreDwmPartsOut)
            let cellFin: UInt8 = dwmOut ? fin : 0
            cell.pointee.pubN &+= 1
            cell.pointee.flags = (cell.pointee.flags & ~CellHeader.pubFinal) | cellFin
            totals.pointee.pubN &+= 1
            totals.pointee.flags = (totals.pointee.flags & ~CellHeader.pubFinal) | fin
        }
        w.cells.markDirty(c)
        w.totals.markDirty(t)
        w.noteOffset(offset, source: si, prior: prior)

        if replayed {
            replay.applied += 1
            if w.isFinal { replay.corrections += 1 }
            return .replayed
        }
        live.applied += 1
        if w.isFinal {
            live.corrections += 1
            return .corrected
        }
        return .applied
    }

    private func filtered(_ reason: String, _ replayed: Bool) -> ApplyOutcome {
        if replayed {
            replay.filter(reason)
            return .replayed
        }
        live.filter(reason)
        return .filtered(reason)
    }

    @inline(__always)
    private func strategyId(_ s: UnsafeRawBufferPointer?, current: UInt32) -> UInt32 {
        guard let s else { return 0 }
        if current != 0 && InternTable.equal(strategies.bytes(current - 1), s) { return current }
        return strategies.intern(s, hash: ByteHash.hash(s)) + 1
    }

    @inline(__always)
    private func window(_ start: Int64, finalBound: Int64) -> Unmanaged<MinuteWindow> {
        if let w = lastWindow, w._withUnsafeGuaranteedRef({ $0.start == start }) { return w }
        return findOrCreateWindow(start, finalBound: finalBound)
    }

    private func findOrCreateWindow(_ start: Int64, finalBound: Int64) -> Unmanaged<MinuteWindow> {
        var i = windows.count
        while i > 0 && windows[i - 1].start > start { i -= 1 }
        if i > 0 && windows[i - 1].start == start {
            lastWindow = Unmanaged.passUnretained(windows[i - 1])
            return lastWindow!
        }
        // A window first seen after the watermark passed it is final from the start (corrections).
        let w = MinuteWindow(start: start, length: windowMs, actionCount: actionCount,
                             isFinal: start + windowMs <= finalBound)
        windows.insert(w, at: i)
        lastWindow = Unmanaged.passUnretained(w)
        return lastWindow!
    }

    @inline(__always)
    private func actionIndex(_ name: UnsafeRawBufferPointer) -> Int? {
        if name.count <= 8 {
            let p = Self.pack(name)
            for i in 0..<actionCount where actionPacked[i] == p && actionLengths[i] == name.count { return i }
            return nil
        }
        for i in 0..<actionCount where actionLengths[i] == name.count {
            if actionBytes[i].withUnsafeBytes({ InternTable.equal($0, name) }) { return i }
        }
        return nil
    }

    /// The first 8 bytes, zero-padded (an action name's fast comparison key).
    @inline(__always)
    static func pack(_ b: UnsafeRawBufferPointer) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<Swift.min(b.count, 8) { v |= UInt64(b[i]) << UInt64(8 * i) }
        return v
    }

    // MARK: - Collect

    /// Advances the watermark (wall clock `nowMs` decides idle sources), finalizes the windows it
    /// passed, and returns the rows to publish: every changed cell and content (early revisions of
    /// open windows only when `earlyRevisions`), final rows of newly final windows, corrections.
    /// Windows past the allowed lateness are then evicted. Must not be called while restoring.
    /// `dwmFinalsBudget` overrides `WindowConfig.dwmFinalsPerCollect` for this collect (`.max`: every
    /// DWM final owed, e.g. while catching up, when nobody waits for early rows).
    public func collect(nowMs: Int64, earlyRevisions: Bool = true, dwmFinalsBudget: Int? = nil) -> Emission {
        var sink = EmissionSink()
        collect(nowMs: nowMs, earlyRevisions: earlyRevisions, dwmFinalsBudget: dwmFinalsBudget, into: &sink)
        return sink.emission
    }

    public func collect<S: RowSink>(nowMs: Int64, earlyRevisions: Bool = true, dwmFinalsBudget: Int? = nil, into sink: inout S) {
        collect(nowMs: nowMs, earlyRowsOfWindowsEndingAfter: earlyRevisions ? .min : .max, dwmFinalsBudget: dwmFinalsBudget, into: &sink)
    }

    /// As `collect(nowMs:earlyRevisions:dwmFinalsBudget:into:)`, with early revisions only of the
    /// open windows ending after `cutoff`; ``heldEarlyRows`` then tells whether an open window's
    /// were held back (its changed cells stay changed for a later collect).
    public func collect<S: RowSink>(nowMs: Int64, earlyRowsOfWindowsEndingAfter cutoff: Int64, dwmFinalsBudget: Int? = nil, into sink: inout S) {
        precondition(!isRestoring, "collect() while restoring: call endRestore() first")
        let before = watermark
        advanceWatermark(nowMs: nowMs)
        // Deferring: the windows final before this collect get their DWM finals now.
        publish(earlyCutoff: cutoff, dwmMark: config.dwsFinalsFirst ? Swift.max(dwmFinalMark, before) : watermark,
                finalsBudget: dwmFinalsBudget ?? (config.dwmFinalsPerCollect > 0 ? config.dwmFinalsPerCollect : .max), into: &sink)
    }

    /// The last collect held back the early revisions of an open window (see
    /// `collect(nowMs:earlyRowsOfWindowsEndingAfter:dwmFinalsBudget:into:)`).
    public private(set) var heldEarlyRows = false

    /// Whether an open window ending at or before `cutoff` changed since its rows last went out:
    /// what a collect with that cutoff would hold back.
    public func hasChangesToHold(endingAtOrBefore cutoff: Int64) -> Bool {
        windows.contains { !$0.isFinal && $0.end <= cutoff && ($0.totals.dirty.count > 0 || $0.cells.dirty.count > 0) }
    }

    /// End of bounded input (`--until-idle`): moves the watermark to the end of the newest window,
    /// so every window is final, and returns the rows (as `collect`), every DWM final included.
    /// Windows stay retained for corrections until the allowed lateness passes.
    public func flushAll(nowMs: Int64) -> Emission {
        var sink = EmissionSink()
        flushAll(nowMs: nowMs, into: &sink)
        return sink.emission
    }

    public func flushAll<S: RowSink>(nowMs: Int64, into sink: inout S) {
        precondition(!isRestoring, "flushAll() while restoring: call endRestore() first")
        advanceWatermark(nowMs: nowMs)
        if let last = windows.last, last.end > watermark { watermark = last.end }
        publish(earlyCutoff: .min, dwmMark: watermark, finalsBudget: .max, into: &sink)
    }

    /// The watermark a collect at `nowMs` would set (does not change anything).
    public func previewWatermark(nowMs: Int64) -> Int64 {
        guard let w = sources.watermark(nowMs: nowMs, outOfOrderness: config.outOfOrdernessMs,
                                  idleTimeout: config.idleTimeoutMs, commit: false) else { return watermark }
        return Swift.max(w, watermark)
    }

    public enum FinalsDue: Sendable { case none, closing, owed }

    /// What a collect at `nowMs` would publish besides early rows and corrections: `.closing` when
    /// some window turns final, else `.owed` when DWM finals of windows already final are still
    /// owed (DWS finals first, `dwmFinalsPerCollect`), else `.none`. Anything but `.none` is the
    /// job's cue to commit before the next early-revision tick (`.owed` once its input is drained).
    public func finalsDue(nowMs: Int64) -> FinalsDue {
        let w = previewWatermark(nowMs: nowMs)
        var owed = false
        for x in windows {
            if !x.isFinal && x.end <= w { return .closing }
            if x.isFinal && !x.dwmFinalsOut { owed = true }
        }
        return owed ? .owed : .none
    }

    private func advanceWatermark(nowMs: Int64) {
        if let w = sources.watermark(nowMs: nowMs, outOfOrderness: config.outOfOrdernessMs,
                                     idleTimeout: config.idleTimeoutMs, commit: true), w > watermark {
            watermark = w
        }
    }

    /// Windows ending after `mark` (below the watermark only when DWS finals go first) that turn
    /// final publish their DWS finals now and their DWM finals at the next collect; a replay from
    /// this commit's checkpoint (which carries the mark) knows those DWM finals are still owed.
    /// With `dwmFinalsPerCollect` the owed DWM finals go out a part at a time, oldest window first,
    /// until the budget is spent; the mark then stays below the first window not wholly out, and
    /// `dwmPartialEnd`/`dwmPartsOut` say how far it got.
    /// A window is evicted only once its DWM finals are out.
    private func publish<S: RowSink>(earlyCutoff: Int64, dwmMark mark: Int64, finalsBudget: Int, into sink: inout S) {
        heldEarlyRows = false
        var kept: [MinuteWindow] = []
        kept.reserveCapacity(windows.count)
        var budget = finalsBudget
        var owed: MinuteWindow?
        for w in windows {
            if !w.isFinal && w.end <= watermark {
                w.isFinal = true
                if w.end > mark {
                    emitTotals(w, all: true, into: &sink)
                } else {
                    emit(w, all: true, into: &sink)
                    w.dwmFinalsOut = true
                }
            } else if w.isFinal && !w.dwmFinalsOut {
                // Its DWS finals went out at an earlier collect (or it was rebuilt final by a
                // replay): every cell whose final revision is not out yet.
                if budget == .max {
                    emitCells(w, all: true, into: &sink)
                    w.markDwmFinalsOut()
                } else {
                    emitFinalParts(w, budget: &budget, into: &sink)
                }
                emitTotals(w, all: false, into: &sink)
            } else if w.isFinal || w.end > earlyCutoff {
                emit(w, all: false, into: &sink)
            } else {
                heldEarlyRows = true
            }
            if owed == nil && w.isFinal && !w.dwmFinalsOut { owed = w }
            if watermark > w.end + lateness && w.dwmFinalsOut {
                if lastWindow?.toOpaque() == Unmanaged.passUnretained(w).toOpaque() { lastWindow = nil }
            } else {
                kept.append(w)
            }
        }
        windows = kept
        dwmFinalMark = owed.map { Swift.min(mark, $0.end - 1) } ?? mark
        dwmPartialEnd = owed.map { $0.dwmPartsOut > 0 ? $0.end : .min } ?? .min
        dwmPartsOut = owed?.dwmPartsOut ?? 0
    }

    /// The DWM finals of a final window, a part at a time while `budget` lasts (at least one part
    /// per call): the cells of the parts already out that changed since (corrections), then each
    /// next part's cells whose final revision is not out. Changed cells of parts still to come
    /// wait for their part.
    private func emitFinalParts<S: RowSink>(_ w: MinuteWindow, budget: inout Int, into sink: inout S) {
        if w.partCells.isEmpty {
            w.partCells = (0..<Self.finalParts).map { _ in RawBuffer<UInt32>(capacity: Swift.max(16, w.cells.count / Self.finalParts * 5 / 4)) }
        }
        let cells = w.cells
        for c in w.cellsParted..<cells.count {
            w.partCells[Int(contentParts[Int(cells.header(c).pointee.content)])].append(UInt32(c))
        }
        w.cellsParted = cells.count
        let out = w.dwmPartsOut
        for k in 0..<cells.dirty.count {
            let c = Int(cells.dirty[k])
            let p = cells.header(c)
            p.pointee.flags &= ~CellHeader.listedDirty
            if Int(contentParts[Int(p.pointee.content)]) < out, emitCell(w, c, into: &sink) { budget -= 1 }
        }
        w.cells.clearDirtyList()
        while w.dwmPartsOut < Self.finalParts && budget > 0 {
            let list = w.partCells[w.dwmPartsOut]
            for k in 0..<list.count where emitCell(w, Int(list[k]), into: &sink) { budget -= 1 }
            w.dwmPartsOut += 1
        }
        if w.dwmPartsOut == Self.finalParts { w.markDwmFinalsOut() }
    }

    /// How many parts a window's DWM finals are published in with `dwmFinalsPerCollect`.
    public static let finalParts = 16

    /// A content's part: FNV-1a of its id, mixed by MurmurHash3's finalizer (ids that differ in
    /// their last digit must land in different parts). Checkpoints count published parts, so a
    /// restarted process must give every id the same part: this function must never change.
    static func finalPart(_ id: UnsafeRawBufferPointer) -> UInt8 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in id { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        h ^= h >> 33
        h &*= 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h &*= 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return UInt8(truncatingIfNeeded: h % UInt64(finalParts))
    }

    /// Emits the cells and contents of `w` whose (events, final) differ from what was last
    /// published: all of them (`all`, at finalization) or the dirty lists.
    private func emit<S: RowSink>(_ w: MinuteWindow, all: Bool, into sink: inout S) {
        emitCells(w, all: all, into: &sink)
        emitTotals(w, all: all, into: &sink)
    }

    private func emitCells<S: RowSink>(_ w: MinuteWindow, all: Bool, into sink: inout S) {
        let cells = w.cells
        let cellCount = all ? cells.count : cells.dirty.count
        for k in 0..<cellCount {
            let c = all ? k : Int(cells.dirty[k])
            cells.header(c).pointee.flags &= ~CellHeader.listedDirty
            emitCell(w, c, into: &sink)
        }
        w.cells.clearDirtyList()
    }

    /// Publishes cell `c` of `w` if its (events, final) differ from what was last published.
    @inline(__always) @discardableResult
    private func emitCell<S: RowSink>(_ w: MinuteWindow, _ c: Int, into sink: inout S) -> Bool {
        let fin: UInt8 = w.isFinal ? CellHeader.pubFinal : 0
        let cells = w.cells
        let p = cells.header(c)
        let h = p.pointee
        guard h.n != h.pubN || h.flags & CellHeader.pubFinal != fin else { return false }
        p.pointee.pubN = h.n
        p.pointee.flags = (h.flags & ~CellHeader.pubFinal) | fin
        sink.dwm(DWMRowView(
            minute: w.start, contentId: contents.bytes(h.content), userId: cells.userId(c),
            strategy: h.strategy == 0 ? nil : strategies.bytes(h.strategy - 1),
            playMs: h.playMs, isFinal: w.isFinal, rev: 2 * Int64(h.n) + (w.isFinal ? 1 : 0),
            counts: UnsafePointer(cells.inlineCounts(c)), extraCounts: cells.extraCountsOf(c).map { UnsafePointer($0) },
            actionCount: actionCount))
        return true
    }

    private func emitTotals<S: RowSink>(_ w: MinuteWindow, all: Bool, into sink: inout S) {
        let fin: UInt8 = w.isFinal ? CellHeader.pubFinal : 0
        let finRev: Int64 = w.isFinal ? 1 : 0
        let clear = ~(CellHeader.pubFinal | CellHeader.listedDirty)

        let totals = w.totals
        let totalsCount = all ? totals.count : totals.dirty.count
        for k in 0..<totalsCount {
            let t = all ? k : Int(totals.dirty[k])
            let p = totals.header(t)
            let h = p.pointee
            p.pointee.flags = h.flags & ~CellHeader.listedDirty
            guard h.n != h.pubN || h.flags & CellHeader.pubFinal != fin else { continue }
            p.pointee.pubN = h.n
            p.pointee.flags = (h.flags & clear) | fin
            sink.dws(DWSRowView(
                minute: w.start, contentId: contents.bytes(h.content), playMs: h.playMs, uv: Int64(h.uv),
                isFinal: w.isFinal, rev: 2 * Int64(h.n) + finRev,
                counts: UnsafePointer(totals.countsOf(t)), actionCount: actionCount))
        }
        w.totals.clearDirtyList()
    }

    /// With `WindowConfig.rawInput`: the highest ts read from `source` (Int64.min: none yet), what
    /// the job aligns its reading by.
    public func rawProgress(of source: Source) -> Int64 {
        sources.state(sources.index(source)).pointee.maxTs
    }

    /// Sources that have input though they delivered nothing lately (held back by event-time
    /// alignment, or not served yet by the broker): the wall clock does not declare them idle.
    public func noteInputPending(_ list: [Source]) {
        for s in list {
            let p = sources.state(sources.index(s))
            p.pointee.activeSinceCollect = true
            p.pointee.inputPending = true
        }
    }

    /// Per upstream ods.raw partition: the lowest progress announced on any stamped source (what
    /// holds the watermark) and whether it is idle everywhere; with `WindowConfig.rawInput`, each
    /// partition's own progress, idle when it delivered nothing for the idle timeout before
    /// `nowMs`. For metrics and logs.
    public func upstreamProgress(nowMs: Int64) -> [SourceProgress.PartitionProgress] {
        if rawInput {
            return (0..<sources.count).map { i in
                let s = sources.state(i).pointee
                let idle = s.lastActiveMs != .min && s.lastActiveMs < nowMs - config.idleTimeoutMs
                return SourceProgress.PartitionProgress(partition: Int32(s.source.partition), maxTs: s.maxTs, idle: idle)
            }.sorted { $0.partition < $1.partition }
        }
        var merged: [Int32: SourceProgress.PartitionProgress] = [:]
        for i in 0..<sources.count {
            for e in sources.upstreamProgress(i) {
                if var m = merged[e.partition] {
                    m.maxTs = Swift.min(m.maxTs, e.maxTs)
                    m.idle = m.idle && e.idle
                    merged[e.partition] = m
                } else {
                    merged[e.partition] = e
                }
            }
        }
        return merged.keys.sorted().map { merged[$0]! }
    }

    // MARK: - Accounting

    /// Records applied in normal mode.
    public var accounting: Accounting { live.accounting }
    /// Records replayed in restore mode (`late` = skipped: their window was evicted at the checkpoint).
    public var restoreAccounting: Accounting { replay.accounting }
}
