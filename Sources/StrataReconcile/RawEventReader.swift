#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The batch path's own reader of raw events. Written separately from the stream's scanner on
// purpose (an independent implementation is what makes the reconciliation worth anything): a
// recursive-descent JSON validator over the line's bytes that extracts the contract's top-level
// fields and gives the same verdicts as the contract in DESIGN.md ("Record contracts") and
// docs/time-semantics.md describe: which records are dead-lettered (and the reason code), which are
// events.

/// Where a field's bytes are: in the line, or (for strings written with escapes) in the reader's
/// scratch buffer, decoded.
struct FieldBytes {
    var start: Int
    var count: Int
    var decoded: Bool
}

/// One event as the batch path sees it.
struct RawEvent {
    var eventId = FieldBytes(start: 0, count: 0, decoded: false)
    var action = FieldBytes(start: 0, count: 0, decoded: false)
    var contentId = FieldBytes(start: 0, count: 0, decoded: false)
    var userId = FieldBytes(start: 0, count: 0, decoded: false)
    var ts: Int64 = 0
    /// 0 when absent or null.
    var durationMs: Int64 = 0
}

/// Why a line is not an event. `code` follows the dead-letter reason codes of the contract
/// (`malformed_json`, `missing_field:ts`, …), so counts can be set beside `ods.dlq`'s.
struct Rejection: Error {
    let code: String
}

/// Validates one raw event and extracts its fields. Not thread-safe (it owns a scratch buffer).
struct RawEventReader {
    static let maxBytes = 64 * 1024
    static let maxDepth = 64
    static let maxEventIdBytes = 64

    /// Decoded bytes of escaped strings of the current line.
    private(set) var scratch: [UInt8] = []

    init() { scratch.reserveCapacity(1024) }

