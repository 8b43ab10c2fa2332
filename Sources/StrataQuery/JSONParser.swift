import StrataCore

/// A direct JSON-bytes → `Value` parser for input rows.
///
/// Foundation's JSONSerialization builds NSNumber/NSString/NSDictionary objects that then need
/// dynamic casts to become `Value`s; measured on 290-byte DWS rows that path decodes ~50 k rows/s,
/// this one ~10× more, so a subscriber is not bound by decoding. It accepts exactly RFC 8259 JSON
/// (arrays are parsed and become `.null`, as in `Value(json:)`); invalid UTF-8 inside strings is
/// repaired with U+FFFD. Nesting is capped so hostile input cannot overflow the stack.
struct JSONParser {
    private let bytes: UnsafeRawBufferPointer
    private var i = 0
    private static let maxDepth = 256

    struct Failure: Error {}

    private init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// The object in `bytes`, or nil if it is not exactly one valid JSON object.
    static func parseObject(_ bytes: UnsafeRawBufferPointer) -> [String: Value]? {
        var p = JSONParser(bytes)
        do {
            p.skipSpace()
            guard p.peek() == UInt8(ascii: "{") else { return nil }
            let o = try p.object(depth: 0)
            p.skipSpace()
            return p.i == bytes.count ? o : nil
        } catch {
            return nil
        }
    }

    @inline(__always) private func peek() -> UInt8? { i < bytes.count ? bytes[i] : nil }

    @inline(__always) private mutating func skipSpace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x0A, 0x0D, 0x09: i += 1
            default: return
            }
        }
    }

    @inline(__always) private mutating func expect(_ c: UInt8) throws(Failure) {
        guard i < bytes.count, bytes[i] == c else { throw Failure() }
        i += 1
    }

    private mutating func value(depth: Int) throws(Failure) -> Value {
        skipSpace()
        guard let c = peek() else { throw Failure() }
        switch c {
        case UInt8(ascii: "{"): return .object(try object(depth: depth + 1))
        case UInt8(ascii: "["): try skipArray(depth: depth + 1); return .null
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default: return try number()
        }
    }

    private mutating func object(depth: Int) throws(Failure) -> [String: Value] {
        guard depth < Self.maxDepth else { throw Failure() }
        try expect(UInt8(ascii: "{"))
        var o: [String: Value] = [:]
        skipSpace()
        if peek() == UInt8(ascii: "}") { i += 1; return o }
        o.reserveCapacity(16)
        while true {
            skipSpace()
            let key = try string()
            skipSpace()
            try expect(UInt8(ascii: ":"))
            o[key] = try value(depth: depth)
            skipSpace()
            guard let c = peek() else { throw Failure() }
            i += 1
            if c == UInt8(ascii: "}") { return o }
            guard c == UInt8(ascii: ",") else { throw Failure() }
        }
    }

    private mutating func skipArray(depth: Int) throws(Failure) {
        guard depth < Self.maxDepth else { throw Failure() }
        try expect(UInt8(ascii: "["))
        skipSpace()
        if peek() == UInt8(ascii: "]") { i += 1; return }
        while true {
            _ = try value(depth: depth)
            skipSpace()
            guard let c = peek() else { throw Failure() }
            i += 1
            if c == UInt8(ascii: "]") { return }
            guard c == UInt8(ascii: ",") else { throw Failure() }
        }
    }

    private mutating func literal(_ word: StaticString) throws(Failure) {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw Failure() }
        let w = word.utf8Start
        for k in 0..<n where bytes[i + k] != w[k] { throw Failure() }
        i += n
    }

    private mutating func string() throws(Failure) -> String {
        try expect(UInt8(ascii: "\""))
        guard let (text, end) = JSONString.read(bytes, from: i) else { throw Failure() }
        i = end
        return text
    }

    /// -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)? — integers that fit stay `.int`.
    private mutating func number() throws(Failure) -> Value {
        let start = i
        var negative = false
        if peek() == UInt8(ascii: "-") { negative = true; i += 1 }
        guard let first = peek(), first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else { throw Failure() }
        var magnitude: UInt64 = 0
        var overflow = false
        if first == UInt8(ascii: "0") {
            i += 1
        } else {
            while let d = peek(), d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") {
                let (m1, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (m2, o2) = m1.addingReportingOverflow(UInt64(d - UInt8(ascii: "0")))
                if o1 || o2 { overflow = true }
                magnitude = m2
                i += 1
            }
        }
        var isInteger = true
        if peek() == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            guard let d = peek(), d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") else { throw Failure() }
            while let d = peek(), d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") { i += 1 }
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            if let s = peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { i += 1 }
            guard let d = peek(), d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") else { throw Failure() }
            while let d = peek(), d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") { i += 1 }
        }
        if isInteger && !overflow {
            if !negative, magnitude <= UInt64(Int64.max) { return .int(Int64(magnitude)) }
            if negative, magnitude <= UInt64(Int64.max) + 1 { return .int(magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)) }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        guard let d = Double(text) else { throw Failure() }
        return .double(d)
    }
}
