/// The synthetic behaviour workload of DESIGN.md: Zipf-skewed content popularity, user sessions
/// (expose -> click -> play heartbeats -> reactions), and configurable shares of dirty input.
/// Shares are fractions of all generated lines.
public struct EventWorkload: Sendable, Equatable {
    /// 2026-11-21T00:00:00Z, minute-aligned; fixed so a seed alone determines the bytes.
    public static let defaultStartMs: Int64 = 1_795_219_200_000

    /// Known content ids are `contentId(0..<contents)`, users `userId(0..<users)`.
    public var contents = 10_000
    public var users = 100_000
    public var zipfExponent = 1.1
    public var actions = ["expose", "click", "play", "like", "share", "comment", "report"]
    public var invalidIdShare = 0.01
    public var unknownIdShare = 0.01
    public var malformedShare = 0.005
    public var duplicateShare = 0.01
    public var outOfOrderShare = 0.05
    public var lateShare = 0.002
    /// Out-of-order events are 1...outOfOrderMaxMs behind the clock (keep below the 5 s out-of-orderness).
    public var outOfOrderMaxMs: Int64 = 4_000
    /// Very late events are at least lateByMs (and up to 1.2 × lateByMs) behind the clock.
    public var lateByMs: Int64 = 300_000
    /// Event time of the first event.
    public var startMs: Int64 = EventWorkload.defaultStartMs
    /// Event-time spacing between consecutive lines (not a wall-clock rate).
    public var eventsPerSecond: Double = 10_000
    public var seed: UInt64 = 42
    /// Sessions in flight at once; events of different sessions interleave.
    public var concurrentSessions = 1_000

    public init(contents: Int = 10_000, users: Int = 100_000, zipfExponent: Double = 1.1,
                actions: [String] = ["expose", "click", "play", "like", "share", "comment", "report"],
                invalidIdShare: Double = 0.01, unknownIdShare: Double = 0.01, malformedShare: Double = 0.005,
                duplicateShare: Double = 0.01, outOfOrderShare: Double = 0.05, lateShare: Double = 0.002,
                outOfOrderMaxMs: Int64 = 4_000, lateByMs: Int64 = 300_000,
                startMs: Int64 = EventWorkload.defaultStartMs, eventsPerSecond: Double = 10_000,
                seed: UInt64 = 42, concurrentSessions: Int = 1_000) {
        self.contents = contents
        self.users = users
        self.zipfExponent = zipfExponent
        self.actions = actions
        self.invalidIdShare = invalidIdShare
        self.unknownIdShare = unknownIdShare
        self.malformedShare = malformedShare
        self.duplicateShare = duplicateShare
        self.outOfOrderShare = outOfOrderShare
        self.lateShare = lateShare
        self.outOfOrderMaxMs = outOfOrderMaxMs
        self.lateByMs = lateByMs
        self.startMs = startMs
        self.eventsPerSecond = eventsPerSecond
        self.seed = seed
        self.concurrentSessions = concurrentSessions
    }

    /// `c%08d`: the known content id with index i.
    public static func contentId(_ i: Int) -> String { "c" + zeroPadded(i, 8) }
    /// `u%09d`: the known user id with index i.
    public static func userId(_ i: Int) -> String { "u" + zeroPadded(i, 9) }

    /// The non-content ids the reference design warns about, plus near-misses of `^c[0-9]{8}$`.
    /// None matches the default content-id pattern; invalid-id events use exactly these.
    public static let invalidContentIds = [
        "", "0", "-1", "null", "undefined", "ad:77", "NaN", "none", "[object Object]",
        "c", "c0000168", "c000016860", "C00001686", "c0000168x", "c00001686 ", " c00001686",
        "c-0000001", "cid_00001686", "ad:1024", "live:3321",
    ]

    /// Throws a message naming the first unusable setting.
    public func validate() throws {
        func fail(_ m: String) throws -> Never { throw WorkloadError(message: m) }
        if contents < 1 || contents > 90_000_000 { try fail("contents must be in 1...90000000 (c9xxxxxxx is the unknown-id range)") }
        if users < 1 || users > 999_999_999 { try fail("users must be in 1...999999999") }
        if !(zipfExponent >= 0 && zipfExponent.isFinite) { try fail("zipfExponent must be >= 0") }
        if actions.isEmpty || actions.count > 64 { try fail("actions must have 1...64 entries") }
        if Set(actions).count != actions.count { try fail("actions must be unique") }
        for a in actions where a.isEmpty || a.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 >= 0x7F }) {
            try fail("action \(a.debugDescription) must be non-empty printable ASCII without quotes or backslashes")
        }
        let shares = [("invalidIdShare", invalidIdShare), ("unknownIdShare", unknownIdShare),
                      ("malformedShare", malformedShare), ("duplicateShare", duplicateShare),
                      ("outOfOrderShare", outOfOrderShare), ("lateShare", lateShare)]
        for (name, v) in shares where !(v >= 0 && v <= 1) { try fail("\(name) must be in 0...1") }
        if shares.reduce(0, { $0 + $1.1 }) > 1 + 1e-9 { try fail("the shares add up to more than 1") }
        if outOfOrderMaxMs < 1 { try fail("outOfOrderMaxMs must be >= 1") }
        if lateByMs < 1 { try fail("lateByMs must be >= 1") }
        if startMs < 0 { try fail("startMs must be >= 0") }
        if !(eventsPerSecond > 0 && eventsPerSecond.isFinite) { try fail("eventsPerSecond must be > 0") }
        if concurrentSessions < 1 { try fail("concurrentSessions must be >= 1") }
    }

    static func zeroPadded(_ i: Int, _ width: Int) -> String {
        let s = String(i)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}

public struct WorkloadError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public var description: String { "invalid workload: \(message)" }
}
