// The split job's hot path: a validating, allocation-free JSON scanner for raw events (ods.raw).
//
// It walks the message once with a raw pointer, validates the whole document (RFC 8259 grammar,
// UTF-8, escapes, nesting depth) and records where the contract's top-level fields are, as byte
// ranges into the caller's buffer. No String, Array or Foundation on the success path: the caller
// compares ranges against bytes it already has (actions, id pattern) and only decodes escaped
// strings (rare) with `decodeString`.

/// A slice of the scanned buffer. For strings: the raw text between the quotes (still escaped when
/// `ScannedEvent.hasEscapes` is set).
public struct ByteRange: Sendable, Equatable, Hashable {
    public var start: Int
    public var count: Int

    @inlinable
    public init(start: Int, count: Int) {
        self.start = start
        self.count = count
    }

    @inlinable
    public var end: Int { start + count }
}

extension ByteRange {
    /// The bytes of this range inside `buffer` (the buffer that was scanned).
    @inlinable
    public func bytes(in buffer: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buffer[start..<start + count])
    }
}

/// The contract's top-level fields of one raw event, as found by `EventScanner.scan`.
public struct ScannedEvent: Sendable, Equatable {
    public var eventId: ByteRange
    public var action: ByteRange
    public var contentId: ByteRange
    public var userId: ByteRange
    /// nil when absent or JSON null.
    public var strategy: ByteRange?
    /// Event time, epoch milliseconds, ≥ 0.
    public var ts: Int64
    /// nil when absent or JSON null; otherwise ≥ 0.
    public var durationMs: Int64?
    /// One of the string fields above contains a backslash escape, so its range is raw escaped text:
    /// decode with `EventScanner.decodeString` before comparing.
    public var hasEscapes: Bool

    @inlinable
    public init(eventId: ByteRange, action: ByteRange, contentId: ByteRange, userId: ByteRange,
                strategy: ByteRange?, ts: Int64, durationMs: Int64?, hasEscapes: Bool) {
        self.eventId = eventId
        self.action = action
        self.contentId = contentId
        self.userId = userId
        self.strategy = strategy
        self.ts = ts
        self.durationMs = durationMs
        self.hasEscapes = hasEscapes
    }
}

/// The top-level fields the scanner knows about (required ones and typed optional ones).
public enum EventField: String, Sendable, CaseIterable {
    case eventId = "event_id"
    case ts
    case action
    case contentId = "content_id"
    case userId = "user_id"
    case strategy
    case durationMs = "duration_ms"
    case device

    @usableFromInline var ordinal: Int {
        switch self {
        case .eventId: 0
        case .ts: 1
        case .action: 2
        case .contentId: 3
        case .userId: 4
        case .strategy: 5
        case .durationMs: 6
        case .device: 7
        }
    }
}

