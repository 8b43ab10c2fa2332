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
            try skipValue(depth: depth)
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
        if let integer = try scanNumber() { return .int(integer) }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        guard let d = Double(text) else { throw Failure() }
        return .double(d)
    }

    /// Moves past a number; its value when it is an integer that fits in Int64.
    private mutating func scanNumber() throws(Failure) -> Int64? {
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
            if !negative, magnitude <= UInt64(Int64.max) { return Int64(magnitude) }
            if negative, magnitude <= UInt64(Int64.max) + 1 { return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude) }
        }
        return nil
    }
}

// MARK: - Decoding into slots

extension JSONParser {
    /// Decodes the object in `bytes` into the slots of `tree` (see `RowLayout`): only the fields the
    /// tree names are built; the rest are checked and skipped. Slots start out null and stay null
    /// for fields the row lacks. False when `bytes` is not exactly one valid JSON object (the same
    /// grammar as `parseObject`, so both accept and reject the same rows).
    static func parseObject(_ bytes: UnsafeRawBufferPointer, tree: FieldTree, into out: UnsafeMutableBufferPointer<Value>) -> Bool {
        var p = JSONParser(bytes)
        do {
            p.skipSpace()
            guard p.peek() == UInt8(ascii: "{") else { return false }
            try p.object(depth: 0, node: 0, tree, out)
            p.skipSpace()
            return p.i == bytes.count
        } catch {
            return false
        }
    }

    private mutating func object(depth: Int, node: Int, _ tree: FieldTree, _ out: UnsafeMutableBufferPointer<Value>) throws(Failure) {
        guard depth < Self.maxDepth else { throw Failure() }
        try expect(UInt8(ascii: "{"))
        skipSpace()
        if peek() == UInt8(ascii: "}") { i += 1; return }
        while true {
            skipSpace()
            try expect(UInt8(ascii: "\""))
            // Keys without escapes are matched in place; others are decoded first.
            let child: Int
            if let j = plainStringEnd(from: i) {
                child = tree.child(of: node, key: bytes, i, j)
                i = j + 1
            } else {
                guard let (key, end) = JSONString.read(bytes, from: i) else { throw Failure() }
                child = tree.child(of: node, named: key)
                i = end
            }
            skipSpace()
            try expect(UInt8(ascii: ":"))
            if child < 0 {
                try skipValue(depth: depth)
            } else {
                if !tree.hasChildren(child) {
                    out[tree.slot(child)] = try value(depth: depth)
                } else if tree.slot(child) < 0 {
                    // Only parts are read: a repeated key or a non-object replaces earlier parts.
                    tree.assign(.null, to: child, out)
                    skipSpace()
                    if peek() == UInt8(ascii: "{") { try object(depth: depth + 1, node: child, tree, out) } else { try skipValue(depth: depth) }
                } else {
                    tree.assign(try value(depth: depth), to: child, out)
                }
            }
            skipSpace()
            guard let c = peek() else { throw Failure() }
            i += 1
            if c == UInt8(ascii: "}") { return }
            guard c == UInt8(ascii: ",") else { throw Failure() }
        }
    }

    /// The closing quote of the string whose text starts at `start`, when it holds no escape and no
    /// control character (the common case, checked in place); nil: read it with `JSONString.read`.
    @inline(__always) private func plainStringEnd(from start: Int) -> Int? {
        var j = start
        while j < bytes.count {
            let c = bytes[j]
            if c == UInt8(ascii: "\"") { return j }
            if c == UInt8(ascii: "\\") || c < 0x20 { return nil }
            j += 1
        }
        return nil
    }

    /// Checks and moves past one value without building it.
    private mutating func skipValue(depth: Int) throws(Failure) {
        skipSpace()
        guard let c = peek() else { throw Failure() }
        switch c {
        case UInt8(ascii: "{"): try skipObject(depth: depth + 1)
        case UInt8(ascii: "["): try skipArray(depth: depth + 1)
        case UInt8(ascii: "\""):
            i += 1
            if let j = plainStringEnd(from: i) {
                i = j + 1
            } else {
                guard let (_, end) = JSONString.read(bytes, from: i) else { throw Failure() }
                i = end
            }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: _ = try scanNumber()
        }
    }

    private mutating func skipObject(depth: Int) throws(Failure) {
        guard depth < Self.maxDepth else { throw Failure() }
        try expect(UInt8(ascii: "{"))
        skipSpace()
        if peek() == UInt8(ascii: "}") { i += 1; return }
        while true {
            skipSpace()
            guard peek() == UInt8(ascii: "\"") else { throw Failure() }
            try skipValue(depth: depth)
            skipSpace()
            try expect(UInt8(ascii: ":"))
            try skipValue(depth: depth)
            skipSpace()
            guard let c = peek() else { throw Failure() }
            i += 1
            if c == UInt8(ascii: "}") { return }
            guard c == UInt8(ascii: ",") else { throw Failure() }
        }
    }
}
