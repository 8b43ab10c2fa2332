/// JSON string literals (RFC 8259): writing them (quote, backslash and control characters escaped, other UTF-8 kept) and reading them back strictly.
public enum JSONString {
    @usableFromInline static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// True when the UTF-8 bytes need no escaping inside a JSON string literal (no quote,
    /// backslash or control character): writers copy such text as it is.
    @inlinable @inline(__always)
    public static func isPlain(_ utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        for c in utf8 where c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") { return false }
        return true
    }

    /// Appends `s` as a quoted JSON string literal to `out`.
    @inlinable
    public static func append(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Ids and dimension values rarely need escaping: copy them in one go when they don't.
        let plain = s.utf8.withContiguousStorageIfAvailable { u -> Bool in
            guard isPlain(u) else { return false }
            out.append(contentsOf: u)
            return true
        } ?? false
        if plain { out.append(UInt8(ascii: "\"")); return }
        // Byte by byte, without array literals. The constant arrays of an @inlinable function are
        // emitted into every module that inlines it, under names numbered per module; a release
        // build (multi-threaded whole-module optimization) numbered them differently in
        // StrataCore and in StrataDims/StrataJobs, and the linker gave those modules StrataCore's
        // arrays: `"` was written as `\t`, `\` as `\r` (found by Fuzz/FuzzDimJSON, docs/fuzzing.md).
        for c in s.utf8 {
            let escaped: UInt8
            switch c {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): escaped = c
            case 0x0A: escaped = UInt8(ascii: "n")
            case 0x0D: escaped = UInt8(ascii: "r")
            case 0x09: escaped = UInt8(ascii: "t")
            case 0..<0x20:
                out.append(UInt8(ascii: "\\"))
                out.append(UInt8(ascii: "u"))
                out.append(UInt8(ascii: "0"))
                out.append(UInt8(ascii: "0"))
                out.append(hexDigits[Int(c >> 4)])
                out.append(hexDigits[Int(c & 15)])
                continue
            default:
                out.append(c)
                continue
            }
            out.append(UInt8(ascii: "\\"))
            out.append(escaped)
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Appends `s` as a quoted JSON string literal to `out` (the same text as the byte form).
    public static func append(_ s: String, to out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                out += "\\u00"
                out.unicodeScalars.append(Unicode.Scalar(hexDigits[Int(u.value >> 4)]))
                out.unicodeScalars.append(Unicode.Scalar(hexDigits[Int(u.value & 15)]))
            default: out.unicodeScalars.append(u)
            }
        }
        out += "\""
    }

    /// The value of one hexadecimal digit, or nil.
    @inlinable @inline(__always)
    /// `s` as a quoted JSON string literal.
    public static func quoted(_ s: String) -> String {
        var out = ""
        append(s, to: &out)
        return out
    }

    public static func hexValue(_ b: UInt8) -> UInt32? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(b &- UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(b &- UInt8(ascii: "a") &+ 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(b &- UInt8(ascii: "A") &+ 10)
        default: nil
        }
    }

    /// The four hex digits at `i` in `bytes` as a number, or nil.
    @inlinable @inline(__always)
    public static func hex4(_ bytes: UnsafeRawBufferPointer, at i: Int) -> UInt32? {
        guard i >= 0, i + 4 <= bytes.count else { return nil }
        var v: UInt32 = 0
        for j in i..<i + 4 {
            guard let d = hexValue(bytes[j]) else { return nil }
            v = v << 4 | d
        }
        return v
    }

    /// Reads the string whose text starts at `start` (just past its opening quote), strictly: the decoded
    /// text (invalid UTF-8 repaired with U+FFFD) and the index past the closing quote, or nil when the
    /// string is unterminated, holds a raw control character, a bad escape or an unpaired surrogate.
    @inlinable
    public static func read(_ bytes: UnsafeRawBufferPointer, from start: Int) -> (text: String, end: Int)? {
        var i = start
        // Fast path: no escapes.
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                return (String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self), i + 1)
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { return nil }
            i += 1
        }
        var out = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
        while i < bytes.count {
            let c = bytes[i]
            i += 1
            if c == UInt8(ascii: "\"") { return (String(decoding: out, as: UTF8.self), i) }
            if c < 0x20 { return nil }
            if c != UInt8(ascii: "\\") { out.append(c); continue }
            guard i < bytes.count else { return nil }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard var scalar = hex4(bytes, at: i) else { return nil }
                i += 4
                if (0xD800..<0xDC00).contains(scalar) {
                    // A high surrogate must be followed by \u and a low surrogate.
                    guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u"),
                          let low = hex4(bytes, at: i + 2), (0xDC00..<0xE000).contains(low) else { return nil }
                    i += 6
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let u = Unicode.Scalar(scalar) else { return nil } // an unpaired low surrogate
                UTF8.encode(u) { out.append($0) }
            default:
                return nil
            }
        }
        return nil
    }
}