/// Why a message was rejected. `reason` is a stable snake_case code (DLQ "reason" header, metric
/// label); `detail` is for humans and carries the byte offset.
///
/// Precedence: size, then syntax (`malformed_json`, `invalid_utf8`, `too_deep`, `not_an_object`,
/// `empty`) over the whole message, then the first schema problem in document order
/// (`wrong_type`, `duplicate_field`, `out_of_range`, `event_id_length`, `empty_field`), then
/// missing required fields in contract order (event_id, ts, action, content_id, user_id).
public enum ScanError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Empty or whitespace-only message.
    case empty
    case tooLarge(size: Int, limit: Int)
    /// Valid-looking JSON value that is not an object (array, string, number, literal).
    case notAnObject(offset: Int)
    /// Grammar violation: truncation, trailing data, bad number/escape/literal, raw control char.
    case malformedJSON(offset: Int, message: String)
    /// A string holds invalid UTF-8 (bad/overlong/surrogate/out-of-range sequences) or an
    /// unpaired surrogate `\u` escape (which has no UTF-8 form).
    case invalidUTF8(offset: Int, message: String)
    /// More than `limit` nested objects/arrays (the event object itself is level 1).
    case tooDeep(offset: Int, limit: Int)
    case missingField(EventField)
    case wrongType(EventField, offset: Int)
    /// A field the scanner extracts appears twice (the two values would be ambiguous).
    case duplicateField(EventField, offset: Int)
    /// An integer field outside its range (ts and duration_ms must fit Int64 and be ≥ 0).
    case outOfRange(EventField, offset: Int)
    /// event_id must be 1...64 bytes (decoded UTF-8 length).
    case eventIdLength(length: Int, offset: Int)
    /// A required string that must be non-empty (user_id) is "".
    case emptyField(EventField, offset: Int)

    public var reason: String {
        switch self {
        case .empty: "empty"
        case .tooLarge: "too_large"
        case .notAnObject: "not_an_object"
        case .malformedJSON: "malformed_json"
        case .invalidUTF8: "invalid_utf8"
        case .tooDeep: "too_deep"
        case .missingField(let f): Self.reasons.missing[f.ordinal]
        case .wrongType(let f, _): Self.reasons.wrongType[f.ordinal]
        case .duplicateField(let f, _): Self.reasons.duplicate[f.ordinal]
        case .outOfRange(let f, _): Self.reasons.outOfRange[f.ordinal]
        case .eventIdLength: "event_id_length"
        case .emptyField(let f, _): Self.reasons.emptyField[f.ordinal]
        }
    }

    public var detail: String {
        switch self {
        case .empty: "message is empty or whitespace only"
        case .tooLarge(let size, let limit): "message is \(size) bytes, limit is \(limit)"
        case .notAnObject(let o): "at byte \(o): top-level JSON value is not an object"
        case .malformedJSON(let o, let m): "at byte \(o): malformed JSON: \(m)"
        case .invalidUTF8(let o, let m): "at byte \(o): \(m)"
        case .tooDeep(let o, let limit): "at byte \(o): nesting deeper than \(limit) levels"
        case .missingField(let f): "required field \"\(f.rawValue)\" is missing"
        case .wrongType(let f, let o): "at byte \(o): field \"\(f.rawValue)\" has the wrong type (expected \(Self.expectedType(f)))"
        case .duplicateField(let f, let o): "at byte \(o): field \"\(f.rawValue)\" appears more than once"
        case .outOfRange(let f, let o): "at byte \(o): field \"\(f.rawValue)\" is out of range (0...\(Int64.max))"
        case .eventIdLength(let n, let o): "at byte \(o): event_id is \(n) bytes, must be 1...\(EventScanner.maxEventIdBytes)"
        case .emptyField(let f, let o): "at byte \(o): field \"\(f.rawValue)\" must not be empty"
        }
    }

    public var description: String { "\(reason): \(detail)" }

    private static func expectedType(_ f: EventField) -> String {
        switch f {
        case .eventId, .action, .contentId, .userId: "string"
        case .strategy: "string or null"
        case .ts: "integer"
        case .durationMs: "integer or null"
        case .device: "object or null"
        }
    }

    // Built once so `reason` never allocates on the (possibly hot) rejection path.
    private struct Reasons: Sendable {
        let missing, wrongType, duplicate, outOfRange, emptyField: [String]
        init() {
            func table(_ prefix: String) -> [String] { EventField.allCases.map { prefix + $0.rawValue } }
            missing = table("missing_field:")
            wrongType = table("wrong_type:")
            duplicate = table("duplicate_field:")
            outOfRange = table("out_of_range:")
            emptyField = table("empty_field:")
        }
    }
    private static let reasons = Reasons()
}

public struct EventScanner: Sendable {
    public static let maxDepth = 64
    public static let maxEventIdBytes = 64

    public let maxBytes: Int

    public init(maxBytes: Int = 64 * 1024) {
        self.maxBytes = maxBytes
    }

    public func scan(_ bytes: UnsafeRawBufferPointer) throws(ScanError) -> ScannedEvent {
        // Size first: never spend time on a message that is rejected anyway.
        if bytes.count > maxBytes { throw .tooLarge(size: bytes.count, limit: maxBytes) }
        guard bytes.count > 0, let base = bytes.baseAddress else { throw .empty }
        return try _Cursor.scanEvent(base: base, count: bytes.count)
    }

    /// Slow path: unescape a string range (`\" \\ \/ \b \f \n \r \t \uXXXX`, surrogate pairs) to
    /// UTF-8. Meant for ranges the scanner accepted; on anything else it does not trap (invalid
    /// escapes are copied raw, unpaired surrogates become U+FFFD).
    public static func decodeString(_ bytes: UnsafeRawBufferPointer, _ range: ByteRange) -> [UInt8] {
        let raw = range.bytes(in: bytes)
        guard raw.contains(UInt8(ascii: "\\")) else { return Array(raw) }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        _forEachDecodedByte(raw) { out.append($0); return true }
        return out
    }

