/// The DWS metrics of one (minute, content) — the columns of `dws_minute`.
public enum Metric: Int, CaseIterable, Sendable, Codable, CustomStringConvertible {
    case expose, click, play, playMs, like, share, comment, report, uv

    public var description: String {
        switch self {
        case .expose: "expose"
        case .click: "click"
        case .play: "play"
        case .playMs: "play_ms"
        case .like: "like"
        case .share: "share"
        case .comment: "comment"
        case .report: "report"
        case .uv: "uv"
        }
    }

    /// The metric an action counts in, by the action's name (nil: the action has no column).
    static func forAction(_ name: String) -> Metric? {
        switch name {
        case "expose": .expose
        case "click": .click
        case "play": .play
        case "like": .like
        case "share": .share
        case "comment": .comment
        case "report": .report
        default: nil
        }
    }
}

/// Nine counters, one per ``Metric``.
public struct Metrics: Sendable, Equatable, Codable {
    public var expose: Int64 = 0, click: Int64 = 0, play: Int64 = 0, playMs: Int64 = 0, like: Int64 = 0
    public var share: Int64 = 0, comment: Int64 = 0, report: Int64 = 0, uv: Int64 = 0

    public init() {}

    public subscript(_ m: Metric) -> Int64 {
        get {
            switch m {
            case .expose: expose
            case .click: click
            case .play: play
            case .playMs: playMs
            case .like: like
            case .share: share
            case .comment: comment
            case .report: report
            case .uv: uv
            }
        }
        set {
            switch m {
            case .expose: expose = newValue
            case .click: click = newValue
            case .play: play = newValue
            case .playMs: playMs = newValue
            case .like: like = newValue
            case .share: share = newValue
            case .comment: comment = newValue
            case .report: report = newValue
            case .uv: uv = newValue
            }
        }
    }

    public static func += (a: inout Metrics, b: Metrics) {
        a.expose += b.expose; a.click += b.click; a.play += b.play; a.playMs += b.playMs; a.like += b.like
        a.share += b.share; a.comment += b.comment; a.report += b.report; a.uv += b.uv
    }

    /// Events counted: the sum of the action columns (what `rev` counts in the stream).
    public var events: Int64 { expose + click + play + like + share + comment + report }

    /// Every metric of `batch`, `stream` and `late` passes: |b − s| or |b − s − l| within
    /// `tolerance` × max(|b|, 1). Allocation-free, for the per-row check.
    static func allFine(_ b: Metrics, _ s: Metrics, _ l: Metrics, tolerance: Double) -> Bool {
        @inline(__always) func fine(_ b: Int64, _ s: Int64, _ l: Int64) -> Bool {
            let d = b - s
            if d == 0 || d == l { return true }
            return Double(min(abs(d), abs(d - l))) <= tolerance * Double(max(abs(b), 1))
        }
        return fine(b.expose, s.expose, l.expose) && fine(b.click, s.click, l.click) && fine(b.play, s.play, l.play)
            && fine(b.playMs, s.playMs, l.playMs) && fine(b.like, s.like, l.like) && fine(b.share, s.share, l.share)
            && fine(b.comment, s.comment, l.comment) && fine(b.report, s.report, l.report) && fine(b.uv, s.uv, l.uv)
    }
}

/// The batch recomputation of one day: every line of the day's archive goes through `add`, then
/// `finish` applies the per-content rules that need the dimension store.
///
/// State is per day, kept compact and keyed by integers: content and user ids are interned once;
/// an event's identity (minute, content, user, event_id) is a 64-bit hash in a set (dedupe); a
/// DWM cell (minute, content, user) is a 64-bit key in a set (uv; cells holding a late event also
/// count their events); a DWS row (minute, content) indexes an array of ``Metrics``.
/// Nothing is allocated per event except when a collection grows.
struct BatchDay {
    let dayStart: Int64
    let dayEnd: Int64
    /// Per topology action: the metric it counts in (-1: none), and whether it is the play action.
    let actionNames: [[UInt8]]
    let actionMetric: [Int]
    let playAction: Int
    let pattern: ContentIdMatcher

    var reader = RawEventReader()
    var contents = ByteInterner(capacity: 1 << 14)
    var users = ByteInterner(capacity: 1 << 16)
    /// Per interned content: the id matches the topology's pattern.
    var contentWellFormed: [Bool] = []
    /// Per interned content: events that passed validation and the pattern (duplicates included),
    /// and the duplicates among them; for the unknown-content count, known only after `finish`.
    var contentEvents: [Int64] = []
    var contentDuplicates: [Int64] = []

