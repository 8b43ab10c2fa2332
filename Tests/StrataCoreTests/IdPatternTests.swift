import StrataTestSupport
import Foundation
import XCTest
@testable import StrataCore

final class IdPatternTests: XCTestCase {
    func testDefaultPattern() throws {
        let p = try IdPattern(IdPattern.defaultContentId)
        XCTAssertEqual(p.source, "^c[0-9]{8}$")
        for ok in ["c00001686", "c12345678", "c99999999"] { XCTAssertTrue(p.matches(ok), ok) }
        // The non-content ids of the design, and near misses.
        for bad in ["", "0", "-1", "null", "undefined", "ad:77", "c1234567", "c123456789", "C12345678",
                    "c1234567a", " c12345678", "c12345678 ", "c12345678\n", "cc2345678", "c１2345678", "c1234567８"] {
            XCTAssertFalse(p.matches(bad), bad)
        }
        // The byte API gives the same answers (the split job passes ranges of the message).
        Array("c00001686".utf8).withUnsafeBytes { XCTAssertTrue(p.matches($0)) }
        Array("ad:77".utf8).withUnsafeBytes { XCTAssertFalse(p.matches($0)) }
        XCTAssertFalse(p.matches(UnsafeRawBufferPointer(start: nil, count: 0)))
    }

    func testSemantics() throws {
        let table: [(String, [String], [String])] = [
            ("^$", [""], ["a", " "]),
            ("^a*$", ["", "a", "aaaa"], ["b", "ab"]),
            ("^a+$", ["a", "aaa"], ["", "ab"]),
            ("^ab?c$", ["ac", "abc"], ["abbc", "a", "bc"]),
            ("^a{2,3}$", ["aa", "aaa"], ["a", "aaaa"]),
            ("^a{2,}$", ["aa", "aaaaaaa"], ["a", ""]),
            ("^a{0}b$", ["b"], ["ab"]),
            ("^a*a*a*a*a*a*a*a*a*b$", ["b", "aaaab"], [String(repeating: "a", count: 200)]),
            ("^.$", ["x", "é", "😀", "-"], ["", "\n", "ab"]),
            ("^[^a-c]$", ["d", "é", "\n"], ["a", "c", ""]),
            ("^[a-c-]+$", ["a-b", "-"], ["d"]),
            ("^[-a]$", ["-", "a"], ["b"]),
            ("^\\d\\w\\s$", ["1a ", "9_\t"], ["a1 ", "11x"]),
            ("^\\D\\W\\S$", ["a-x", "é.x"], ["1-x", "aax", "a- "]),
            ("^\\.\\$\\^\\\\\\[\\]\\{\\}\\*\\+\\?\\|\\(\\)$", [".$^\\[]{}*+?|()"], ["a$^\\[]{}*+?|()"]),
            ("^[\\]\\-\\\\]+$", ["]-\\"], ["a"]),
            ("^[\\d_]+$", ["1_2"], ["a"]),
            ("^a]}$", ["a]}"], ["a"]),
            ("^\\t\\n$", ["\t\n"], ["tn"]),
        ]
        for (pattern, yes, no) in table {
            let p = try IdPattern(pattern)
            for s in yes { XCTAssertTrue(p.matches(s), "\(pattern) should match \(s.debugDescription)") }
            for s in no { XCTAssertFalse(p.matches(s), "\(pattern) should not match \(s.debugDescription)") }
        }
    }

    func testUnsupportedSyntaxErrors() {
        let cases: [(String, Int, String)] = [
            ("c[0-9]{8}$", 0, "start it with '^'"),
            ("^c[0-9]{8}", 10, "end it with '$'"),
            ("^c\\$", 4, "end it with '$'"),
            ("^(c|d)$", 1, "groups"),
            ("^a|b$", 2, "alternation"),
            ("^a\\1$", 2, "backreferences"),
            ("^a**$", 3, "quantifier cannot follow"),
            ("^a+?$", 3, "lazy"),
            ("^a{2}{3}$", 5, "quantifier cannot follow"),
            ("^*a$", 1, "nothing to repeat"),
            ("^{2}$", 1, "nothing to repeat"),
            ("^[a-c$", 1, "unterminated character class"),
            ("^[a-$]$", 2, "reversed range"),
            ("^[z-a]$", 2, "reversed range"),
            ("^a{3,2}$", 2, "max < min"),
            ("^a{,3}$", 3, "expected a number"),
            ("^a{2$", 4, "expected '}'"),
            ("^a$b$", 2, "only allowed at the end"),
            ("^a^b$", 2, "only allowed at the start"),
            ("^é$", 1, "non-ASCII"),
            ("^[]$", 2, "empty character class"),
            ("^\\bx$", 1, "unsupported escape '\\b'"),
            ("^a{2000}$", 2, "too large"),
            ("^[[:alpha:]]$", 2, "POSIX"),
            ("^[\\d-z]$", 2, "cannot start a range"),
            ("^a\\", 2, "trailing backslash"),
            ("", 0, "start it with '^'"),
        ]
        for (pattern, position, fragment) in cases {
            do {
                _ = try IdPattern(pattern)
                XCTFail("\(pattern) compiled")
            } catch {
                XCTAssertEqual(error.position, position, "\(pattern): \(error)")
                XCTAssertTrue(error.message.contains(fragment), "\(pattern): \(error.message)")
                XCTAssertTrue(error.description.contains("'\(pattern)'"), error.description)
            }
        }
    }