    /// Compares the decoded value of `range` with `expected` without allocating.
    public static func decodedEquals(_ bytes: UnsafeRawBufferPointer, _ range: ByteRange,
                                     _ expected: UnsafeRawBufferPointer) -> Bool {
        _decodedEquals(range.bytes(in: bytes), expected)
    }
}

// MARK: - Implementation

@usableFromInline let _quote: UInt8 = 0x22
@usableFromInline let _backslash: UInt8 = 0x5C

/// Keys the scanner dispatches on; `seen` bits follow the raw values.
enum _Key: UInt8 {
    case eventId = 0, ts, action, contentId, userId, strategy, durationMs, device, other

    var field: EventField {
        switch self {
        case .eventId: .eventId
        case .ts: .ts
        case .action: .action
        case .contentId: .contentId
        case .userId: .userId
        case .strategy: .strategy
        case .durationMs: .durationMs
        case .device, .other: .device
        }
    }

    static let known: [(_Key, StaticString)] = [
        (.eventId, "event_id"), (.ts, "ts"), (.action, "action"), (.contentId, "content_id"),
        (.userId, "user_id"), (.strategy, "strategy"), (.durationMs, "duration_ms"), (.device, "device"),
    ]
}

struct _Number {
    var negative: Bool
    /// No fraction and no exponent.
    var integral: Bool
    /// More than 19 integer digits: cannot fit 64 bits.
    var overflow: Bool
    var magnitude: UInt64

    /// The value when it is an integer in 0...Int64.max ("-0" counts as 0).
    @inline(__always) var nonNegativeInt64: Int64? {
        guard integral, !overflow, magnitude <= UInt64(Int64.max) else { return nil }
        if negative && magnitude != 0 { return nil }
        return Int64(magnitude)
    }
}

struct _Cursor {
    let base: UnsafeRawPointer
    let end: UnsafeRawPointer
    var p: UnsafeRawPointer

    @inline(__always) init(base: UnsafeRawPointer, end: UnsafeRawPointer, p: UnsafeRawPointer) {
        self.base = base
        self.end = end
        self.p = p
    }

    // Performance note: every function that is not inlined is static and takes/returns the
    // position by value, so a caller's cursor never escapes and `p` stays in a register.

    @inline(__always) var offset: Int { p - base }
    @inline(__always) var byte: UInt8 { p.load(as: UInt8.self) }

    @inline(__always) func malformed(_ message: String, at q: UnsafeRawPointer? = nil) -> ScanError {
        .malformedJSON(offset: (q ?? p) - base, message: message)
    }

    @inline(__always) mutating func skipWhitespace() {
        while p < end {
            let b = byte
            // Every JSON whitespace byte is ≤ 0x20: one compare for the common case.
            if b > 0x20 || !(b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09) { return }
            p += 1
        }
    }

    // MARK: event object

    static func scanEvent(base: UnsafeRawPointer, count: Int) throws(ScanError) -> ScannedEvent {
        var c = _Cursor(base: base, end: base + count, p: base)
        return try c.scanEventObject()
    }

