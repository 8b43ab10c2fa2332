/// Where every record given to the engine went. Always balanced:
/// consumed = applied + duplicates + late + Σ filtered.
public struct Accounting: Sendable, Equatable, CustomStringConvertible {
    public var consumed = 0
    /// Counted into a cell (including corrections).
    public var applied = 0
    /// Of `applied`: counted into a window that was already final (a corrected revision follows).
    public var corrections = 0
    /// Same event_id already counted in its cell.
    public var duplicates = 0
    /// Past the allowed lateness (normal mode: the caller forwards them to ods.late). In the
    /// restore accounting: records of windows already evicted at the checkpoint, skipped.
    public var late = 0
    /// Of `late`: in time for their own ods.raw partition, but that partition had been declared
    /// idle and the watermark moved past their window meanwhile (the wall-clock exception).
    public var lateAfterIdle = 0
    /// Not applied, by reason: "unknown_content_id", "unknown_action", or a scanner reason code.
    public var filtered: [String: Int] = [:]

    public init() {}

    public var filteredTotal: Int { filtered.values.reduce(0, +) }

    public var isBalanced: Bool { consumed == applied + duplicates + late + filteredTotal }

    public var description: String {
        let f = filtered.keys.sorted().map { "\($0)=\(filtered[$0]!)" }.joined(separator: ",")
        return "consumed=\(consumed) applied=\(applied) (corrections=\(corrections)) duplicates=\(duplicates) late=\(late) (after_idle=\(lateAfterIdle)) filtered={\(f)}"
    }
}

/// The engine's hot counters; the common filter reason has its own slot so the hot path never
/// hashes a String.
struct Counters {
    var consumed = 0, applied = 0, corrections = 0, duplicates = 0, late = 0, lateAfterIdle = 0, unknownContent = 0
    var otherFiltered: [String: Int] = [:]

    mutating func filter(_ reason: String) { otherFiltered[reason, default: 0] += 1 }

    var accounting: Accounting {
        var a = Accounting()
        a.consumed = consumed
        a.applied = applied
        a.corrections = corrections
        a.duplicates = duplicates
        a.late = late
        a.lateAfterIdle = lateAfterIdle
        a.filtered = otherFiltered
        if unknownContent > 0 { a.filtered[WindowEngine.unknownContentId] = unknownContent }
        return a
    }
}