    var identities = UInt64Set(capacity: 1 << 16)
    var cells = UInt64Set(capacity: 1 << 16)
    /// Counted events per cell, kept only for cells that hold a late event (uv of the stream).
    var lateCellEvents: [UInt64: UInt32] = [:]
    var rowIndex = UInt64IndexMap()
    var rowKeys: [UInt64] = []
    var rowMetrics: [Metrics] = []
    /// (content << 32 | user) of users with a counted click, for settlement.
    var clickers = UInt64Set(capacity: 1 << 12)

    // Accounting of lines (see ``ScanCounts``).
    var counts = ScanCounts()

    /// Late records of the day by identity (from ods.late or a late file).
    var late: [UInt64: LateEntry] = [:]

    struct LateEntry {
        var lateCopies = 0
        var archiveCopies = 0
        /// What the first archive copy contributed (set when archiveCopies becomes 1).
        var row: UInt64 = 0
        var cell: UInt64 = 0
        var metric = -1
        var playMs: Int64 = 0
        var content: UInt32 = 0
        var user: UInt32 = 0
        var click = false
    }

    init(dayStart: Int64, actions: [String], pattern: ContentIdMatcher) {
        self.dayStart = dayStart
        self.dayEnd = dayStart + 86_400_000
        actionNames = actions.map { Array($0.utf8) }
        actionMetric = actions.map { Metric.forAction($0)?.rawValue ?? -1 }
        playAction = actions.firstIndex(of: "play") ?? -1
        self.pattern = pattern
    }

    /// Keys. minuteOfDay < 1440 (11 bits); content < 2^26; user < 2^27.
    @inline(__always) static func rowKey(_ minuteOfDay: Int, _ content: UInt32) -> UInt64 {
        UInt64(minuteOfDay) << 32 | UInt64(content)
    }
    @inline(__always) static func cellKey(_ minuteOfDay: Int, _ content: UInt32, _ user: UInt32) -> UInt64 {
        UInt64(minuteOfDay) << 53 | UInt64(content) << 27 | UInt64(user)
    }
    static let maxContents = 1 << 26
    static let maxUsers = 1 << 27

    private func actionIndex(_ b: UnsafeRawBufferPointer) -> Int? {
        for (i, a) in actionNames.enumerated() where a.count == b.count {
            if a.withUnsafeBytes({ $0.elementsEqual(b) }) { return i }
        }
        return nil
    }

    /// What one line is, before the day's rules.
    enum Parsed {
        case rejected(String)
        /// Well-formed but not an event the stream counts (reason code).
        case filtered(String)
        case outsideDay
        case event(minuteOfDay: Int, content: UInt32, user: UInt32, action: Int, identity: UInt64, durationMs: Int64)
    }

    /// Validation, action, content-id pattern and day: the split's and the window's per-event rules.
    mutating func parse(_ line: UnsafeRawBufferPointer) throws(ReconcileError) -> Parsed {
        let ev: RawEvent
        do { ev = try reader.read(line) } catch { return .rejected(error.code) }
        guard let action = reader.withBytes(ev.action, in: line, { actionIndex($0) }) else { return .rejected("unknown_action") }
        var isNew = false
        let content = reader.withBytes(ev.contentId, in: line) { contents.intern($0, isNew: &isNew) }
        if isNew {
            guard contents.count <= Self.maxContents else { throw .tooManyIds("content ids", Self.maxContents) }
            contentWellFormed.append(pattern.matches(contents.string(content)))
            contentEvents.append(0)
            contentDuplicates.append(0)
        }
        guard contentWellFormed[Int(content)] else { return .filtered("invalid_content_id") }
        guard ev.ts >= dayStart && ev.ts < dayEnd else { return .outsideDay }
        let user = reader.withBytes(ev.userId, in: line) { users.intern($0, isNew: &isNew) }
        if isNew, users.count > Self.maxUsers { throw .tooManyIds("user ids", Self.maxUsers) }
        let minuteOfDay = Int((ev.ts - dayStart) / 60_000)
        let eventHash = reader.withBytes(ev.eventId, in: line) { ByteInterner.hash($0, seed: 0x1319_8A2E_0370_7344) }
        let identity = Self.cellKey(minuteOfDay, content, user) &* 0x9E37_79B9_7F4A_7C15 ^ eventHash
        return .event(minuteOfDay: minuteOfDay, content: content, user: user, action: action, identity: identity,
                      durationMs: action == playAction ? ev.durationMs : 0)
    }

