// Content-id validation (the "invalid ID filter" of the design): a tiny anchored pattern language
// compiled to a linear position automaton, so matching is O(input × pattern), never backtracks
// exponentially, and allocates nothing (state lives in a stack temporary).
//
// Supported: ^ and $ anchors (both required), literals (with \ escapes), ., classes [a-z0-9_] and
// [^...], \d \w \s \D \W \S, and the quantifiers ? * + {n} {n,} {n,m} on a single atom.
// Semantics: the whole input must match ($ is the end of input — no trailing-newline allowance);
// \d \w \s are ASCII classes; . matches anything but "\n"; patterns are ASCII; a non-ASCII
// character of the input (one UTF-8 sequence) counts as one character that only ., negated
// classes and \D \W \S can match.

public struct IdPatternError: Error, Sendable, Equatable, CustomStringConvertible {
    public let pattern: String
    /// 0-based offset into the pattern (bytes; patterns are ASCII).
    public let position: Int
    public let message: String

    public init(pattern: String, position: Int, message: String) {
        self.pattern = pattern
        self.position = position
        self.message = message
    }

    public var description: String {
        "invalid id pattern '\(pattern)' at position \(position): \(message)"
    }
}

public struct IdPattern: Sendable, Equatable, CustomStringConvertible {
    public static let defaultContentId = "^c[0-9]{8}$"
    /// Upper bound on expanded positions (each {n,m} costs up to m positions).
    public static let maxPositions = 1024

    public let source: String
    /// Four 64-bit words (a 256-bit byte set) per position; position i (1-based) at 4*(i-1).
    private let classes: [UInt64]
    /// Per position: bit 0 = optional (may be skipped), bit 1 = repeats (self loop).
    private let flags: [UInt8]
    /// Highest mandatory position (0 if none): accepting states are those at or past it.
    private let lastMandatory: Int
    /// No optional or repeating positions: input length must equal the position count.
    private let fixed: Bool

    public var description: String { source }

    public static func == (a: IdPattern, b: IdPattern) -> Bool { a.source == b.source }

    public init(_ pattern: String) throws(IdPatternError) {
        source = pattern
        var parser = _PatternParser(pattern: pattern)
        let atoms = try parser.parse()
        var classes: [UInt64] = []
        var flags: [UInt8] = []
        func add(_ set: _ByteSet, _ flag: UInt8) {
            classes.append(contentsOf: [set.w0, set.w1, set.w2, set.w3])
            flags.append(flag)
        }
        for atom in atoms {
            for _ in 0..<atom.min { add(atom.set, 0) }
            if let max = atom.max {
                for _ in atom.min..<max { add(atom.set, 1) }
            } else if atom.min > 0 {
                flags[flags.count - 1] |= 2 // x+ / x{n,}: the last mandatory copy repeats
            } else {
                add(atom.set, 3) // x* : one optional repeating position
            }
        }
        self.classes = classes
        self.flags = flags
        lastMandatory = (flags.lastIndex { $0 & 1 == 0 }).map { $0 + 1 } ?? 0
        fixed = flags.allSatisfy { $0 == 0 }
    }

    public func matches(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { matches(UnsafeRawBufferPointer($0)) }
    }

    public func matches(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let n = flags.count
        return classes.withUnsafeBufferPointer { cls in
            @inline(__always) func accepts(_ position: Int, _ b: UInt8) -> Bool {
                (cls[(position &- 1) &* 4 &+ Int(b &>> 6)] &>> UInt64(b & 63)) & 1 == 1
            }
            if fixed {
                // Common case (^c[0-9]{8}$): one position per character, no automaton needed.
                guard bytes.count >= n else { return false }
                var i = 0
                var position = 1
                while i < bytes.count {
                    guard position <= n else { return false }
                    let b = bytes[i]
                    guard accepts(position, b) else { return false }
                    i += b < 0x80 ? 1 : Self.sequenceLength(bytes, i)
                    position += 1
                }
                return position == n + 1
            }
            return flags.withUnsafeBufferPointer { flags in
                withUnsafeTemporaryAllocation(of: Bool.self, capacity: n + 1) { active in
                    // active[x]: the last character consumed matched position x (0 = start).
                    active.initialize(repeating: false)
                    active[0] = true
                    var i = 0
                    while i < bytes.count {
                        let b = bytes[i]
                        i += b < 0x80 ? 1 : Self.sequenceLength(bytes, i)
                        // One in-place forward sweep. `open` = position y can be entered from an
                        // earlier active position with only optional positions in between.
                        var open = active[0]
                        active[0] = false
                        var any = false
                        var y = 1
                        while y <= n {
                            let was = active[y]
                            let f = flags[y - 1]
                            let now = (open || (f & 2 != 0 && was)) && accepts(y, b)
                            active[y] = now
                            any = any || now
                            open = was || (open && f & 1 != 0)
                            y += 1
                        }
                        if !any { return false }
                    }
                    var x = lastMandatory
                    while x <= n {
                        if active[x] { return true }
                        x += 1
                    }
                    return false
                }
            }
        }
    }

