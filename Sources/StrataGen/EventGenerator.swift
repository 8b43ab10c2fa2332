import StrataCore

/// What one generated line is. Every line is exactly one kind.
public enum GeneratedKind: Sendable, Equatable {
    /// Well-formed, known ids, in order (ts = the generator's clock).
    case valid
    /// Well-formed, content id well-formed but outside the known range (`c9xxxxxxx`).
    case unknownId
    /// Well-formed except the content id, which is one of `EventWorkload.invalidContentIds`.
    case invalidId
    /// Rejected by a strict JSON/schema validator (see `MalformedVariant`).
    case malformed
    /// A byte-identical re-send of an earlier `.valid` line (same event_id).
    case duplicate
    /// Well-formed, known ids, ts 1...outOfOrderMaxMs behind the clock.
    case outOfOrder
    /// Well-formed, known ids, ts at least lateByMs behind the clock.
    case late
}

/// The ways a malformed line is broken; each is rejected by a strict validator for a clear reason.
public enum MalformedVariant: String, CaseIterable, Sendable {
    case truncated          // a valid line cut short: unterminated JSON
    case wrongType          // ts as a string, content_id as a number, user_id null or event_id a number
    case missingField       // one of the required fields absent
    case badEventId         // event_id empty or longer than 64 bytes
    case unknownAction      // action not among the declared actions
    case invalidUTF8        // bytes that are not UTF-8 inside a string
    case notAnObject        // a JSON array or scalar at the top level
    case trailingGarbage    // a complete object followed by extra bytes
    case notJSON            // a query string, an HTML error page, a plain log line
}

public struct GeneratorStats: Sendable, Equatable {
    public var total = 0, valid = 0, unknownId = 0, invalidId = 0, malformed = 0, duplicate = 0, outOfOrder = 0, late = 0
    /// Lines the split routes to `ods.<action>`, per action: valid, unknownId, duplicate, outOfOrder
    /// and late events. Excludes invalidId (filtered) and malformed (dead-lettered) lines, so
    /// `byAction.values.sum() == routed`.
    public var byAction: [String: Int] = [:]
    /// Malformed lines per `MalformedVariant.rawValue`.
    public var malformedByVariant: [String: Int] = [:]

    public init() {}

    /// total − invalidId − malformed: what the split publishes to the micro-queues.
    public var routed: Int { total - invalidId - malformed }
}

/// Deterministic event stream for a workload: same workload (incl. seed) -> same bytes.
public struct EventGenerator: Sendable {
    public let workload: EventWorkload

    private var rng: Xoshiro256
    private let zipf: ZipfSampler
    private let permA: Int, permB: Int          // popularity rank -> content index, a bijection mod contents
    private var sessions: [Session]
    private let exposeIdx: Int, clickIdx: Int, playIdx: Int
    private let reactionIdx: [Int], reactionProb: [Double]

    // Pre-encoded JSON fragments, so rendering is byte appends and digit writes.
    private let actionFrag: [[UInt8]]           // ,"action":"<name>"
    private let bogusActionFrag: [[UInt8]]      // ,"action":"<not declared>"
    private let invalidIdFrag: [[UInt8]]        // ,"content_id":"<invalid>"
    private let actionNames: [[UInt8]]

    // Recent .valid lines, the pool duplicates are re-sent from.
    private var ring: [[UInt8]]
    private var ringTs: [Int64]
    private var ringAction: [Int]
    private var ringNext = 0, ringCount = 0

    private var emitted = 0
    private var idCounter: UInt64 = 0
    private let idKey: UInt64
    private let msPerEvent: Double
    private let cut: (malformed: Double, invalid: Double, unknown: Double, duplicate: Double, late: Double, outOfOrder: Double)

    private var kindCounts = [Int](repeating: 0, count: 7)
    private var actionCounts: [Int]
    private var variantCounts = [Int](repeating: 0, count: MalformedVariant.allCases.count)

    /// Late events start after this many lines, so every partition has a watermark to be late against.
    static let lateWarmup = 1_000
    static let ringSize = 64

