// What the engine publishes at each collect: DWM rows (minute, content, user) and DWS rows
// (minute, content) with the metric columns, `final` and a deterministic `rev`. The lead job adds
// dimension columns and `emitted_at`.

/// A DWM row as the engine holds it, valid only during the `RowSink` call (pointers into the
/// engine's storage). `counts` follow `WindowConfig.actions`.
public struct DWMRowView {
    public let minute: Int64
    public let contentId: UnsafeRawBufferPointer
    public let userId: UnsafeRawBufferPointer
    /// nil when the winning event (greatest (ts, event_id)) had no strategy.
    public let strategy: UnsafeRawBufferPointer?
    public let playMs: Int64
    public let isFinal: Bool
    public let rev: Int64
    let counts: UnsafePointer<UInt32>        // actions 0..<8
    let extraCounts: UnsafePointer<UInt32>?  // actions 8...
    public let actionCount: Int

    @inline(__always)
    public func count(_ action: Int) -> Int64 {
        Int64(action < CellHeader.inlineCounts ? counts[action] : extraCounts![action - CellHeader.inlineCounts])
    }
}

/// A DWS row as the engine holds it, valid only during the `RowSink` call.
public struct DWSRowView {
    public let minute: Int64
    public let contentId: UnsafeRawBufferPointer
    public let playMs: Int64
    /// Distinct users = DWM cells of this (minute, content).
    public let uv: Int64
    public let isFinal: Bool
    public let rev: Int64
    let counts: UnsafePointer<UInt64>
    public let actionCount: Int

    @inline(__always)
    public func count(_ action: Int) -> Int64 { Int64(counts[action]) }
}

/// Receives rows without copies (e.g. to serialize JSON straight into a producer buffer).
public protocol RowSink {
    mutating func dwm(_ row: DWMRowView)
    mutating func dws(_ row: DWSRowView)
}

public struct DWMRow: Sendable, Hashable, CustomStringConvertible {
    public var minute: Int64
    public var contentId: String
    public var userId: String
    public var counts: [Int64]
    public var playMs: Int64
    public var strategy: String?
    public var isFinal: Bool
    public var rev: Int64

    public init(minute: Int64, contentId: String, userId: String, counts: [Int64], playMs: Int64,
                strategy: String?, isFinal: Bool, rev: Int64) {
        self.minute = minute
        self.contentId = contentId
        self.userId = userId
        self.counts = counts
        self.playMs = playMs
        self.strategy = strategy
        self.isFinal = isFinal
        self.rev = rev
    }

    public init(_ v: DWMRowView) {
        self.init(minute: v.minute, contentId: String(decoding: v.contentId, as: UTF8.self),
                  userId: String(decoding: v.userId, as: UTF8.self),
                  counts: (0..<v.actionCount).map { v.count($0) }, playMs: v.playMs,
                  strategy: v.strategy.map { String(decoding: $0, as: UTF8.self) }, isFinal: v.isFinal, rev: v.rev)
    }

    public var description: String {
        "dwm(\(minute) \(contentId) \(userId) \(counts) play_ms=\(playMs) strategy=\(strategy ?? "-") final=\(isFinal) rev=\(rev))"
    }
}

public struct DWSRow: Sendable, Hashable, CustomStringConvertible {
    public var minute: Int64
    public var contentId: String
    public var counts: [Int64]
    public var playMs: Int64
    public var uv: Int64
    public var isFinal: Bool
    public var rev: Int64

    public init(minute: Int64, contentId: String, counts: [Int64], playMs: Int64, uv: Int64, isFinal: Bool, rev: Int64) {
        self.minute = minute
        self.contentId = contentId
        self.counts = counts
        self.playMs = playMs
        self.uv = uv
        self.isFinal = isFinal
        self.rev = rev
    }

    public init(_ v: DWSRowView) {
        self.init(minute: v.minute, contentId: String(decoding: v.contentId, as: UTF8.self),
                  counts: (0..<v.actionCount).map { v.count($0) }, playMs: v.playMs, uv: v.uv,
                  isFinal: v.isFinal, rev: v.rev)
    }

    public var description: String {
        "dws(\(minute) \(contentId) \(counts) play_ms=\(playMs) uv=\(uv) final=\(isFinal) rev=\(rev))"
    }
}

/// The rows of one collect, materialized.
public struct Emission: Sendable, Equatable {
    public var dwm: [DWMRow] = []
    public var dws: [DWSRow] = []

    public init() {}

    public var isEmpty: Bool { dwm.isEmpty && dws.isEmpty }
}

/// Collects views into an `Emission`.
struct EmissionSink: RowSink {
    var emission = Emission()
    mutating func dwm(_ row: DWMRowView) { emission.dwm.append(DWMRow(row)) }
    mutating func dws(_ row: DWSRowView) { emission.dws.append(DWSRow(row)) }
}
