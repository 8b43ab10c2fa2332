/// The topology's content-id pattern, matched with Swift's own regular expressions rather than the
/// stream's matcher (StrataCore.IdPattern): an independent reading of the same pattern text.
///
/// Semantics chosen to agree with the contract (topology.yaml): the whole id must match; \d \w \s
/// are ASCII; one Unicode scalar is one character. The batch path asks once per distinct id.
public struct ContentIdMatcher: @unchecked Sendable {
    // Regex is not Sendable; the matcher is only used by the thread that scans.
    private let regex: Regex<AnyRegexOutput>
    public let source: String

    public init(_ pattern: String) throws(ReconcileError) {
        do {
            regex = try Regex(pattern).asciiOnlyCharacterClasses().matchingSemantics(.unicodeScalar)
        } catch {
            throw .badInput("content id pattern '\(pattern)' is not a regular expression: \(error)")
        }
        source = pattern
    }

    public func matches(_ id: String) -> Bool {
        (try? regex.wholeMatch(in: id)) != nil
    }
}

/// Why reconcile or settle could not run. `isBadInput` errors exit with status 2.
public enum ReconcileError: Error, Sendable, CustomStringConvertible {
    /// The user's input is wrong: a missing archive day, a bad date, an unreadable late file.
    case badInput(String)
    /// The archive holds a file that cannot be read (truncated, corrupt).
    case archive(String)
    /// The store or the broker failed.
    case source(String)
    case tooManyIds(String, Int)

    public var description: String {
        switch self {
        case .badInput(let m): m
        case .archive(let m): "archive: \(m)"
        case .source(let m): m
        case .tooManyIds(let what, let limit): "more than \(limit) distinct \(what) in one day: beyond what the batch path's keys hold"
        }
    }

    public var isBadInput: Bool {
        if case .badInput = self { return true }
        return false
    }
}