    /// The bytes of a field of the event last read from `line`.
    @inline(__always)
    func withBytes<R>(_ f: FieldBytes, in line: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if f.decoded {
            return try scratch.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[f.start..<f.start + f.count])) }
        }
        return try body(UnsafeRawBufferPointer(rebasing: line[f.start..<f.start + f.count]))
    }

    // Field slots, in the contract's order for "missing" reasons.
    private static let fieldNames = ["event_id", "ts", "action", "content_id", "user_id", "strategy", "duration_ms", "device"]
    private static let missing = fieldNames.map { "missing_field:" + $0 }
    private static let wrongType = fieldNames.map { "wrong_type:" + $0 }
    private static let duplicate = fieldNames.map { "duplicate_field:" + $0 }
    private static let outOfRange = fieldNames.map { "out_of_range:" + $0 }
    static let malformed = Rejection(code: "malformed_json")
    static let invalidUTF8 = Rejection(code: "invalid_utf8")
    static let tooDeep = Rejection(code: "too_deep")

    mutating func read(_ line: UnsafeRawBufferPointer) throws(Rejection) -> RawEvent {
        if line.count > Self.maxBytes { throw Rejection(code: "too_large") }
        scratch.removeAll(keepingCapacity: true)
        var p = Parser(bytes: line)
        p.skipSpace()
        guard p.i < p.n else { throw Rejection(code: "empty") }
        switch line[p.i] {
        case UInt8(ascii: "{"): break
        case UInt8(ascii: "["), UInt8(ascii: "\""), UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
            throw Rejection(code: "not_an_object")
        default: throw Self.malformed
        }
        p.i += 1
        var event = RawEvent()
        var seen: UInt8 = 0
        // The first schema problem in document order; reported only if the whole line is valid JSON.
        var schema: String? = nil
        p.skipSpace()
        if p.peek == UInt8(ascii: "}") {
            p.i += 1
        } else {
            while true {
                guard p.peek == UInt8(ascii: "\"") else { throw Self.malformed }
                let key = try p.string(scratch: &scratch)
                let slot = Self.slot(of: key, line: line, scratch: scratch)
                // Key bytes in scratch are not needed any more.
                if key.decoded { scratch.removeSubrange(key.start...) }
                p.skipSpace()
                guard p.peek == UInt8(ascii: ":") else { throw Self.malformed }
                p.i += 1
                p.skipSpace()
                guard p.i < p.n else { throw Self.malformed }
                if slot < 0 {
                    try p.value(depth: 1, scratch: &scratch, keep: false)
                } else {
                    if seen & (1 << slot) != 0, schema == nil { schema = Self.duplicate[slot] }
                    seen |= 1 << slot
                    let c = line[p.i]
                    switch slot {
                    case 0, 2, 3, 4, 5: // strings (strategy may also be null)
                        if c == UInt8(ascii: "\"") {
                            let s = try p.string(scratch: &scratch)
                            switch slot {
                            case 0:
                                event.eventId = s
                                if (s.count < 1 || s.count > Self.maxEventIdBytes), schema == nil { schema = "event_id_length" }
                            case 2: event.action = s
                            case 3: event.contentId = s
                            case 4:
                                event.userId = s
                                if s.count == 0, schema == nil { schema = "empty_field:user_id" }
                            default: break
                            }
                        } else if slot == 5, c == UInt8(ascii: "n") {
                            try p.literal("null")
                        } else {
                            if schema == nil { schema = Self.wrongType[slot] }
                            try p.value(depth: 1, scratch: &scratch, keep: false)
                        }
                    case 1, 6: // integers ≥ 0 (duration_ms may also be null)
                        if c == UInt8(ascii: "-") || (c >= 0x30 && c <= 0x39) {
                            let number = try p.number()
                            switch number {
                            case .integer(let v): if slot == 1 { event.ts = v } else { event.durationMs = v }
                            case .outOfRange: if schema == nil { schema = Self.outOfRange[slot] }
                            case .notInteger: if schema == nil { schema = Self.wrongType[slot] }
                            }
                        } else if slot == 6, c == UInt8(ascii: "n") {
                            try p.literal("null")
                            event.durationMs = 0
                        } else {
                            if schema == nil { schema = Self.wrongType[slot] }
                            try p.value(depth: 1, scratch: &scratch, keep: false)
                        }
                    default: // device: an object or null, contents not used
                        if c != UInt8(ascii: "{") && c != UInt8(ascii: "n"), schema == nil { schema = Self.wrongType[7] }
                        try p.value(depth: 1, scratch: &scratch, keep: false)
                    }
                }
                p.skipSpace()
                guard p.i < p.n else { throw Self.malformed }
                if line[p.i] == UInt8(ascii: ",") {
                    p.i += 1
                    p.skipSpace()
                    continue
                }
                guard line[p.i] == UInt8(ascii: "}") else { throw Self.malformed }
                p.i += 1
                break
            }
        }
        p.skipSpace()
        guard p.i == p.n else { throw Self.malformed }
        if let schema { throw Rejection(code: schema) }
        for slot in 0..<5 where seen & (1 << slot) == 0 { throw Rejection(code: Self.missing[slot]) }
        return event
    }

    /// The field slot of a key (0…7), -1 for keys the contract does not type.
    private static func slot(of key: FieldBytes, line: UnsafeRawBufferPointer, scratch: [UInt8]) -> Int {
        if key.decoded {
            return scratch.withUnsafeBytes { slot(UnsafeRawBufferPointer(rebasing: $0[key.start..<key.start + key.count])) }
        }
        return slot(UnsafeRawBufferPointer(rebasing: line[key.start..<key.start + key.count]))
    }

    /// By length first: most keys are decided without comparing a byte.
    @inline(__always)
    private static func slot(_ k: UnsafeRawBufferPointer) -> Int {
        @inline(__always) func equal(_ name: StaticString) -> Bool {
            guard let base = k.baseAddress else { return false }
            return memcmp(base, name.utf8Start, name.utf8CodeUnitCount) == 0
        }
        switch k.count {
        case 2: return k[0] == UInt8(ascii: "t") && k[1] == UInt8(ascii: "s") ? 1 : -1
        case 6: return equal("action") ? 2 : equal("device") ? 7 : -1
        case 7: return equal("user_id") ? 4 : -1
        case 8: return equal("event_id") ? 0 : equal("strategy") ? 5 : -1
        case 10: return equal("content_id") ? 3 : -1
        case 11: return equal("duration_ms") ? 6 : -1
        default: return -1
        }
    }
}