    struct Session: Sendable {
        var user: Int32 = 0
        var content: Int32 = 0
        var strategy: Int8 = -1     // s0..s7, -1 = field absent
        var device: Int8 = -1       // index into deviceFrag, -1 = absent
        var net: Int8 = -1
        var page: Int8 = 0
        var exposes: Int16 = 0
        var clicks: Int16 = 0
        var plays: Int16 = 0
        var lastPlayMs: Int16 = 0
        var reactions: UInt64 = 0   // bit i = action i still to come
        var isDone: Bool { exposes == 0 && clicks == 0 && plays == 0 && reactions == 0 }
    }

    /// Precondition: `workload.validate()` passes.
    public init(_ workload: EventWorkload) {
        do { try workload.validate() } catch { preconditionFailure("\(error)") }
        self.workload = workload
        rng = Xoshiro256(seed: workload.seed)
        zipf = ZipfSampler(n: workload.contents, exponent: workload.zipfExponent)
        let n = workload.contents
        // Scatter popularity over the id space (hot content is not just c00000000, c00000001, …).
        var a = n > 1 ? Int(0x9E37_79B1 % UInt64(n)) : 1
        if a == 0 { a = 1 }
        while gcd(a, n) != 1 { a = a + 1 < n ? a + 1 : 1 }
        permA = a
        permB = Int(SplitMix64.mix(workload.seed ^ 0x5EED) % UInt64(n))
        idKey = SplitMix64.mix(workload.seed &+ 0x1D)
        msPerEvent = 1000.0 / workload.eventsPerSecond

        let actions = workload.actions
        exposeIdx = actions.firstIndex(of: "expose") ?? -1
        clickIdx = actions.firstIndex(of: "click") ?? -1
        playIdx = actions.firstIndex(of: "play") ?? -1
        let knownReaction: [String: Double] = ["like": 0.12, "share": 0.03, "comment": 0.04, "report": 0.005]
        var rIdx: [Int] = [], rProb: [Double] = []
        for (i, name) in actions.enumerated() where i != exposeIdx && i != clickIdx && i != playIdx {
            rIdx.append(i)
            rProb.append(knownReaction[name] ?? 0.05)   // actions we don't model act like reactions
        }
        reactionIdx = rIdx
        reactionProb = rProb

        actionNames = actions.map { Array($0.utf8) }
        actionFrag = actions.map { Array(",\"action\":\"\($0)\"".utf8) }
        bogusActionFrag = ["view", "purchase", "Expose", "exposure", "", "click "]
            .filter { !actions.contains($0) }
            .map { Array(",\"action\":\"\($0)\"".utf8) }
        invalidIdFrag = EventWorkload.invalidContentIds.map { Array(",\"content_id\":\"\($0)\"".utf8) }
        actionCounts = [Int](repeating: 0, count: actions.count)

        ring = (0..<Self.ringSize).map { _ in var b = [UInt8](); b.reserveCapacity(256); return b }
        ringTs = [Int64](repeating: 0, count: Self.ringSize)
        ringAction = [Int](repeating: 0, count: Self.ringSize)

        let w = workload
        var c = 0.0
        c += w.malformedShare; let m = c
        c += w.invalidIdShare; let i = c
        c += w.unknownIdShare; let u = c
        c += w.duplicateShare; let d = c
        c += w.lateShare; let l = c
        c += w.outOfOrderShare; let o = c
        cut = (m, i, u, d, l, o)

        sessions = []
        sessions.reserveCapacity(workload.concurrentSessions)
        for _ in 0..<workload.concurrentSessions { sessions.append(newSession()) }
    }

