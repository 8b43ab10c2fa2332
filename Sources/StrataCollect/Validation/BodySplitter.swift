public import StrataCore

/// Why a request body as a whole was refused (before any item was looked at).
public enum BodyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing but whitespace.
    case empty
    /// A JSON array body that is not a well-formed array of values (truncated, trailing data).
    case malformedArray(offset: Int, message: String)
    /// More items than one request may carry.
    case tooManyItems(limit: Int)

    public var reason: String {
        switch self {
        case .empty: "empty_body"
        case .malformedArray: "malformed_body"
        case .tooManyItems: "too_many_items"
        }
    }

    public var description: String {
        switch self {
        case .empty: "the body holds no events"
        case .malformedArray(let o, let m): "at byte \(o): \(m)"
        case .tooManyItems(let limit): "more than \(limit) events in one request"
        }
    }
}

/// Cuts a body into its items without judging them: a JSON array (`[ {…}, {…} ]`, the first
/// non-blank byte is `[`) or NDJSON (one item a line, blank lines ignored). Items are validated
/// one by one afterwards, so one bad item does not sink its batch.
///
/// The array's structure is followed just enough to find its top-level commas (strings and
/// nesting); the grammar inside an item is the event scanner's business. An array that does not
/// close is refused as a whole: it is a cut-off body, and accepting part of it would make the
/// client's retry a duplicate.
public enum BodySplitter {
    /// The items' byte ranges, whitespace trimmed (an empty range is an empty item: `[1,,2]`).
    public static func split(_ body: UnsafeRawBufferPointer, maxItems: Int) throws(BodyError) -> [ByteRange] {
        var i = 0
        let n = body.count
        while i < n, isSpace(body[i]) { i += 1 }
        guard i < n else { throw .empty }
        return body[i] == UInt8(ascii: "[") ? try array(body, from: i + 1, maxItems: maxItems)
                                             : try lines(body, maxItems: maxItems)
    }

    @inline(__always) static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }

    private static func trimmed(_ body: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> ByteRange {
        var s = start, e = end
        while s < e, isSpace(body[s]) { s += 1 }
        while e > s, isSpace(body[e - 1]) { e -= 1 }
        return ByteRange(start: s, count: e - s)
    }

    private static func lines(_ body: UnsafeRawBufferPointer, maxItems: Int) throws(BodyError) -> [ByteRange] {
        var out: [ByteRange] = []
        var start = 0
        let n = body.count
        while start < n {
            var end = start
            while end < n, body[end] != 0x0A { end += 1 }
            let item = trimmed(body, start, end)
            if item.count > 0 {
                if out.count == maxItems { throw .tooManyItems(limit: maxItems) }
                out.append(item)
            }
            start = end + 1
        }
        if out.isEmpty { throw .empty }
        return out
    }

    private static func array(_ body: UnsafeRawBufferPointer, from first: Int, maxItems: Int) throws(BodyError) -> [ByteRange] {
        var out: [ByteRange] = []
        let n = body.count
        var i = first
        var itemStart = first
        var depth = 0
        while i < n {
            let b = body[i]
            switch b {
            case UInt8(ascii: "\""):
                i += 1
                while i < n, body[i] != UInt8(ascii: "\"") { i += body[i] == UInt8(ascii: "\\") ? 2 : 1 }
                guard i < n else { throw .malformedArray(offset: n, message: "unterminated string: the body is cut off") }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
            case UInt8(ascii: "}"):
                if depth > 0 { depth -= 1 }
            case UInt8(ascii: "]"):
                if depth > 0 {
                    depth -= 1
                } else {
                    let item = trimmed(body, itemStart, i)
                    if item.count > 0 || !out.isEmpty {
                        if out.count == maxItems { throw .tooManyItems(limit: maxItems) }
                        out.append(item)
                    }
                    var j = i + 1
                    while j < n, isSpace(body[j]) { j += 1 }
                    guard j == n else { throw .malformedArray(offset: j, message: "data after the closing ']'") }
                    if out.isEmpty { throw .empty }
                    return out
                }
            case UInt8(ascii: ","):
                if depth == 0 {
                    if out.count == maxItems { throw .tooManyItems(limit: maxItems) }
                    out.append(trimmed(body, itemStart, i))
                    itemStart = i + 1
                }
            default:
                break
            }
            i += 1
        }
        throw .malformedArray(offset: n, message: "the array does not close: the body is cut off")
    }
}
