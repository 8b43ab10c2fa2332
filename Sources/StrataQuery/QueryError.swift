/// A 1-based position in the query text (columns count Unicode scalars).
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public init(line: Int, column: Int) { self.line = line; self.column = column }
    public var description: String { "\(line):\(column)" }
}

/// What a query did wrong, where, and what to do about it.
public struct Diagnostic: Sendable, Equatable {
    public var location: SourceLocation
    /// How many columns the caret underline spans (at least 1).
    public var length: Int
    public var message: String
    public var hint: String?
    /// The query line the location points into (for rendering).
    public var sourceLine: String

    public init(location: SourceLocation, length: Int = 1, message: String, hint: String? = nil, sourceLine: String = "") {
        self.location = location; self.length = max(1, length); self.message = message
        self.hint = hint; self.sourceLine = sourceLine
    }

    /// "message — hint".
    public var text: String { hint.map { "\(message) — \($0)" } ?? message }
}

/// Which configurable limit a query ran into.
public enum QueryLimit: String, Sendable, Equatable {
    case groups = "max groups"
    case windowLength = "max window length"
    case rowsOut = "max rows out"
    case openWindows = "max open windows"
    case sequenceEvents = "max sequence events"
    case exactDistinctValues = "max exact distinct values"
}

/// Every error the query library reports. None of them is fatal to the process: a failing query
/// reports its error and stops; other queries are unaffected.
public enum QueryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The text does not follow the grammar (lexer or parser).
    case syntax(Diagnostic)
    /// The text parses but means nothing sensible (planner): ungrouped columns, misplaced aggregates…
    case semantic(Diagnostic)
    /// The query would exceed a configured limit; `limit` is the configured value.
    case limitExceeded(QueryLimit, limit: Int64, detail: String)
    /// The row source failed (e.g. the upstream async sequence threw).
    case source(String)

    public var diagnostic: Diagnostic? {
        switch self {
        case .syntax(let d), .semantic(let d): d
        default: nil
        }
    }

    public var line: Int? { diagnostic?.location.line }
    public var column: Int? { diagnostic?.location.column }

    /// One line, without the source excerpt.
    public var message: String {
        switch self {
        case .syntax(let d), .semantic(let d): d.text
        case .limitExceeded(let which, let limit, let detail):
            "\(which.rawValue) (\(which == .windowLength ? Explain.formatMs(limit) : String(limit))) exceeded: \(detail)"
        case .source(let s): "row source failed: \(s)"
        }
    }

    public var description: String {
        if let d = diagnostic { return "\(d.location): \(d.text)" }
        return message
    }

    /// Multi-line rendering for terminals: the message, the offending line and a caret under it.
    ///
    ///     error at 1:8: unknown function 'cnt' — did you mean count?
    ///       1 | SELECT cnt(*) FROM dws.content
    ///         |        ^^^
    public var rendered: String {
        guard let d = diagnostic else { return "error: \(message)" }
        let kind = if case .syntax = self { "syntax error" } else { "error" }
        let num = String(d.location.line)
        let pad = String(repeating: " ", count: num.count)
        let caretIndent = String(repeating: " ", count: max(0, d.location.column - 1))
        let lineLength = d.sourceLine.unicodeScalars.count
        let carets = String(repeating: "^", count: max(1, min(d.length, max(1, lineLength - d.location.column + 1))))
        return """
        \(kind) at \(d.location): \(d.text)
          \(num) | \(d.sourceLine)
          \(pad) | \(caretIndent)\(carets)
        """
    }
}