    public var stats: GeneratorStats {
        var s = GeneratorStats()
        s.total = emitted
        s.valid = kindCounts[0]; s.unknownId = kindCounts[1]; s.invalidId = kindCounts[2]; s.malformed = kindCounts[3]
        s.duplicate = kindCounts[4]; s.outOfOrder = kindCounts[5]; s.late = kindCounts[6]
        for (i, name) in workload.actions.enumerated() where actionCounts[i] > 0 { s.byAction[name] = actionCounts[i] }
        for (i, v) in MalformedVariant.allCases.enumerated() where variantCounts[i] > 0 {
            s.malformedByVariant[v.rawValue] = variantCounts[i]
        }
        return s
    }

    /// Appends exactly one line (no newline) to `line` and tells what it is.
    public mutating func next(into line: inout [UInt8]) -> GeneratedKind {
        let clock = workload.startMs + Int64(Double(emitted) * msPerEvent)
        let u = rng.unit()
        let kind: GeneratedKind
        if u < cut.malformed { kind = .malformed }
        else if u < cut.invalid { kind = .invalidId }
        else if u < cut.unknown { kind = .unknownId }
        else if u < cut.duplicate { kind = ringCount > 0 ? .duplicate : .valid }
        else if u < cut.late { kind = emitted >= Self.lateWarmup ? .late : .valid }
        else if u < cut.outOfOrder { kind = .outOfOrder }
        else { kind = .valid }
        emitted += 1

        switch kind {
        case .duplicate:
            kindCounts[4] += 1
            // Re-send something recent: its ts must stay within the out-of-orderness bound.
            var slot = (ringNext - 1 - rng.below(ringCount) + Self.ringSize) % Self.ringSize
            if clock - ringTs[slot] > workload.outOfOrderMaxMs { slot = (ringNext - 1 + Self.ringSize) % Self.ringSize }
            line.append(contentsOf: ring[slot])
            actionCounts[ringAction[slot]] += 1
            return kind
        case .malformed:
            kindCounts[3] += 1
            let (s, action, dur) = advanceSession()
            renderMalformed(into: &line, s, action: action, durationMs: dur, ts: clock)
            return kind
        case .invalidId:
            kindCounts[2] += 1
            let (s, action, dur) = advanceSession()
            render(into: &line, s, action: action, durationMs: dur, ts: clock, content: .invalid(rng.below(invalidIdFrag.count)))
            return kind
        case .unknownId:
            kindCounts[1] += 1
            let (s, action, dur) = advanceSession()
            render(into: &line, s, action: action, durationMs: dur, ts: clock, content: .unknown)
            actionCounts[action] += 1
            return kind
        case .late:
            kindCounts[6] += 1
            let (s, action, dur) = advanceSession()
            let ts = max(0, clock - workload.lateByMs - Int64(rng.below(Int(workload.lateByMs / 5) + 1)))
            render(into: &line, s, action: action, durationMs: dur, ts: ts)
            actionCounts[action] += 1
            return kind
        case .outOfOrder:
            kindCounts[5] += 1
            let (s, action, dur) = advanceSession()
            let ts = max(0, clock - 1 - Int64(rng.below(Int(workload.outOfOrderMaxMs))))
            render(into: &line, s, action: action, durationMs: dur, ts: ts)
            actionCounts[action] += 1
            return kind
        case .valid:
            kindCounts[0] += 1
            let (s, action, dur) = advanceSession()
            let start = line.count
            render(into: &line, s, action: action, durationMs: dur, ts: clock)
            actionCounts[action] += 1
            if workload.duplicateShare > 0 {
                ring[ringNext].removeAll(keepingCapacity: true)
                ring[ringNext].append(contentsOf: line[start...])
                ringTs[ringNext] = clock
                ringAction[ringNext] = action
                ringNext = (ringNext + 1) % Self.ringSize
                ringCount = min(ringCount + 1, Self.ringSize)
            }
            return kind
        }
    }

    // MARK: - Sessions