    @inline(__always)
    mutating func scanEventObject() throws(ScanError) -> ScannedEvent {
        skipWhitespace()
        guard p < end else { throw .empty }
        let first = byte
        guard first == UInt8(ascii: "{") else {
            switch first {
            case UInt8(ascii: "["), _quote, UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                throw .notAnObject(offset: offset)
            default:
                throw malformed("expected '{' at the start of the message")
            }
        }
        p += 1

        let zero = ByteRange(start: 0, count: 0)
        var ev = ScannedEvent(eventId: zero, action: zero, contentId: zero, userId: zero,
                              strategy: nil, ts: 0, durationMs: nil, hasEscapes: false)
        var seen: UInt16 = 0
        // Schema problems do not stop the scan: the message must still be proven well-formed
        // first, so a syntax error always wins over a schema error.
        var schemaError: ScanError? = nil

        skipWhitespace()
        guard p < end else { throw malformed("unterminated object") }
        if byte == UInt8(ascii: "}") {
            p += 1
        } else {
            while true {
                guard p < end else { throw malformed("unterminated object, expected a key") }
                guard byte == _quote else { throw malformed("expected a string key") }
                let keyStart = p
                p += 1
                let kBegin = p
                let kSaved = try scanString()
                let kLen = p - kBegin
                p += 1
                skipWhitespace()
                guard p < end else { throw malformed("unterminated object, expected ':'") }
                guard byte == UInt8(ascii: ":") else { throw malformed("expected ':' after key") }
                p += 1
                skipWhitespace()
                guard p < end else { throw malformed("unterminated object, expected a value") }

                let key = kSaved == 0 ? Self.matchKey(kBegin, kLen) : Self.matchEscapedKey(kBegin, kLen)
                if key == .other {
                    try skipValue(outerDepth: 1)
                } else {
                    let bit = UInt16(1) << key.rawValue
                    if seen & bit != 0, schemaError == nil {
                        schemaError = .duplicateField(key.field, offset: keyStart - base)
                    }
                    seen |= bit
                    let v = byte
                    let valueOffset = offset
                    switch key {
                    case .eventId, .action, .contentId, .userId, .strategy:
                        if v == _quote {
                            p += 1
                            let s = p
                            let saved = try scanString()
                            let range = ByteRange(start: s - base, count: p - s)
                            p += 1
                            if saved != 0 { ev.hasEscapes = true }
                            switch key {
                            case .eventId:
                                ev.eventId = range
                                let decoded = range.count - saved
                                if (decoded < 1 || decoded > EventScanner.maxEventIdBytes), schemaError == nil {
                                    schemaError = .eventIdLength(length: decoded, offset: valueOffset)
                                }
                            case .action: ev.action = range
                            case .contentId: ev.contentId = range
                            case .userId:
                                ev.userId = range
                                if range.count == 0, schemaError == nil {
                                    schemaError = .emptyField(.userId, offset: valueOffset)
                                }
                            default: ev.strategy = range
                            }
                        } else if key == .strategy, v == UInt8(ascii: "n") {
                            try literal("null")
                            ev.strategy = nil
                        } else {
                            if schemaError == nil { schemaError = .wrongType(key.field, offset: valueOffset) }
                            try skipValue(outerDepth: 1)
                        }
                    case .ts, .durationMs:
                        if v == UInt8(ascii: "-") || (v &- UInt8(ascii: "0")) < 10 {
                            let n = try scanNumber()
                            if let value = n.nonNegativeInt64 {
                                if key == .ts { ev.ts = value } else { ev.durationMs = value }
                            } else if schemaError == nil {
                                schemaError = n.integral
                                    ? .outOfRange(key.field, offset: valueOffset)
                                    : .wrongType(key.field, offset: valueOffset)
                            }
                        } else if key == .durationMs, v == UInt8(ascii: "n") {
                            try literal("null")
                            ev.durationMs = nil
                        } else {
                            if schemaError == nil { schemaError = .wrongType(key.field, offset: valueOffset) }
                            try skipValue(outerDepth: 1)
                        }
                    default: // .device: an object (or null); contents are not extracted
                        if v != UInt8(ascii: "{") && v != UInt8(ascii: "n"), schemaError == nil {
                            schemaError = .wrongType(.device, offset: valueOffset)
                        }
                        try skipValue(outerDepth: 1)
                    }
                }

                skipWhitespace()
                guard p < end else { throw malformed("unterminated object, expected ',' or '}'") }
                let d = byte
                if d == UInt8(ascii: ",") {
                    p += 1
                    skipWhitespace()
                    continue
                }
                if d == UInt8(ascii: "}") {
                    p += 1
                    break
                }
                throw malformed("expected ',' or '}' after a value")
            }
        }

        skipWhitespace()
        if p != end { throw malformed("unexpected data after the event object") }
        if let e = schemaError { throw e }
        if seen & 0b1_1111 != 0b1_1111 {
            for k in [_Key.eventId, .ts, .action, .contentId, .userId] where seen & (1 << k.rawValue) == 0 {
                throw .missingField(k.field)
            }
        }
        return ev
    }

    /// Dispatch on length, then bytes: most keys are rejected by the length switch alone.
    @inline(__always)
    static func matchKey(_ k: UnsafeRawPointer, _ n: Int) -> _Key {
        switch n {
        case 2:
            return k.load(as: UInt8.self) == UInt8(ascii: "t") && k.load(fromByteOffset: 1, as: UInt8.self) == UInt8(ascii: "s") ? .ts : .other
        case 6:
            if equal(k, "action") { return .action }
            if equal(k, "device") { return .device }
            return .other
        case 7:
            return equal(k, "user_id") ? .userId : .other
        case 8:
            if equal(k, "event_id") { return .eventId }
            if equal(k, "strategy") { return .strategy }
            return .other
        case 10:
            return equal(k, "content_id") ? .contentId : .other
        case 11:
            return equal(k, "duration_ms") ? .durationMs : .other
        default:
            return .other
        }
    }

