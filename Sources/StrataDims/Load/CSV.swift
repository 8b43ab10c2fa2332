/// RFC 4180 CSV records: fields separated by commas, records by CRLF or LF; a field may be quoted
/// with `"`, and then contain commas, line breaks and doubled quotes (`""` is one `"`).
/// Strict about malformed quoting (a quote inside an unquoted field, text after a closing quote,
/// an unterminated quote), because a silently mis-split row would load wrong dimensions.
enum CSV {
    struct Record {
        /// 1-based physical line where the record starts.
        var line: Int
        var fields: [String]
    }

    struct ParseError: Error {
        var line: Int
        var message: String
    }

    /// All records, blank lines skipped; a leading UTF-8 byte order mark is ignored.
    static func parse(_ bytes: [UInt8]) throws(ParseError) -> [Record] {
        var records: [Record] = []
        var i = 0
        let n = bytes.count
        if n >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { i = 3 }
        var line = 1
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), cr: UInt8 = 0x0D, lf: UInt8 = 0x0A

        while i < n {
            // Blank line between records.
            if bytes[i] == lf { line += 1; i += 1; continue }
            if bytes[i] == cr { line += 1; i += (i + 1 < n && bytes[i + 1] == lf) ? 2 : 1; continue }

            let startLine = line
            var fields: [String] = []
            var endOfRecord = false
            while !endOfRecord {
                if i < n, bytes[i] == quote {
                    // Quoted field.
                    let quoteLine = line
                    i += 1
                    var value: [UInt8] = []
                    var closed = false
                    while i < n {
                        let c = bytes[i]
                        if c == quote {
                            if i + 1 < n, bytes[i + 1] == quote { value.append(quote); i += 2; continue }
                            i += 1
                            closed = true
                            break
                        }
                        if c == lf || (c == cr && !(i + 1 < n && bytes[i + 1] == lf)) { line += 1 }
                        value.append(c)
                        i += 1
                    }
                    guard closed else {
                        throw ParseError(line: quoteLine, message: "unterminated quoted field (opened on line \(quoteLine))")
                    }
                    fields.append(String(decoding: value, as: UTF8.self))
                    if i < n, bytes[i] != comma, bytes[i] != cr, bytes[i] != lf {
                        throw ParseError(line: line, message: "unexpected character after a closing quote (field \(fields.count))")
                    }
                } else {
                    let start = i
                    while i < n, bytes[i] != comma, bytes[i] != cr, bytes[i] != lf {
                        if bytes[i] == quote {
                            throw ParseError(line: line, message: "quote inside an unquoted field (field \(fields.count + 1)); quote the whole field and double inner quotes")
                        }
                        i += 1
                    }
                    fields.append(String(decoding: bytes[start..<i], as: UTF8.self))
                }
                // After a field: comma, end of line or end of input.
                if i >= n {
                    endOfRecord = true
                } else if bytes[i] == comma {
                    i += 1
                } else {
                    i += (bytes[i] == cr && i + 1 < n && bytes[i + 1] == lf) ? 2 : 1
                    line += 1
                    endOfRecord = true
                }
            }
            records.append(Record(line: startLine, fields: fields))
        }
        return records
    }

    /// One field, quoted when it contains a comma, quote, line break or leading/trailing space.
    static func appendField(_ out: inout [UInt8], _ s: String) {
        let u = s.utf8
        let needsQuotes = u.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }
            || u.first == 0x20 || u.last == 0x20
        guard needsQuotes else { out.append(contentsOf: u); return }
        out.append(UInt8(ascii: "\""))
        for b in u {
            if b == UInt8(ascii: "\"") { out.append(b) }
            out.append(b)
        }
        out.append(UInt8(ascii: "\""))
    }

    static func appendRecord(_ out: inout [UInt8], _ fields: [String]) {
        for (k, f) in fields.enumerated() {
            if k > 0 { out.append(UInt8(ascii: ",")) }
            appendField(&out, f)
        }
        out.append(0x0A)
    }
}