    private mutating func newSession() -> Session {
        let w = workload
        var s = Session()
        s.user = Int32(rng.below(w.users))
        let rank = zipf.sample(rng.unit())
        s.content = Int32((rank * permA + permB) % w.contents)
        s.strategy = rng.chance(0.9) ? Int8(rng.below(8)) : -1
        s.device = rng.chance(0.95) ? Int8(Self.osWeighted[rng.below(Self.osWeighted.count)] * Self.appVersions.count + rng.below(Self.appVersions.count)) : -1
        s.net = rng.chance(0.8) ? Int8(rng.below(Self.nets.count)) : -1
        s.page = Int8(rng.below(Self.pages.count))
        if exposeIdx >= 0 {
            let r = rng.unit()
            s.exposes = r < 0.1 ? 3 : r < 0.3 ? 2 : 1
        }
        let opened = rng.chance(0.25)
        if opened {
            if clickIdx >= 0 { s.clicks = 1 }
            if playIdx >= 0 {
                // 10 s heartbeats while playing; geometric length, mean about 4, capped.
                var n: Int16 = 1
                while n < 30 && rng.chance(0.75) { n += 1 }
                s.plays = n
                s.lastPlayMs = Int16(500 + rng.below(9_500))
            }
        }
        for (k, i) in reactionIdx.enumerated() where rng.chance(opened ? reactionProb[k] : reactionProb[k] * 0.2) {
            s.reactions |= 1 << UInt64(i)
        }
        // A workload without expose/click/play would otherwise give empty sessions.
        if s.isDone { s.reactions = 1 << UInt64(rng.below(w.actions.count)) }
        return s
    }

    /// Picks an in-flight session, takes its next action, replaces it when finished.
    private mutating func advanceSession() -> (Session, action: Int, durationMs: Int) {
        let slot = rng.below(sessions.count)
        let s = sessions[slot]
        var action: Int, dur = 0
        if sessions[slot].exposes > 0 {
            sessions[slot].exposes -= 1; action = exposeIdx
        } else if sessions[slot].clicks > 0 {
            sessions[slot].clicks -= 1; action = clickIdx
        } else if sessions[slot].plays > 0 {
            sessions[slot].plays -= 1; action = playIdx
            dur = sessions[slot].plays == 0 ? Int(s.lastPlayMs) : 10_000
        } else {
            let r = sessions[slot].reactions
            action = r.trailingZeroBitCount
            sessions[slot].reactions = r & (r - 1)
        }
        if sessions[slot].isDone { sessions[slot] = newSession() }
        return (s, action, dur)
    }

    // MARK: - Rendering

    enum ContentMode { case known, unknown, invalid(Int) }
    enum Corruption: Equatable {
        case none, tsString, contentIdNumber, userIdNull, eventIdNumber, eventIdEmpty, eventIdTooLong
        case omit(Int)              // 0 event_id, 1 ts, 2 action, 3 content_id, 4 user_id
        case bogusAction(Int), invalidUTF8(Int)
    }

