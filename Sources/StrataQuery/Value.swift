public import Foundation
import StrataCore

/// One JSON value as the query engine sees it. Rows are `[String: Value]`.
///
/// Numbers compare and hash by numeric value, so `.int(5) == .double(5.0)` (a GROUP BY key or an
/// IN list does not care how the producer spelled the number). JSON arrays are not part of the
/// model (no DWM/DWS field is an array) and decode as `.null`.
public enum Value: Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case object([String: Value])
    /// Results of the sequence aggregates (funnel steps, top paths); rows never carry arrays.
    case array([Value])
}

extension Value {
    public var isNull: Bool { if case .null = self { true } else { false } }

    /// The numeric value, if this is a number.
    public var number: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }

    /// An exact integer, if this is an int or an integral double in Int64 range.
    public var exactInt: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d):
            guard d.rounded() == d, d >= -9.223372036854775e18, d < 9.223372036854775e18 else { return nil }
            return Int64(d)
        default: return nil
        }
    }

    public var string: String? { if case .string(let s) = self { s } else { nil } }

    /// Member access for dotted columns (`content.category`).
    public subscript(_ key: String) -> Value {
        if case .object(let o) = self { return o[key] ?? .null }
        return .null
    }
}

// MARK: - Equality, hashing, ordering

extension Value: Equatable, Hashable {
    public static func == (a: Value, b: Value) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.int(let x), .double(let y)), (.double(let y), .int(let x)):
            return Double(x) == y && Value.double(y).exactInt == x
        case (.string(let x), .string(let y)): return x == y
        case (.object(let x), .object(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        default: return false
        }
    }

    public func hash(into h: inout Hasher) {
        switch self {
        case .null: h.combine(0 as UInt8)
        case .bool(let b): h.combine(1 as UInt8); h.combine(b)
        case .int(let i): h.combine(2 as UInt8); h.combine(i)
        case .double(let d):
            // Integral doubles hash like the equal int (they compare equal).
            if let i = exactInt { h.combine(2 as UInt8); h.combine(i) } else { h.combine(3 as UInt8); h.combine(d) }
        case .string(let s): h.combine(4 as UInt8); h.combine(s)
        case .object(let o): h.combine(5 as UInt8); h.combine(o)
        case .array(let a): h.combine(6 as UInt8); h.combine(a)
        }
    }

    /// Rank of the type in the total order used by min/max, ORDER BY and group output.
    var typeRank: Int {
        switch self {
        case .null: 0
        case .bool: 1
        case .int, .double: 2
        case .string: 3
        case .object: 4
        case .array: 5
        }
    }

    /// A total order: bool < number < string < object (numbers by value, strings by UTF-8 bytes).
    /// Nulls are placed by the caller (ORDER BY puts them last ascending); here they come first.
    public static func order(_ a: Value, _ b: Value) -> Int {
        switch (a, b) {
        case (.int(let x), .int(let y)): return x < y ? -1 : (x == y ? 0 : 1)
        case (.string(let x), .string(let y)):
            if x == y { return 0 }
            return x.utf8.lexicographicallyPrecedes(y.utf8) ? -1 : 1
        case (.bool(let x), .bool(let y)): return x == y ? 0 : (!x ? -1 : 1)
        default: break
        }
        if let x = a.number, let y = b.number {
            if x < y { return -1 }
            if x > y { return 1 }
            if x == y { return 0 }
            return x.isNaN ? (y.isNaN ? 0 : -1) : 1
        }
        let ra = a.typeRank, rb = b.typeRank
        if ra != rb { return ra < rb ? -1 : 1 }
        if ra >= 4 {
            // Rare (grouping by a whole object, ordering by an array): compare the canonical JSON text.
            let sx = a.jsonText, sy = b.jsonText
            return sx == sy ? 0 : (sx < sy ? -1 : 1)
        }
        return 0
    }
}

// MARK: - JSON decoding (Foundation JSONSerialization)

extension Value {
    /// Converts a JSONSerialization result. Arrays (and anything unexpected) become `.null`.
    public init(json: Any) {
        switch json {
        case let s as String: self = .string(s)
        case let n as NSNumber:
            // JSONSerialization hands out NSNumber; its objCType tells bool / float / integer apart.
            switch UInt8(bitPattern: n.objCType.pointee) {
            case UInt8(ascii: "c"), UInt8(ascii: "B"): self = .bool(n.boolValue)
            case UInt8(ascii: "d"), UInt8(ascii: "f"): self = .double(n.doubleValue)
            case UInt8(ascii: "Q"):
                let u = n.uint64Value
                self = u <= UInt64(Int64.max) ? .int(Int64(u)) : .double(n.doubleValue)
            default: self = .int(n.int64Value)
            }
        case let o as [String: Any]:
            var d: [String: Value] = [:]
            d.reserveCapacity(o.count)
            for (k, v) in o { d[k] = Value(json: v) }
            self = .object(d)
        default: self = .null
        }
    }

    /// Decodes one JSON object (a DWM/DWS record) with `JSONParser`, straight from the bytes.
    /// Returns nil for invalid JSON or a non-object.
    public static func decodeRow(_ bytes: UnsafeRawBufferPointer) -> [String: Value]? {
        JSONParser.parseObject(bytes)
    }

    public static func decodeRow(_ data: Data) -> [String: Value]? {
        data.withUnsafeBytes { JSONParser.parseObject($0) }
    }

    public static func decodeRow(_ text: String) -> [String: Value]? {
        var text = text
        return text.withUTF8 { JSONParser.parseObject(UnsafeRawBufferPointer($0)) }
    }

    /// The same through Foundation's JSONSerialization (slower; kept as the reference decoder).
    public static func decodeRowWithFoundation(_ data: Data) -> [String: Value]? {
        guard !data.isEmpty,
              let any = try? JSONSerialization.jsonObject(with: data, options: []),
              let o = any as? [String: Any] else { return nil }
        var d: [String: Value] = [:]
        d.reserveCapacity(o.count)
        for (k, v) in o { d[k] = Value(json: v) }
        return d
    }
}

// MARK: - JSON encoding (for NDJSON output)

extension Value {
    /// Compact JSON text; object keys sorted so the text is canonical. Non-finite doubles are null.
    public var jsonText: String {
        var s = ""
        appendJSON(to: &s)
        return s
    }

    public func appendJSON(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): Value.appendDouble(d, to: &out)
        case .string(let s): JSONString.append(s, to: &out)
        case .object(let o):
            out += "{"
            var first = true
            for k in o.keys.sorted() {
                if !first { out += "," }
                first = false
                JSONString.append(k, to: &out)
                out += ":"
                (o[k] ?? .null).appendJSON(to: &out)
            }
            out += "}"
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                v.appendJSON(to: &out)
            }
            out += "]"
        }
    }

    static func appendDouble(_ d: Double, to out: inout String) {
        guard d.isFinite else { out += "null"; return }
        out += "\(d)"
    }


    /// Text for a terminal table cell: strings bare, everything else as JSON.
    public var displayText: String {
        switch self {
        case .string(let s): s
        case .double(let d):
            d.isFinite && d.rounded() != d ? String(format: "%.6g", d) : jsonText
        default: jsonText
        }
    }
}

extension Value: CustomStringConvertible {
    public var description: String { jsonText }
}

extension Value: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
                 ExpressibleByBooleanLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral v: String) { self = .string(v) }
    public init(integerLiteral v: Int64) { self = .int(v) }
    public init(floatLiteral v: Double) { self = .double(v) }
    public init(booleanLiteral v: Bool) { self = .bool(v) }
    public init(nilLiteral: ()) { self = .null }
}