    /// Differential test: whole-string matching agrees with NSRegularExpression and Swift Regex on
    /// random ASCII strings and on mutations (replace/insert/delete) of matching seeds.
    func testAgreesWithRegexEngines() throws {
        let patterns: [(String, [String])] = [
            ("^c[0-9]{8}$", ["c00001686", "c12345678"]),
            ("^[a-z]+$", ["abc", "z"]),
            ("^a*b?c+$", ["c", "abc", "aacc"]),
            ("^[^0-9]{2,4}x$", ["abx", "a-.:x"]),
            ("^\\d{3}-\\d{2,}$", ["123-45", "000-12345"]),
            ("^\\w+\\.\\w*$", ["a.", "ab_1.c9"]),
            ("^.{0,3}z$", ["z", "abcz", " :z"]),
            ("^[a-c-]{1,3}[x-z]?$", ["a", "-b-y", "cc"]),
            ("^[A-Za-z_][A-Za-z0-9_]*$", ["_", "Ab9"]),
            ("^a*a*b*a*$", ["", "aab", "bba"]),
            ("^c?[0-9]+a?$", ["c1a", "12"]),
            ("^[^a]*a[^a]*$", ["a", "xyaz"]),
            ("^\\s*\\S+\\s*$", [" x ", "\tab"]),
            ("^u[0-9]{1,9}$", ["u0", "u123456789"]),
            ("^[.]+:\\d$", [".:1", "...:9"]),
            ("^x{2,5}y{0,2}x+$", ["xxx", "xxxxxyyx"]),
            ("^$", [""]),
        ]
        let alphabet = Array("abcxyzAZ019_-.: \tcu0123456789")
        var rng = SeededRandom(seed: 42)
        func randomString() -> String {
            let printable = Bool.random(using: &rng)
            return String((0..<Int.random(in: 0...12, using: &rng)).map { _ in
                printable ? Character(Unicode.Scalar(UInt8.random(in: 0x20...0x7E, using: &rng))) : alphabet.randomElement(using: &rng)!
            })
        }
        func mutate(_ seed: String) -> String {
            var s = Array(seed)
            for _ in 0..<Int.random(in: 0...2, using: &rng) {
                let c = alphabet.randomElement(using: &rng)!
                switch Int.random(in: 0..<3, using: &rng) {
                case 0 where !s.isEmpty: s[Int.random(in: 0..<s.count, using: &rng)] = c
                case 1: s.insert(c, at: Int.random(in: 0...s.count, using: &rng))
                default: if !s.isEmpty { s.remove(at: Int.random(in: 0..<s.count, using: &rng)) }
                }
            }
            return String(s)
        }
        let randomInputs = (0..<1500).map { _ in randomString() }
        for (pattern, seeds) in patterns {
            let mine = try IdPattern(pattern)
            let ns = try NSRegularExpression(pattern: pattern)
            let swiftRegex = try Regex(pattern)
            var positives = 0
            var negatives = 0
            for s in randomInputs + seeds + (0..<1000).map({ _ in mutate(seeds.randomElement(using: &rng)!) }) {
                let full = NSRange(s.startIndex..., in: s)
                let nsMatch = ns.firstMatch(in: s, range: full).map { $0.range == full } ?? false
                let swiftMatch = s.wholeMatch(of: swiftRegex) != nil
                let got = mine.matches(s)
                XCTAssertEqual(got, nsMatch, "\(pattern) vs NSRegularExpression on \(s.debugDescription)")
                XCTAssertEqual(got, swiftMatch, "\(pattern) vs Regex on \(s.debugDescription)")
                if got { positives += 1 } else { negatives += 1 }
            }
            XCTAssertGreaterThan(positives, 10, pattern)
            XCTAssertGreaterThan(negatives, 10, pattern)
        }
    }

    func testMatchingDoesNotAllocateOrBlowUp() throws {
        // Linear-time automaton: a classic catastrophic-backtracking shape finishes instantly.
        let p = try IdPattern("^a*a*a*a*a*a*a*a*a*a*a*a*b$")
        let s = String(repeating: "a", count: 5000)
        XCTAssertFalse(p.matches(s))
        XCTAssertTrue(p.matches(s + "b"))
    }
}