    static let osNames = ["android", "ios", "harmony"]
    static let osWeighted = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2]   // 65 / 30 / 5 %
    static let appVersions = ["8.10.0", "8.11.2", "8.12.3", "9.0.1"]
    static let deviceFrag: [[UInt8]] = osNames.flatMap { os in
        appVersions.map { Array(",\"device\":{\"os\":\"\(os)\",\"app_ver\":\"\($0)\"}".utf8) }
    }
    // "home" first: apps open there, and the path analytics start from it.
    static let pages = ["home", "feed", "detail", "search", "follow", "channel", "profile"]
    static let pageFrag: [[UInt8]] = pages.map { Array(",\"page\":\"\($0)\"".utf8) }
    static let nets = ["wifi", "5g", "4g"]
    static let netFrag: [[UInt8]] = nets.map { Array(",\"net\":\"\($0)\"".utf8) }
    static let badUTF8: [[UInt8]] = [[0xFF], [0xC3, 0x28], [0x80], [0xE4, 0xB8], [0xC0, 0xAF]]
    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    private mutating func render(into line: inout [UInt8], _ s: Session, action: Int, durationMs: Int, ts: Int64,
                                 content: ContentMode = .known, corruption: Corruption = .none) {
        idCounter &+= 1
        let eid = SplitMix64.mix(idCounter &+ idKey)   // bijective: unique per event for a seed
        if corruption == .omit(0) {
            Self.lit(&line, "{\"ts\":")
        } else {
            Self.lit(&line, "{\"event_id\":")
            switch corruption {
            case .eventIdNumber: Self.digits(&line, eid >> 24, width: 1)
            case .eventIdEmpty: Self.lit(&line, "\"\"")
            case .eventIdTooLong:
                line.append(0x22)
                for _ in 0..<4 { Self.hex16(&line, eid) }
                Self.lit(&line, "x\"")    // 65 bytes
            default:
                line.append(0x22); Self.hex16(&line, eid); line.append(0x22)
            }
            if corruption != .omit(1) { Self.lit(&line, ",\"ts\":") }
        }
        if corruption != .omit(1) {
            if corruption == .tsString {
                line.append(0x22); Self.digits(&line, UInt64(ts), width: 1); line.append(0x22)
            } else {
                Self.digits(&line, UInt64(ts), width: 1)
            }
        }
        if case .bogusAction(let k) = corruption {
            line.append(contentsOf: bogusActionFrag[k])
        } else if corruption != .omit(2) {
            line.append(contentsOf: actionFrag[action])
        }
        if corruption == .contentIdNumber {
            Self.lit(&line, ",\"content_id\":")
            Self.digits(&line, UInt64(s.content), width: 1)
        } else if corruption != .omit(3) {
            switch content {
            case .known:
                Self.lit(&line, ",\"content_id\":\"c"); Self.digits(&line, UInt64(s.content), width: 8); line.append(0x22)
            case .unknown:
                Self.lit(&line, ",\"content_id\":\"c9"); Self.digits(&line, UInt64(rng.below(10_000_000)), width: 7); line.append(0x22)
            case .invalid(let k):
                line.append(contentsOf: invalidIdFrag[k])
            }
        }
        if corruption == .userIdNull {
            Self.lit(&line, ",\"user_id\":null")
        } else if corruption != .omit(4) {
            Self.lit(&line, ",\"user_id\":\"u"); Self.digits(&line, UInt64(s.user), width: 9)
            if case .invalidUTF8(let k) = corruption { line.append(contentsOf: Self.badUTF8[k]) }
            line.append(0x22)
        }
        if s.strategy >= 0 {
            Self.lit(&line, ",\"strategy\":\"s"); line.append(0x30 &+ UInt8(s.strategy)); line.append(0x22)
        }
        line.append(contentsOf: Self.pageFrag[Int(s.page)])
        if s.device >= 0 { line.append(contentsOf: Self.deviceFrag[Int(s.device)]) }
        if s.net >= 0 { line.append(contentsOf: Self.netFrag[Int(s.net)]) }
        if action == playIdx {
            Self.lit(&line, ",\"duration_ms\":"); Self.digits(&line, UInt64(durationMs), width: 1)
        }
        line.append(0x7D)   // }
    }

    private mutating func renderMalformed(into line: inout [UInt8], _ s: Session, action: Int, durationMs: Int, ts: Int64) {
        let variantIndex = rng.below(MalformedVariant.allCases.count)
        let variant = MalformedVariant.allCases[variantIndex]
        variantCounts[variantIndex] += 1
        let start = line.count
        switch variant {
        case .truncated:
            render(into: &line, s, action: action, durationMs: durationMs, ts: ts)
            // Keep 1...len-2 bytes: the closing brace is always gone, so the object never closes.
            let len = line.count - start
            let keep = 1 + rng.below(len - 2)
            line.removeLast(len - keep)
        case .wrongType:
            let c: [Corruption] = [.tsString, .contentIdNumber, .userIdNull, .eventIdNumber]
            render(into: &line, s, action: action, durationMs: durationMs, ts: ts, corruption: c[rng.below(c.count)])
        case .missingField:
            render(into: &line, s, action: action, durationMs: durationMs, ts: ts, corruption: .omit(rng.below(5)))
        case .badEventId:
            render(into: &line, s, action: action, durationMs: durationMs, ts: ts,
                   corruption: rng.chance(0.5) ? .eventIdEmpty : .eventIdTooLong)
        case .unknownAction:
            if bogusActionFrag.isEmpty {   // every bogus name was declared as an action: break the type instead
                render(into: &line, s, action: action, durationMs: durationMs, ts: ts, corruption: .tsString)
            } else {
                render(into: &line, s, action: action, durationMs: durationMs, ts: ts,
                       corruption: .bogusAction(rng.below(bogusActionFrag.count)))
            }
        case .invalidUTF8:
            render(into: &line, s, action: action, durationMs: durationMs, ts: ts,
                   corruption: .invalidUTF8(rng.below(Self.badUTF8.count)))
        case .notAnObject:
            switch rng.below(3) {
            case 0:
                line.append(0x5B)
                render(into: &line, s, action: action, durationMs: durationMs, ts: ts)
                line.append(0x5D)
            case 1:
                Self.lit(&line, "[\""); line.append(contentsOf: actionNames[action])
                Self.lit(&line, "\",\"c"); Self.digits(&line, UInt64(s.content), width: 8)
                Self.lit(&line, "\",\"u"); Self.digits(&line, UInt64(s.user), width: 9)
                Self.lit(&line, "\","); Self.digits(&line, UInt64(ts), width: 1); line.append(0x5D)
            default:
                let scalars: [StaticString] = ["null", "42", "true", "\"expose\""]
                Self.lit(&line, scalars[rng.below(scalars.count)])
            }
        case .trailingGarbage:
            render(into: &line, s, action: action, durationMs: durationMs, ts: ts)
            let tails: [StaticString] = ["}", ",", "]", " x", "{\"event_id\":"]
            Self.lit(&line, tails[rng.below(tails.count)])
        case .notJSON:
            switch rng.below(3) {
            case 0:
                Self.lit(&line, "action="); line.append(contentsOf: actionNames[action])
                Self.lit(&line, "&content_id=c"); Self.digits(&line, UInt64(s.content), width: 8)
                Self.lit(&line, "&user_id=u"); Self.digits(&line, UInt64(s.user), width: 9)
                Self.lit(&line, "&ts="); Self.digits(&line, UInt64(ts), width: 1)
            case 1:
                Self.lit(&line, "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>")
            default:
                Self.digits(&line, UInt64(ts), width: 1); line.append(0x20)
                line.append(contentsOf: actionNames[action])
                Self.lit(&line, " c"); Self.digits(&line, UInt64(s.content), width: 8)
                Self.lit(&line, " u"); Self.digits(&line, UInt64(s.user), width: 9)
            }
        }
    }

    // MARK: - Byte helpers

    @inline(__always)
    private static func lit(_ line: inout [UInt8], _ s: StaticString) {
        line.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Decimal digits of v, zero-padded to at least `width` (≤ 20), built in a stack buffer.
    @inline(__always)
    private static func digits(_ line: inout [UInt8], _ v: UInt64, width: Int) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buf in
            var i = 20
            var x = v
            repeat {
                i -= 1
                buf[i] = 0x30 &+ UInt8(truncatingIfNeeded: x % 10)
                x /= 10
            } while x > 0
            while 20 - i < width { i -= 1; buf[i] = 0x30 }
            line.append(contentsOf: UnsafeBufferPointer(rebasing: buf[i..<20]))
        }
    }

    @inline(__always)
    private static func hex16(_ line: inout [UInt8], _ v: UInt64) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { buf in
            hex.withUnsafeBufferPointer { h in
                for k in 0..<16 { buf[k] = h[Int((v >> UInt64(60 - 4 * k)) & 0xF)] }
            }
            line.append(contentsOf: UnsafeBufferPointer(buf))
        }
    }
}

private func gcd(_ a: Int, _ b: Int) -> Int {
    var (x, y) = (a, b)
    while y != 0 { (x, y) = (y, x % y) }
    return x
}