/// A cursor over one line. Throws at the first syntax problem (which always wins over schema
/// problems, since those are only reported for a line that is valid JSON throughout).
private struct Parser {
    let bytes: UnsafeRawBufferPointer
    let n: Int
    var i = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        n = bytes.count
    }

    var peek: UInt8 { i < n ? bytes[i] : 0 }

    mutating func skipSpace() {
        while i < n {
            let c = bytes[i]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            i += 1
        }
    }

    mutating func literal(_ word: StaticString) throws(Rejection) {
        let len = word.utf8CodeUnitCount
        guard n - i >= len else { throw RawEventReader.malformed }
        for k in 0..<len where bytes[i + k] != word.utf8Start[k] { throw RawEventReader.malformed }
        i += len
    }

    enum Number { case integer(Int64), outOfRange, notInteger }

    /// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, judged as an integer ≥ 0 fitting Int64
    /// ("-0" is 0).
    mutating func number() throws(Rejection) -> Number {
        var negative = false
        if peek == UInt8(ascii: "-") { negative = true; i += 1 }
        guard i < n, bytes[i] >= 0x30, bytes[i] <= 0x39 else { throw RawEventReader.malformed }
        var value: UInt64 = 0
        var overflow = false
        if bytes[i] == 0x30 {
            i += 1
        } else {
            while i < n, bytes[i] >= 0x30, bytes[i] <= 0x39 {
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(UInt64(bytes[i] - 0x30))
                if o1 || o2 { overflow = true }
                value = s
                i += 1
            }
        }
        var integral = true
        if peek == UInt8(ascii: ".") {
            integral = false
            i += 1
            try digits()
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            integral = false
            i += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
            try digits()
        }
        guard integral else { return .notInteger }
        if overflow || value > UInt64(Int64.max) { return .outOfRange }
        if negative && value != 0 { return .outOfRange }
        return .integer(Int64(value))
    }

    private mutating func digits() throws(Rejection) {
        let start = i
        while i < n, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
        if i == start { throw RawEventReader.malformed }
    }

    /// A string at its opening quote. Without escapes its bytes are a range of the line; with
    /// escapes they are decoded into `scratch`.
    mutating func string(scratch: inout [UInt8]) throws(Rejection) -> FieldBytes {
        i += 1
        let start = i
        // Fast scan: plain bytes up to the closing quote.
        while i < n {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                return FieldBytes(start: start, count: i - 1 - start, decoded: false)
            }
            if c == UInt8(ascii: "\\") || c < 0x20 || c >= 0x80 { break }
            i += 1
        }
        // Slow path: validate (and, with escapes, decode) the rest.
        var decodedStart = -1
        while true {
            guard i < n else { throw RawEventReader.malformed }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                if decodedStart < 0 { return FieldBytes(start: start, count: i - 1 - start, decoded: false) }
                return FieldBytes(start: decodedStart, count: scratch.count - decodedStart, decoded: true)
            }
            if c < 0x20 { throw RawEventReader.malformed }
            if c == UInt8(ascii: "\\") {
                if decodedStart < 0 {
                    // First escape: copy what came before it.
                    decodedStart = scratch.count
                    scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
                }
                try escape(into: &scratch)
                continue
            }
            var len = 1
            if c >= 0x80 { len = try utf8Length(at: i) }
            if decodedStart >= 0 { scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<i + len])) }
            i += len
        }
    }

    /// Length of the well-formed UTF-8 sequence at `k` (RFC 3629: no overlongs, no surrogates,
    /// nothing above U+10FFFF).
    private func utf8Length(at k: Int) throws(Rejection) -> Int {
        let b0 = bytes[k]
        func cont(_ j: Int) -> Bool { k + j < n && bytes[k + j] & 0xC0 == 0x80 }
        func byte(_ j: Int) -> UInt8 { k + j < n ? bytes[k + j] : 0 }
        switch b0 {
        case 0xC2...0xDF: if cont(1) { return 2 }
        case 0xE0: if (0xA0...0xBF).contains(byte(1)) && cont(2) { return 3 }
        case 0xE1...0xEC, 0xEE, 0xEF: if cont(1) && cont(2) { return 3 }
        case 0xED: if (0x80...0x9F).contains(byte(1)) && cont(2) { return 3 }
        case 0xF0: if (0x90...0xBF).contains(byte(1)) && cont(2) && cont(3) { return 4 }
        case 0xF1...0xF3: if cont(1) && cont(2) && cont(3) { return 4 }
        case 0xF4: if (0x80...0x8F).contains(byte(1)) && cont(2) && cont(3) { return 4 }
        default: break
        }
        throw RawEventReader.invalidUTF8
    }

    private func hex4(at k: Int) throws(Rejection) -> UInt32 {
        guard k + 4 <= n else { throw RawEventReader.malformed }
        var v: UInt32 = 0
        for j in 0..<4 {
            let c = bytes[k + j]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw RawEventReader.malformed
            }
            v = v << 4 | d
        }
        return v
    }

    /// An escape at `i` (on the backslash), decoded as UTF-8 into `out`.
    private mutating func escape(into out: inout [UInt8]) throws(Rejection) {
        guard i + 1 < n else { throw RawEventReader.malformed }
        let e = bytes[i + 1]
        switch e {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try hex4(at: i + 2)
            i += 6
            if (0xDC00...0xDFFF).contains(scalar) { throw RawEventReader.invalidUTF8 }
            if (0xD800...0xDBFF).contains(scalar) {
                guard i + 1 < n, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                    throw RawEventReader.invalidUTF8
                }
                let low = try hex4(at: i + 2)
                guard (0xDC00...0xDFFF).contains(low) else { throw RawEventReader.invalidUTF8 }
                i += 6
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
            switch scalar {
            case ..<0x80: out.append(UInt8(scalar))
            case ..<0x800: out.append(UInt8(0xC0 | scalar >> 6)); out.append(UInt8(0x80 | scalar & 0x3F))
            case ..<0x10000:
                out.append(UInt8(0xE0 | scalar >> 12)); out.append(UInt8(0x80 | scalar >> 6 & 0x3F)); out.append(UInt8(0x80 | scalar & 0x3F))
            default:
                out.append(UInt8(0xF0 | scalar >> 18)); out.append(UInt8(0x80 | scalar >> 12 & 0x3F))
                out.append(UInt8(0x80 | scalar >> 6 & 0x3F)); out.append(UInt8(0x80 | scalar & 0x3F))
            }
            return
        default: throw RawEventReader.malformed
        }
        i += 2
    }

    /// Validates any value; `depth` is the nesting level of the container holding it (the event
    /// object is 1). Strings are validated, not kept (`keep` false drops their decoded bytes).
    mutating func value(depth: Int, scratch: inout [UInt8], keep: Bool) throws(Rejection) {
        guard i < n else { throw RawEventReader.malformed }
        switch bytes[i] {
        case UInt8(ascii: "\""):
            let mark = scratch.count
            _ = try string(scratch: &scratch)
            if !keep { scratch.removeSubrange(mark...) }
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let object = bytes[i] == UInt8(ascii: "{")
            if depth + 1 > RawEventReader.maxDepth { throw RawEventReader.tooDeep }
            i += 1
            skipSpace()
            let close = object ? UInt8(ascii: "}") : UInt8(ascii: "]")
            if peek == close { i += 1; return }
            while true {
                if object {
                    guard peek == UInt8(ascii: "\"") else { throw RawEventReader.malformed }
                    let mark = scratch.count
                    _ = try string(scratch: &scratch)
                    scratch.removeSubrange(mark...)
                    skipSpace()
                    guard peek == UInt8(ascii: ":") else { throw RawEventReader.malformed }
                    i += 1
                    skipSpace()
                }
                try value(depth: depth + 1, scratch: &scratch, keep: false)
                skipSpace()
                guard i < n else { throw RawEventReader.malformed }
                if bytes[i] == UInt8(ascii: ",") { i += 1; skipSpace(); continue }
                guard bytes[i] == close else { throw RawEventReader.malformed }
                i += 1
                return
            }
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try number()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: throw RawEventReader.malformed
        }
    }
}