    /// One archive line.
    mutating func add(_ line: UnsafeRawBufferPointer, invalidFolder: Bool) throws(ReconcileError) {
        counts.lines += 1
        switch try parse(line) {
        case .rejected(let reason): counts.deadLettered[reason, default: 0] += 1
        case .filtered(let reason): counts.filtered[reason, default: 0] += 1
        case .outsideDay: counts.outsideDay += 1
        case .event(let minuteOfDay, let content, let user, let action, let identity, let durationMs):
            if invalidFolder { counts.eventsFromInvalidFolder += 1 }
            contentEvents[Int(content)] += 1
            if !late.isEmpty, late[identity] != nil {
                late[identity]!.archiveCopies += 1
                if late[identity]!.archiveCopies > 1 {
                    contentDuplicates[Int(content)] += 1
                    return
                }
                let cell = Self.cellKey(minuteOfDay, content, user)
                late[identity]!.row = Self.rowKey(minuteOfDay, content)
                late[identity]!.cell = cell
                late[identity]!.metric = actionMetric[action]
                late[identity]!.playMs = durationMs
                late[identity]!.content = content
                late[identity]!.user = user
                late[identity]!.click = actionMetric[action] == Metric.click.rawValue
            }
            guard identities.insert(identity) else {
                contentDuplicates[Int(content)] += 1
                return
            }
            let rk = Self.rowKey(minuteOfDay, content)
            let r = Int(rowIndex.value(for: rk) {
                rowKeys.append(rk)
                rowMetrics.append(Metrics())
                return Int32(rowMetrics.count - 1)
            })
            let ck = Self.cellKey(minuteOfDay, content, user)
            if cells.insert(ck) { rowMetrics[r].uv += 1 }
            if !lateCellEvents.isEmpty, let n = lateCellEvents[ck] { lateCellEvents[ck] = n + 1 }
            let m = actionMetric[action]
            if m >= 0, let metric = Metric(rawValue: m) {
                rowMetrics[r][metric] += 1
                if metric == .click { _ = clickers.insert(UInt64(content) << 32 | UInt64(user)) }
            } else {
                counts.eventsWithoutColumn += 1
            }
            if durationMs != 0 { rowMetrics[r].playMs += durationMs }
        }
    }

    /// One late record (from ods.late): remembered by identity when it is an event of the day.
    mutating func addLate(_ line: UnsafeRawBufferPointer) throws(ReconcileError) {
        counts.lateRead += 1
        guard case .event(let minuteOfDay, let content, let user, _, let identity, _) = try parse(line) else { return }
        counts.lateOfDay += 1
        late[identity, default: LateEntry()].lateCopies += 1
        lateCellEvents[Self.cellKey(minuteOfDay, content, user)] = 0
    }
}

/// How the day's lines were accounted for.
public struct ScanCounts: Sendable, Codable, Equatable {
    public var files = 0
    public var lines = 0
    public var compressedBytes: Int64 = 0
    /// Lines the split would dead-letter, by reason code.
    public var deadLettered: [String: Int] = [:]
    /// Well-formed lines the stream does not count, by reason (invalid_content_id, unknown_content_id).
    public var filtered: [String: Int] = [:]
    /// Valid lines whose ts is not in the day (misfiled; or arrival-dated lines of the invalid folders).
    public var outsideDay = 0
    /// Events of the day counted twice in the archive (same event_id in the same cell).
    public var duplicates = 0
    /// Distinct events counted (of known contents).
    public var events = 0
    /// Events found in invalid folders (their value held a newline, or their ts was unreadable to the archiver).
    public var eventsFromInvalidFolder = 0
    /// Events of actions that have no dws_minute column.
    public var eventsWithoutColumn = 0
    /// Late records read, those that are events of the day, and those of the day absent from the archive.
    public var lateRead = 0
    public var lateOfDay = 0
    public var lateNotInArchive = 0
    /// Late records whose event was also counted in time by the stream (a duplicate that arrived late).
    public var lateDuplicatesOfCounted = 0
    /// Distinct late events that explain differences (every copy of them was late).
    public var lateExplaining = 0

    public init() {}
}
