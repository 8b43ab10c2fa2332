import Foundation
/// Tokens of the query language. Keywords are not separate kinds: the parser matches identifiers
/// case-insensitively, so words like FINAL or MINUTE stay usable as column names where the grammar
/// does not expect the keyword (`minute` and `final` are DWM/DWS fields).
enum TokenKind: Equatable {
    case word(String)          // identifier or keyword, as written
    case quotedIdent(String)   // "like"
    case string(String)        // 'it''s' -> it's
    case integer(Int64)
    case decimal(Double)
    case symbol(String)        // = <> != < <= > >= + - * / ( ) , . ;
    case end
}

struct Token {
    var kind: TokenKind
    var location: SourceLocation
    /// Length in Unicode scalars, for caret underlines.
    var length: Int

    var word: String? { if case .word(let w) = kind { w } else { nil } }
    func isWord(_ keyword: String) -> Bool {
        if case .word(let w) = kind { return w.count == keyword.count && w.uppercased() == keyword }
        return false
    }
    func isSymbol(_ s: String) -> Bool { kind == .symbol(s) }

    /// How the token reads in an error message.
    var display: String {
        switch kind {
        case .word(let w): "'\(w)'"
        case .quotedIdent(let w): "\"\(w)\""
        case .string(let s): "'\(Canonical.doubling("'", in: s))'"
        case .integer(let i): String(i)
        case .decimal(let d): String(d)
        case .symbol(let s): "'\(s)'"
        case .end: "end of query"
        }
    }
}

/// Splits query text into tokens, tracking 1-based line and column.
struct Lexer {
    let scalars: [Unicode.Scalar]
    let lines: [String]
    private var i = 0
    private var line = 1
    private var column = 1

    init(_ text: String) {
        scalars = Array(text.unicodeScalars)
        // Lines end at "\n" scalars, as `advance` counts them (split by Character, "\r\n" is one
        // Character and the lines of CRLF text would not be found).
        lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { String($0).trimmingCR() }
    }

    func sourceLine(_ n: Int) -> String { n >= 1 && n <= lines.count ? lines[n - 1] : "" }

    func error(_ loc: SourceLocation, _ length: Int, _ message: String, hint: String? = nil) -> QueryError {
        .syntax(Diagnostic(location: loc, length: length, message: message, hint: hint, sourceLine: sourceLine(loc.line)))
    }

    private var here: SourceLocation { SourceLocation(line: line, column: column) }
    private func peek(_ k: Int = 0) -> Unicode.Scalar? { i + k < scalars.count ? scalars[i + k] : nil }

    private mutating func advance() {
        if scalars[i] == "\n" { line += 1; column = 1 } else { column += 1 }
        i += 1
    }

    mutating func tokenize() throws(QueryError) -> [Token] {
        var out: [Token] = []
        while true {
            try skipSpaceAndComments()
            let start = here, startIndex = i
            guard let c = peek() else {
                out.append(Token(kind: .end, location: start, length: 1))
                return out
            }
            let kind: TokenKind
            if c.properties.isAlphabetic || c == "_" {
                var s = ""
                while let d = peek(), d.properties.isAlphabetic || d == "_" || ("0"..."9").contains(d) {
                    s.unicodeScalars.append(d); advance()
                }
                kind = .word(s)
            } else if ("0"..."9").contains(c) || (c == "." && peek(1).map { ("0"..."9").contains($0) } == true) {
                kind = try number(start)
            } else if c == "'" {
                kind = .string(try quoted("'", start, what: "string literal"))
            } else if c == "\"" {
                let s = try quoted("\"", start, what: "quoted identifier")
                if s.isEmpty { throw error(start, 2, "empty quoted identifier") }
                kind = .quotedIdent(s)
            } else {
                kind = try symbol(start)
            }
            out.append(Token(kind: kind, location: start, length: i - startIndex))
        }
    }

    private mutating func skipSpaceAndComments() throws(QueryError) {
        while let c = peek() {
            if c.properties.isWhitespace {
                advance()
            } else if c == "-", peek(1) == "-" {
                while let d = peek(), d != "\n" { _ = d; advance() }
            } else if c == "/", peek(1) == "*" {
                let start = here
                advance(); advance()
                while true {
                    guard let d = peek() else { throw error(start, 2, "unterminated comment", hint: "close it with */") }
                    if d == "*", peek(1) == "/" { advance(); advance(); break }
                    advance()
                }
            } else {
                return
            }
        }
    }

    private mutating func number(_ start: SourceLocation) throws(QueryError) -> TokenKind {
        var s = ""
        var isDecimal = false
        while let d = peek(), ("0"..."9").contains(d) { s.unicodeScalars.append(d); advance() }
        if peek() == ".", let n = peek(1), ("0"..."9").contains(n) {
            isDecimal = true
            s += "."; advance()
            while let d = peek(), ("0"..."9").contains(d) { s.unicodeScalars.append(d); advance() }
        }
        if let e = peek(), e == "e" || e == "E" {
            var k = 1
            if let sign = peek(1), sign == "+" || sign == "-" { k = 2 }
            if let d = peek(k), ("0"..."9").contains(d) {
                isDecimal = true
                for _ in 0..<k { if let x = peek() { s.unicodeScalars.append(x) }; advance() }
                while let d = peek(), ("0"..."9").contains(d) { s.unicodeScalars.append(d); advance() }
            }
        }
        if isDecimal {
            guard let v = Double(s), v.isFinite else { throw error(start, s.count, "invalid number \(s)") }
            return .decimal(v)
        }
        guard let v = Int64(s) else {
            throw error(start, s.count, "integer \(s) is too large", hint: "integers must fit in 64 bits")
        }
        return .integer(v)
    }

    /// A 'string' or "identifier"; the quote character doubled inside stands for itself.
    private mutating func quoted(_ q: Unicode.Scalar, _ start: SourceLocation, what: String) throws(QueryError) -> String {
        advance()
        var s = ""
        while true {
            guard let c = peek() else {
                throw error(start, 1, "unterminated \(what)",
                            hint: q == "'" ? "close it with ' (write '' for a quote inside)" : "close it with \"")
            }
            if c == q {
                if peek(1) == q { s.unicodeScalars.append(q); advance(); advance(); continue }
                advance()
                return s
            }
            s.unicodeScalars.append(c)
            advance()
        }
    }

    private mutating func symbol(_ start: SourceLocation) throws(QueryError) -> TokenKind {
        guard let c = peek() else { return .end }
        let two = peek(1).map { String(c) + String($0) } ?? ""
        switch two {
        case "<>", "!=", "<=", ">=":
            advance(); advance()
            return .symbol(two == "!=" ? "<>" : two)
        case "==":
            throw error(start, 2, "unexpected '=='", hint: "use = for equality")
        case "||":
            throw error(start, 2, "unexpected '||'", hint: "use OR for a logical or; string concatenation is not supported")
        case "&&":
            throw error(start, 2, "unexpected '&&'", hint: "use AND")
        default: break
        }
        switch c {
        case "=", "<", ">", "+", "-", "*", "/", "(", ")", ",", ".", ";":
            advance()
            return .symbol(String(c))
        case "%":
            throw error(start, 1, "unexpected character '%'", hint: "the modulo operator is not supported; % is a wildcard only inside LIKE patterns")
        case "`":
            throw error(start, 1, "unexpected character '`'", hint: "quote identifiers with double quotes, e.g. \"like\"")
        default:
            throw error(start, 1, "unexpected character '\(c)'")
        }
    }
}

extension String {
    func trimmingCR() -> String { hasSuffix("\r") ? String(dropLast()) : self }
}