    /// Bytes in the UTF-8 sequence starting at `i` (lead byte ≥ 0x80); stops at non-continuations
    /// so malformed input cannot skip past a character.
    @inline(__always)
    private static func sequenceLength(_ bytes: UnsafeRawBufferPointer, _ i: Int) -> Int {
        let lead = bytes[i]
        let want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
        var k = 1
        while k < want, i + k < bytes.count, bytes[i + k] & 0xC0 == 0x80 { k += 1 }
        return k
    }
}

// MARK: - Parser

struct _ByteSet {
    var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0

    mutating func insert(_ b: UInt8) {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: w0 |= bit
        case 1: w1 |= bit
        case 2: w2 |= bit
        default: w3 |= bit
        }
    }

    mutating func insert(_ r: ClosedRange<UInt8>) {
        for b in r { insert(b) }
    }

    mutating func formUnion(_ o: _ByteSet) {
        w0 |= o.w0; w1 |= o.w1; w2 |= o.w2; w3 |= o.w3
    }

    /// Complement over all characters: ASCII bytes plus every non-ASCII character.
    var inverted: _ByteSet { _ByteSet(w0: ~w0, w1: ~w1, w2: ~UInt64(0), w3: ~UInt64(0)) }

    static func single(_ b: UInt8) -> _ByteSet { var s = _ByteSet(); s.insert(b); return s }
    static var digit: _ByteSet { var s = _ByteSet(); s.insert(0x30...0x39); return s }
    static var word: _ByteSet {
        var s = digit
        s.insert(0x41...0x5A); s.insert(0x61...0x7A); s.insert(0x5F)
        return s
    }
    static var space: _ByteSet {
        var s = _ByteSet()
        for b: UInt8 in [0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D] { s.insert(b) }
        return s
    }
    static var dot: _ByteSet { single(0x0A).inverted }
}

struct _Atom {
    var set: _ByteSet
    var min: Int
    var max: Int? // nil = unbounded
}

struct _PatternParser {
    let pattern: String
    let bytes: [UInt8]
    var i = 0

    init(pattern: String) {
        self.pattern = pattern
        bytes = Array(pattern.utf8)
    }

    func fail(_ message: String, at position: Int? = nil) -> IdPatternError {
        IdPatternError(pattern: pattern, position: position ?? i, message: message)
    }