    @inline(__always)
    static func equal(_ k: UnsafeRawPointer, _ s: StaticString) -> Bool {
        let q = s.utf8Start
        for i in 0..<s.utf8CodeUnitCount where k.load(fromByteOffset: i, as: UInt8.self) != q[i] {
            return false
        }
        return true
    }

    /// A key written with escapes ("ev\u0065nt_id") is still that key: compare decoded bytes.
    static func matchEscapedKey(_ k: UnsafeRawPointer, _ n: Int) -> _Key {
        let raw = UnsafeRawBufferPointer(start: k, count: n)
        for (key, name) in _Key.known
        where _decodedEquals(raw, UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)) {
            return key
        }
        return .other
    }

    // MARK: strings

    /// Scans string content; `p` is just after the opening quote and ends on the closing quote.
    /// Returns how many bytes escapes save (raw length − decoded length); 0 means no escapes.
    @inline(__always)
    mutating func scanString() throws(ScanError) -> Int {
        #if _endian(little)
        // Inlined fast path for the common string: plain ASCII up to the closing quote.
        while end - p >= 8 {
            let m = Self.specialBytes(p.loadUnaligned(as: UInt64.self))
            if m != 0 {
                p += m.trailingZeroBitCount &>> 3
                if p.load(as: UInt8.self) == _quote { return 0 }
                break
            }
            p += 8
        }
        #endif
        let (q, saved) = try Self.scanStringSlow(base: base, end: end, at: p)
        p = q
        return saved
    }

    @inline(never)
    static func scanStringSlow(base: UnsafeRawPointer, end: UnsafeRawPointer, at p: UnsafeRawPointer)
        throws(ScanError) -> (UnsafeRawPointer, Int) {
        var c = _Cursor(base: base, end: end, p: p)
        let saved = try c.scanStringLoop()
        return (c.p, saved)
    }

    @inline(__always)
    mutating func scanStringLoop() throws(ScanError) -> Int {
        var saved = 0
        while true {
            #if _endian(little)
            // 8 bytes at a time until a byte that needs attention: '"', '\', < 0x20 or ≥ 0x80.
            while end - p >= 8 {
                let m = Self.specialBytes(p.loadUnaligned(as: UInt64.self))
                if m != 0 {
                    p += m.trailingZeroBitCount &>> 3
                    break
                }
                p += 8
            }
            #endif
            guard p < end else { throw malformed("unterminated string") }
            let b = byte
            if b == _quote { return saved }
            if b == _backslash {
                saved += try scanEscape()
            } else if b < 0x20 {
                throw malformed("raw control character in a string")
            } else if b >= 0x80 {
                try scanUTF8Sequence(b)
            } else {
                p += 1
            }
        }
    }

    /// High bit set in each byte of `w` that is '"', '\', < 0x20 or ≥ 0x80. Bytes above the first
    /// flagged one may be false positives (borrow propagation); the lowest flagged byte is exact,
    /// and that is the only one used.
    @inline(__always)
    static func specialBytes(_ w: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        let control = (w &- ones &* 0x20) & ~w
        let q = w ^ (ones &* 0x22)
        let quote = (q &- ones) & ~q
        let s = w ^ (ones &* 0x5C)
        let slash = (s &- ones) & ~s
        return (control | quote | slash | w) & high
    }

    /// `p` on a backslash. Returns raw bytes minus decoded bytes.
    @inline(__always)
    mutating func scanEscape() throws(ScanError) -> Int {
        let start = p
        guard end - p >= 2 else { throw malformed("unterminated string") }
        switch p.load(fromByteOffset: 1, as: UInt8.self) {
        case _quote, _backslash, UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
             UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            p += 2
            return 1
        case UInt8(ascii: "u"):
            let u = try hex4(p + 2)
            p += 6
            if u >= 0xDC00 && u <= 0xDFFF {
                throw .invalidUTF8(offset: start - base, message: "unpaired low surrogate escape")
            }
            if u >= 0xD800 && u <= 0xDBFF {
                guard end - p >= 2 else { throw malformed("unterminated string") }
                guard p.load(as: UInt8.self) == _backslash,
                      p.load(fromByteOffset: 1, as: UInt8.self) == UInt8(ascii: "u") else {
                    throw .invalidUTF8(offset: start - base, message: "unpaired high surrogate escape")
                }
                let lo = try hex4(p + 2)
                guard lo >= 0xDC00 && lo <= 0xDFFF else {
                    throw .invalidUTF8(offset: start - base, message: "unpaired high surrogate escape")
                }
                p += 6
                return 12 - 4
            }
            return 6 - (u < 0x80 ? 1 : u < 0x800 ? 2 : 3)
        default:
            throw malformed("invalid escape sequence", at: start)
        }
    }

    /// Hot path: reads through the scanner's raw pointer and names the failing offset, so it stays
    /// here rather than using `JSONString.hex4` (index-based, no error position).
    @inline(__always)
    func hex4(_ q: UnsafeRawPointer) throws(ScanError) -> UInt32 {
        guard end - q >= 4 else { throw malformed("truncated \\u escape", at: min(q, end)) }
        var v: UInt32 = 0
        for i in 0..<4 {
            guard let h = JSONString.hexValue(q.load(fromByteOffset: i, as: UInt8.self)) else {
                throw malformed("invalid hex digit in \\u escape", at: q + i)
            }
            v = v << 4 | h
        }
        return v
    }

    /// `p` on a byte ≥ 0x80. Well-formed UTF-8 per RFC 3629 / Unicode Table 3-7: rejects
    /// overlongs, encoded surrogates (ED A0..BF) and code points above U+10FFFF.
    @inline(__always)
    mutating func scanUTF8Sequence(_ lead: UInt8) throws(ScanError) {
        let avail = end - p
        @inline(__always) func at(_ i: Int) -> UInt8 { p.load(fromByteOffset: i, as: UInt8.self) }
        @inline(__always) func cont(_ b: UInt8) -> Bool { b & 0xC0 == 0x80 }
        let ok: Bool
        let n: Int
        switch lead {
        case 0xC2...0xDF:
            n = 2
            ok = avail >= 2 && cont(at(1))
        case 0xE0:
            n = 3
            ok = avail >= 3 && (0xA0...0xBF).contains(at(1)) && cont(at(2))
        case 0xE1...0xEC, 0xEE...0xEF:
            n = 3
            ok = avail >= 3 && cont(at(1)) && cont(at(2))
        case 0xED:
            n = 3
            ok = avail >= 3 && (0x80...0x9F).contains(at(1)) && cont(at(2))
        case 0xF0:
            n = 4
            ok = avail >= 4 && (0x90...0xBF).contains(at(1)) && cont(at(2)) && cont(at(3))
        case 0xF1...0xF3:
            n = 4
            ok = avail >= 4 && cont(at(1)) && cont(at(2)) && cont(at(3))
        case 0xF4:
            n = 4
            ok = avail >= 4 && (0x80...0x8F).contains(at(1)) && cont(at(2)) && cont(at(3))
        default:
            n = 1
            ok = false
        }
        guard ok else { throw .invalidUTF8(offset: offset, message: "invalid UTF-8 sequence in a string") }
        p += n
    }

    // MARK: other values

    /// Inlined fast path for the common number, a positive integer of at most 19 digits (ts,
    /// duration_ms); anything else goes to the full grammar out of line.
    @inline(__always)
    mutating func scanNumber() throws(ScanError) -> _Number {
        var q = p
        let first = q.load(as: UInt8.self) &- UInt8(ascii: "0")
        if first &- 1 < 9 {
            var mag = UInt64(first)
            q += 1
            #if _endian(little)
            if end - q >= 8 {
                // Eight digits at once (SWAR): all bytes in '0'...'9', then pairwise combine.
                let w = q.loadUnaligned(as: UInt64.self)
                let v = w &- 0x3030_3030_3030_3030
                if (w & 0xF0F0_F0F0_F0F0_F0F0) == 0x3030_3030_3030_3030,
                   ((w &+ 0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) == 0x3030_3030_3030_3030 {
                    var x = (v &* 10 &+ (v &>> 8)) & 0x00FF_00FF_00FF_00FF
                    x = (x &* 100 &+ (x &>> 16)) & 0x0000_FFFF_0000_FFFF
                    x = (x &* 10000 &+ (x &>> 32)) & 0xFFFF_FFFF
                    mag = mag &* 100_000_000 &+ x
                    q += 8
                }
            }
            #endif
            while q < end {
                let d = q.load(as: UInt8.self) &- UInt8(ascii: "0")
                if d >= 10 { break }
                mag = mag &* 10 &+ UInt64(d)
                q += 1
            }
            if q - p <= 19 {
                let next = q < end ? q.load(as: UInt8.self) | 0x20 : 0
                if next != UInt8(ascii: ".") | 0x20 && next != UInt8(ascii: "e") {
                    p = q
                    return _Number(negative: false, integral: true, overflow: false, magnitude: mag)
                }
            }
        }
        let (r, n) = try Self.scanNumberSlow(base: base, end: end, at: p)
        p = r
        return n
    }

    @inline(never)
    static func scanNumberSlow(base: UnsafeRawPointer, end: UnsafeRawPointer, at p: UnsafeRawPointer)
        throws(ScanError) -> (UnsafeRawPointer, _Number) {
        var c = _Cursor(base: base, end: end, p: p)
        let n = try c.scanNumberFull()
        return (c.p, n)
    }

    /// JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    @inline(__always)
    mutating func scanNumberFull() throws(ScanError) -> _Number {
        let start = p
        var n = _Number(negative: false, integral: true, overflow: false, magnitude: 0)
        if byte == UInt8(ascii: "-") {
            n.negative = true
            p += 1
        }
        guard p < end else { throw malformed("truncated number", at: start) }
        let first = byte &- UInt8(ascii: "0")
        if first == 0 {
            p += 1 // a leading zero stands alone: "01" fails at the caller's ',' check
        } else if first < 10 {
            let digitsStart = p
            var mag: UInt64 = 0
            while p < end {
                let d = byte &- UInt8(ascii: "0")
                if d >= 10 { break }
                mag = mag &* 10 &+ UInt64(d)
                p += 1
            }
            // 19 digits always fit UInt64; 20+ digits with a non-zero lead exceed Int64.max.
            if p - digitsStart > 19 { n.overflow = true }
            n.magnitude = mag
        } else {
            throw malformed("invalid number", at: start)
        }
        if p < end && byte == UInt8(ascii: ".") {
            n.integral = false
            p += 1
            try digits()
        }
        if p < end && (byte | 0x20) == UInt8(ascii: "e") {
            n.integral = false
            p += 1
            if p < end && (byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-")) { p += 1 }
            try digits()
        }
        return n
    }

    @inline(__always)
    mutating func digits() throws(ScanError) {
        let start = p
        while p < end && (byte &- UInt8(ascii: "0")) < 10 { p += 1 }
        if p == start { throw malformed("expected a digit in number") }
    }

    @inline(__always)
    mutating func literal(_ s: StaticString) throws(ScanError) {
        let n = s.utf8CodeUnitCount
        guard end - p >= n, Self.equal(p, s) else { throw malformed("invalid literal") }
        p += n
    }

    @inline(__always)
    mutating func skipValue(outerDepth: Int) throws(ScanError) {
        if byte == _quote { // unknown string fields ("page") are common: keep them inline
            p += 1
            _ = try scanString()
            p += 1
            return
        }
        p = try Self.skipValue(base: base, end: end, at: p, outerDepth: outerDepth)
    }

    /// Validates and skips any JSON value at `p` without recursion. `outerDepth` is the nesting
    /// level of the container holding the value (the event object is level 1). A 64-bit mask
    /// records object-vs-array per open level, enough for the 64-level limit.
    @inline(never)
    static func skipValue(base: UnsafeRawPointer, end: UnsafeRawPointer, at p: UnsafeRawPointer,
                          outerDepth: Int) throws(ScanError) -> UnsafeRawPointer {
        var c = _Cursor(base: base, end: end, p: p)
        try c.skipValueLoop(outerDepth: outerDepth)
        return c.p
    }

    @inline(__always)
    mutating func skipValueLoop(outerDepth: Int) throws(ScanError) {
        var level = 0
        var isObject: UInt64 = 0 // bit 0 = innermost open container
        value: while true {
            guard p < end else { throw malformed("unexpected end, expected a value") }
            let c = byte
            switch c {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                level += 1
                if outerDepth + level > EventScanner.maxDepth {
                    throw .tooDeep(offset: offset, limit: EventScanner.maxDepth)
                }
                let obj = c == UInt8(ascii: "{")
                isObject = isObject << 1 | (obj ? 1 : 0)
                p += 1
                skipWhitespace()
                guard p < end else { throw malformed(obj ? "unterminated object" : "unterminated array") }
                if byte == (obj ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    p += 1
                    level -= 1
                    isObject >>= 1
                } else {
                    if obj { try memberKey() }
                    continue value
                }
            case _quote:
                p += 1
                _ = try scanString()
                p += 1
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                _ = try scanNumber()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            default:
                throw malformed("unexpected byte, expected a value")
            }
            // A value is complete; close containers until one continues with ','.
            while level > 0 {
                skipWhitespace()
                guard p < end else { throw malformed("unterminated container") }
                let d = byte
                let obj = isObject & 1 == 1
                if d == UInt8(ascii: ",") {
                    p += 1
                    skipWhitespace()
                    if obj { try memberKey() }
                    continue value
                }
                guard d == (obj ? UInt8(ascii: "}") : UInt8(ascii: "]")) else {
                    throw malformed(obj ? "expected ',' or '}' in object" : "expected ',' or ']' in array")
                }
                p += 1
                level -= 1
                isObject >>= 1
            }
            return
        }
    }

    /// `"key" :` inside a skipped object; leaves `p` on the value.
    @inline(__always)
    mutating func memberKey() throws(ScanError) {
        guard p < end else { throw malformed("unterminated object, expected a key") }
        guard byte == _quote else { throw malformed("expected a string key") }
        p += 1
        _ = try scanString()
        p += 1
        skipWhitespace()
        guard p < end else { throw malformed("unterminated object, expected ':'") }
        guard byte == UInt8(ascii: ":") else { throw malformed("expected ':' after key") }
        p += 1
        skipWhitespace()
    }
}

/// Decodes escaped string text, handing each UTF-8 byte to `emit` until it returns false.
/// Tolerant of input the scanner would reject (see `decodeString`). Kept apart from the strict
/// `JSONString.read`: it works on ranges already validated, allocates nothing and never fails.
func _forEachDecodedByte(_ raw: UnsafeRawBufferPointer, _ emit: (UInt8) -> Bool) {
    let n = raw.count
    func hex(_ i: Int) -> UInt32? { JSONString.hex4(raw, at: i) }
    var i = 0
    while i < n {
        let c = raw[i]
        guard c == _backslash, i + 1 < n else {
            if !emit(c) { return }
            i += 1
            continue
        }
        let e = raw[i + 1]
        var single: UInt8? = nil
        switch e {
        case _quote, _backslash, UInt8(ascii: "/"): single = e
        case UInt8(ascii: "b"): single = 0x08
        case UInt8(ascii: "f"): single = 0x0C
        case UInt8(ascii: "n"): single = 0x0A
        case UInt8(ascii: "r"): single = 0x0D
        case UInt8(ascii: "t"): single = 0x09
        case UInt8(ascii: "u"):
            guard let u = hex(i + 2) else {
                if !emit(c) { return }
                i += 1
                continue
            }
            var scalar = u
            var advance = 6
            if u >= 0xD800 && u <= 0xDBFF, i + 12 <= n, raw[i + 6] == _backslash,
               raw[i + 7] == UInt8(ascii: "u"), let lo = hex(i + 8), lo >= 0xDC00 && lo <= 0xDFFF {
                scalar = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                advance = 12
            } else if u >= 0xD800 && u <= 0xDFFF {
                scalar = 0xFFFD
            }
            if !_emitUTF8(scalar, emit) { return }
            i += advance
            continue
        default:
            break
        }
        if let s = single {
            if !emit(s) { return }
            i += 2
        } else {
            if !emit(c) { return }
            i += 1
        }
    }
}

/// UTF-8 encodes a scalar value (never a surrogate here) into `emit`; false when `emit` stopped.
@inline(__always)
func _emitUTF8(_ s: UInt32, _ emit: (UInt8) -> Bool) -> Bool {
    switch s {
    case ..<0x80:
        return emit(UInt8(s))
    case ..<0x800:
        return emit(UInt8(0xC0 | s >> 6)) && emit(UInt8(0x80 | s & 0x3F))
    case ..<0x10000:
        return emit(UInt8(0xE0 | s >> 12)) && emit(UInt8(0x80 | s >> 6 & 0x3F)) && emit(UInt8(0x80 | s & 0x3F))
    default:
        return emit(UInt8(0xF0 | s >> 18)) && emit(UInt8(0x80 | s >> 12 & 0x3F))
            && emit(UInt8(0x80 | s >> 6 & 0x3F)) && emit(UInt8(0x80 | s & 0x3F))
    }
}

func _decodedEquals(_ raw: UnsafeRawBufferPointer, _ expected: UnsafeRawBufferPointer) -> Bool {
    var j = 0
    var equal = true
    _forEachDecodedByte(raw) { b in
        if j < expected.count && expected[j] == b {
            j += 1
            return true
        }
        equal = false
        return false
    }
    return equal && j == expected.count
}