    mutating func parse() throws(IdPatternError) -> [_Atom] {
        if let k = bytes.firstIndex(where: { $0 >= 0x80 }) {
            throw fail("non-ASCII characters are not supported in id patterns", at: k)
        }
        guard bytes.first == UInt8(ascii: "^") else {
            throw fail("pattern must be anchored: start it with '^'", at: 0)
        }
        i = 1
        var atoms: [_Atom] = []
        var positions = 0
        while true {
            guard i < bytes.count else { throw fail("pattern must be anchored: end it with '$'") }
            let c = bytes[i]
            let atomStart = i
            var set: _ByteSet
            switch c {
            case UInt8(ascii: "$"):
                guard i == bytes.count - 1 else { throw fail("'$' is only allowed at the end (escape it as '\\$')") }
                return atoms
            case UInt8(ascii: "^"):
                throw fail("'^' is only allowed at the start (escape it as '\\^')")
            case UInt8(ascii: "("), UInt8(ascii: ")"):
                throw fail("groups '(...)' are not supported")
            case UInt8(ascii: "|"):
                throw fail("alternation '|' is not supported")
            case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"), UInt8(ascii: "{"):
                throw fail("quantifier '\(Character(Unicode.Scalar(c)))' has nothing to repeat (escape it to match it literally)")
            case UInt8(ascii: "."):
                set = .dot
                i += 1
            case UInt8(ascii: "["):
                set = try parseClass()
            case UInt8(ascii: "\\"):
                set = try parseEscape(inClass: false).set
            default:
                set = .single(c)
                i += 1
            }
            var atom = _Atom(set: set, min: 1, max: 1)
            if i < bytes.count {
                switch bytes[i] {
                case UInt8(ascii: "*"): atom.min = 0; atom.max = nil; i += 1
                case UInt8(ascii: "+"): atom.max = nil; i += 1
                case UInt8(ascii: "?"): atom.min = 0; i += 1
                case UInt8(ascii: "{"): try parseBraces(&atom)
                default: break
                }
                if i < bytes.count, [UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"), UInt8(ascii: "{")].contains(bytes[i]) {
                    throw fail("a quantifier cannot follow another quantifier (nested, lazy and possessive quantifiers are not supported)")
                }
            }
            positions += atom.max ?? Swift.max(atom.min, 1)
            if positions > IdPattern.maxPositions {
                throw fail("pattern too large: at most \(IdPattern.maxPositions) repeated positions", at: atomStart)
            }
            atoms.append(atom)
        }
    }

    /// {n} {n,} {n,m}; `i` on '{'.
    mutating func parseBraces(_ atom: inout _Atom) throws(IdPatternError) {
        let open = i
        i += 1
        guard let lo = number() else { throw fail("malformed quantifier: expected a number after '{'") }
        var hi: Int? = lo
        if i < bytes.count, bytes[i] == UInt8(ascii: ",") {
            i += 1
            hi = number()
        }
        guard i < bytes.count, bytes[i] == UInt8(ascii: "}") else {
            throw fail("malformed quantifier: expected '}'", at: Swift.min(i, bytes.count))
        }
        i += 1
        if let h = hi, h < lo { throw fail("quantifier {\(lo),\(h)} has max < min", at: open) }
        if lo > IdPattern.maxPositions || (hi ?? 0) > IdPattern.maxPositions {
            throw fail("quantifier bound too large (max \(IdPattern.maxPositions))", at: open)
        }
        atom.min = lo
        atom.max = hi
    }

    mutating func number() -> Int? {
        let start = i
        var v = 0
        while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39, v <= 1_000_000 {
            v = v * 10 + Int(bytes[i] - 0x30)
            i += 1
        }
        return i == start ? nil : v
    }

    /// `i` on '\'. Returns the set and, for a single-byte escape, that byte (usable in ranges).
    mutating func parseEscape(inClass: Bool) throws(IdPatternError) -> (set: _ByteSet, byte: UInt8?) {
        let start = i
        guard i + 1 < bytes.count else { throw fail("trailing backslash") }
        let e = bytes[i + 1]
        i += 2
        switch e {
        case UInt8(ascii: "d"): return (.digit, nil)
        case UInt8(ascii: "D"): return (_ByteSet.digit.inverted, nil)
        case UInt8(ascii: "w"): return (.word, nil)
        case UInt8(ascii: "W"): return (_ByteSet.word.inverted, nil)
        case UInt8(ascii: "s"): return (.space, nil)
        case UInt8(ascii: "S"): return (_ByteSet.space.inverted, nil)
        case UInt8(ascii: "n"): return (.single(0x0A), 0x0A)
        case UInt8(ascii: "t"): return (.single(0x09), 0x09)
        case UInt8(ascii: "r"): return (.single(0x0D), 0x0D)
        case UInt8(ascii: "f"): return (.single(0x0C), 0x0C)
        case UInt8(ascii: "v"): return (.single(0x0B), 0x0B)
        case UInt8(ascii: "1")...UInt8(ascii: "9"):
            throw fail("backreferences are not supported", at: start)
        case UInt8(ascii: "0"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
            throw fail("unsupported escape '\\\(Character(Unicode.Scalar(e)))'", at: start)
        default:
            return (.single(e), e) // escaped punctuation is literal: \. \- \] \\ \$
        }
    }

    /// `i` on '['.
    mutating func parseClass() throws(IdPatternError) -> _ByteSet {
        let open = i
        i += 1
        var negate = false
        if i < bytes.count, bytes[i] == UInt8(ascii: "^") {
            negate = true
            i += 1
        }
        var set = _ByteSet()
        var first = true
        while true {
            guard i < bytes.count else { throw fail("unterminated character class", at: open) }
            let c = bytes[i]
            if c == UInt8(ascii: "]") {
                if first { throw fail("empty character class (escape ']' as '\\]')") }
                i += 1
                return negate ? set.inverted : set
            }
            first = false
            let itemStart = i
            var lo: UInt8?
            if c == UInt8(ascii: "[") {
                throw fail("nested or POSIX character classes are not supported (escape '[' as '\\[')")
            } else if c == UInt8(ascii: "\\") {
                let (s, b) = try parseEscape(inClass: true)
                set.formUnion(s)
                lo = b
            } else {
                set.insert(c)
                lo = c
                i += 1
            }
            // Range a-z: '-' first or last in the class is a literal.
            if i + 1 < bytes.count, bytes[i] == UInt8(ascii: "-"), bytes[i + 1] != UInt8(ascii: "]") {
                guard let low = lo else { throw fail("a class escape cannot start a range", at: itemStart) }
                i += 1
                var high: UInt8
                if bytes[i] == UInt8(ascii: "\\") {
                    guard let h = try parseEscape(inClass: true).byte else {
                        throw fail("a class escape cannot end a range", at: i - 2)
                    }
                    high = h
                } else if bytes[i] == UInt8(ascii: "[") {
                    throw fail("nested or POSIX character classes are not supported")
                } else {
                    high = bytes[i]
                    i += 1
                }
                guard low <= high else { throw fail("reversed range in character class", at: itemStart) }
                set.insert(low...high)
            }
        }
    }
}
