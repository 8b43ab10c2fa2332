import StrataTestSupport
import Foundation
import XCTest
@testable import StrataCore

final class EventScannerTests: XCTestCase {
    static let base = #"{"event_id":"e1","ts":1795219200000,"action":"click","content_id":"c00001686","user_id":"u000463861","strategy":"s0","device":{"os":"ios","app_ver":"8.1.0"},"page":"feed"}"#

    func scan(_ bytes: [UInt8], maxBytes: Int = 64 * 1024) -> Result<ScannedEvent, ScanError> {
        let scanner = EventScanner(maxBytes: maxBytes)
        return bytes.withUnsafeBytes { buf in Result { () throws(ScanError) in try scanner.scan(buf) } }
    }

    func scan(_ s: String) -> Result<ScannedEvent, ScanError> { scan(Array(s.utf8)) }

    func reason(_ bytes: [UInt8]) -> String {
        switch scan(bytes) {
        case .success: "ok"
        case .failure(let e): e.reason
        }
    }

    func reason(_ s: String) -> String { reason(Array(s.utf8)) }

    /// The base event with `field` replaced by a raw JSON value (or removed when nil).
    func event(_ field: String, _ raw: String?) -> String {
        var fields: [(String, String)] = [
            ("event_id", #""e1""#), ("ts", "1795219200000"), ("action", #""click""#),
            ("content_id", #""c00001686""#), ("user_id", #""u000463861""#),
        ]
        if let i = fields.firstIndex(where: { $0.0 == field }) {
            if let raw { fields[i].1 = raw } else { fields.remove(at: i) }
        } else if let raw {
            fields.append((field, raw))
        }
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

    func string(_ bytes: [UInt8], _ r: ByteRange?) -> String? {
        guard let r else { return nil }
        return bytes.withUnsafeBytes { String(decoding: EventScanner.decodeString($0, r), as: UTF8.self) }
    }

    // MARK: valid inputs

    func testBaseEvent() throws {
        let bytes = Array(Self.base.utf8)
        let ev = try scan(bytes).get()
        XCTAssertEqual(string(bytes, ev.eventId), "e1")
        XCTAssertEqual(ev.ts, 1_795_219_200_000)
        XCTAssertEqual(string(bytes, ev.action), "click")
        XCTAssertEqual(string(bytes, ev.contentId), "c00001686")
        XCTAssertEqual(string(bytes, ev.userId), "u000463861")
        XCTAssertEqual(string(bytes, ev.strategy), "s0")
        XCTAssertNil(ev.durationMs)
        XCTAssertFalse(ev.hasEscapes)
        bytes.withUnsafeBytes { buf in
            XCTAssertEqual(Array(ev.contentId.bytes(in: buf)), Array("c00001686".utf8))
        }
    }

    func testValidTable() {
        let valid: [(String, String)] = [
            ("whitespace everywhere", " \n\t{ \"event_id\" : \"e1\" ,\r\n \"ts\" : 5 , \"action\":\"play\", \"content_id\" :\"c1\",\"user_id\":\"u\" } \n\t\r"),
            ("strategy null", event("strategy", "null")),
            ("duration null", event("duration_ms", "null")),
            ("duration", event("duration_ms", "31000")),
            ("device null", event("device", "null")),
            ("device object", event("device", #"{"os":"android","app_ver":"1.2"}"#)),
            ("page any type", event("page", "[1,2]")),
            ("unknown nested", event("x", #"{"a":[1,2,{"b":null,"c":[true,false]}],"d":{},"e":[],"f":-1.5e-3,"g":0.0,"h":1E+2}"#)),
            ("unknown duplicated", event("x", "1").replacingOccurrences(of: "}", with: #","x":2}"#)),
            ("empty content id", event("content_id", #""""#)),
            ("empty action", event("action", #""""#)),
            ("event id 64 bytes", event("event_id", "\"" + String(repeating: "a", count: 64) + "\"")),
            ("event id 64 escaped", event("event_id", "\"" + String(repeating: "\\u0041", count: 64) + "\"")),
            ("event id 32 two-byte chars", event("event_id", "\"" + String(repeating: "é", count: 32) + "\"")),
            ("ts zero", event("ts", "0")),
            ("ts max", event("ts", "9223372036854775807")),
            ("ts minus zero", event("ts", "-0")),
            ("unicode values", event("user_id", #""用户😀é""#)),
            ("escaped key", event("x", "1").replacingOccurrences(of: #""event_id""#, with: #""ev\u0065nt_id""#)),
            ("valid surrogate pair", event("user_id", #""\uD83D\uDE00""#)),
            ("escaped nul", event("user_id", #""a\u0000b""#)),
            ("all escapes", event("user_id", #""\"\\\/\b\f\n\r\t""#)),
            ("nesting 64", event("x", String(repeating: "[", count: 63) + String(repeating: "]", count: 63))),
            ("nesting 64 objects", event("x", String(repeating: #"{"a":"#, count: 62) + "{}" + String(repeating: "}", count: 62))),
        ]
        for (name, json) in valid {
            XCTAssertEqual(reason(json), "ok", name + ": " + json)
        }
    }

    func testFieldValues() throws {
        let json = event("duration_ms", "31000").replacingOccurrences(of: "}", with: #","strategy":null}"#)
        let ev = try scan(json).get()
        XCTAssertEqual(ev.durationMs, 31000)
        XCTAssertNil(ev.strategy)
        XCTAssertEqual(try scan(event("ts", "9223372036854775807")).get().ts, Int64.max)
        XCTAssertEqual(try scan(event("ts", "-0")).get().ts, 0)
    }

    // MARK: invalid inputs with exact reasons

    func testInvalidTable() {
        let cases: [(String, String)] = [
            // shape
            ("", "empty"),
            ("   \n\t\r ", "empty"),
            ("[]", "not_an_object"),
            (#"[{"event_id":"e1"}]"#, "not_an_object"),
            (#""str""#, "not_an_object"),
            ("42", "not_an_object"),
            ("-1", "not_an_object"),
            ("null", "not_an_object"),
            ("true", "not_an_object"),
            ("hello", "malformed_json"),
            ("{}", "missing_field:event_id"),
            (Self.base + "x", "malformed_json"),
            (Self.base + Self.base, "malformed_json"),
            (Self.base + ",", "malformed_json"),
            (Self.base + "\u{0}", "malformed_json"),
            ("\u{FEFF}" + Self.base, "malformed_json"),
            (#"{"event_id":"e1",}"#, "malformed_json"),
            (#"{"event_id" "e1"}"#, "malformed_json"),
            (#"{"event_id":"e1" "ts":1}"#, "malformed_json"),
            (#"{event_id:"e1"}"#, "malformed_json"),
            (#"{'event_id':'e1'}"#, "malformed_json"),
            (#"{"event_id":}"#, "malformed_json"),
            (event("x", "[1,]"), "malformed_json"),
            (event("x", "[1 2]"), "malformed_json"),
            (event("x", #"{"a":1]"#), "malformed_json"),
            (event("x", "[1}"), "malformed_json"),
            (event("x", "tru"), "malformed_json"),
            (event("x", "nul"), "malformed_json"),
            (event("x", "True"), "malformed_json"),
            (event("x", "undefined"), "malformed_json"),
            (event("x", "NaN"), "malformed_json"),
            // numbers
            (event("ts", "01"), "malformed_json"),
            (event("ts", "1."), "malformed_json"),
            (event("ts", "-"), "malformed_json"),
            (event("ts", "-a"), "malformed_json"),
            (event("ts", "+1"), "malformed_json"),
            (event("ts", ".5"), "malformed_json"),
            (event("ts", "1e"), "malformed_json"),
            (event("ts", "1e+"), "malformed_json"),
            (event("ts", "0x10"), "malformed_json"),
            (event("x", "-01"), "malformed_json"),
            (event("x", "1.e3"), "malformed_json"),
            (event("ts", "1e5"), "wrong_type:ts"),
            (event("ts", "1.0"), "wrong_type:ts"),
            (event("ts", "1E2"), "wrong_type:ts"),
            (event("ts", "9223372036854775808"), "out_of_range:ts"),
            (event("ts", "99999999999999999999999"), "out_of_range:ts"),
            (event("ts", "-1"), "out_of_range:ts"),
            (event("duration_ms", "-5"), "out_of_range:duration_ms"),
            (event("duration_ms", "1.5"), "wrong_type:duration_ms"),
            // wrong types
            (event("event_id", "5"), "wrong_type:event_id"),
            (event("event_id", "null"), "wrong_type:event_id"),
            (event("ts", #""1795219200000""#), "wrong_type:ts"),
            (event("ts", "null"), "wrong_type:ts"),
            (event("ts", "true"), "wrong_type:ts"),
            (event("action", "null"), "wrong_type:action"),
            (event("content_id", "123"), "wrong_type:content_id"),
            (event("content_id", #"{"id":"c1"}"#), "wrong_type:content_id"),
            (event("user_id", "[]"), "wrong_type:user_id"),
            (event("strategy", "1"), "wrong_type:strategy"),
            (event("strategy", "false"), "wrong_type:strategy"),
            (event("duration_ms", #""5""#), "wrong_type:duration_ms"),
            (event("device", #""ios""#), "wrong_type:device"),
            (event("device", "[]"), "wrong_type:device"),
            // missing fields
            (event("event_id", nil), "missing_field:event_id"),
            (event("ts", nil), "missing_field:ts"),
            (event("action", nil), "missing_field:action"),
            (event("content_id", nil), "missing_field:content_id"),
            (event("user_id", nil), "missing_field:user_id"),
            // lengths
            (event("event_id", #""""#), "event_id_length"),
            (event("event_id", "\"" + String(repeating: "a", count: 65) + "\""), "event_id_length"),
            (event("event_id", "\"" + String(repeating: "\\u0041", count: 65) + "\""), "event_id_length"),
            (event("event_id", "\"" + String(repeating: "é", count: 33) + "\""), "event_id_length"),
            (event("user_id", #""""#), "empty_field:user_id"),
            // duplicates
            (event("ts", "1").replacingOccurrences(of: "}", with: #","ts":2}"#), "duplicate_field:ts"),
            (event("x", "1").replacingOccurrences(of: "}", with: #","event_id":"e2"}"#), "duplicate_field:event_id"),
            (event("x", "1").replacingOccurrences(of: "}", with: #","user_id":"u2"}"#), "duplicate_field:user_id"),
            (event("strategy", #""a""#).replacingOccurrences(of: "}", with: #","strategy":null}"#), "duplicate_field:strategy"),
            (event("x", "1").replacingOccurrences(of: "}", with: #","ev\u0065nt_id":"e2"}"#), "duplicate_field:event_id"),
            // escapes and control characters
            (event("user_id", #""a\x""#), "malformed_json"),
            (event("user_id", #""a\u12G4""#), "malformed_json"),
            (event("user_id", #""a\u12""#), "malformed_json"),
            (event("user_id", #""a\'""#), "malformed_json"),
            (event("user_id", "\"a\nb\""), "malformed_json"),
            (event("user_id", "\"a\tb\""), "malformed_json"),
            (event("user_id", "\"a\u{1F}b\""), "malformed_json"),
            (event("x", "\"a\u{0}b\""), "malformed_json"),
            (event("user_id", #""\uD800""#), "invalid_utf8"),
            (event("user_id", #""\uDC00""#), "invalid_utf8"),
            (event("user_id", #""\uD800\u0041""#), "invalid_utf8"),
            (event("user_id", #""\uD800x""#), "invalid_utf8"),
            (event("user_id", #""\uDE00\uD83D""#), "invalid_utf8"),
            (event("x", #"{"k":["\uDBFF"]}"#), "invalid_utf8"),
            // depth
            (event("x", String(repeating: "[", count: 64) + String(repeating: "]", count: 64)), "too_deep"),
            (event("x", String(repeating: #"{"a":"#, count: 63) + "{}" + String(repeating: "}", count: 63)), "too_deep"),
            (event("x", String(repeating: "[", count: 10_000)), "too_deep"),
            // precedence: a syntax error anywhere beats a schema error earlier on
            (event("event_id", "5").replacingOccurrences(of: "}", with: #","z":01}"#), "malformed_json"),
            (event("event_id", "5").replacingOccurrences(of: "}", with: #","ts":2}"#), "wrong_type:event_id"),
            (#"{"ts":"x"}"#, "wrong_type:ts"),
        ]
        for (json, expected) in cases {
            XCTAssertEqual(reason(json), expected, json.count > 300 ? String(json.prefix(300)) + "…" : json)
        }
    }

    func testInvalidUTF8() {
        func withBytes(_ prefix: String, _ bad: [UInt8], _ suffix: String) -> [UInt8] {
            Array(prefix.utf8) + bad + Array(suffix.utf8)
        }
        let userPrefix = #"{"event_id":"e1","ts":1,"action":"click","content_id":"c1","user_id":"u"#
        let bad: [[UInt8]] = [
            [0x80],                   // stray continuation
            [0xBF],
            [0xC0, 0xAF],             // overlong '/'
            [0xC1, 0xBF],             // overlong
            [0xE0, 0x80, 0xAF],       // overlong 3-byte
            [0xE0, 0x9F, 0xBF],       // overlong 3-byte (max)
            [0xF0, 0x80, 0x80, 0xAF], // overlong 4-byte
            [0xF0, 0x8F, 0xBF, 0xBF], // overlong 4-byte (max)
            [0xED, 0xA0, 0x80],       // UTF-8-encoded surrogate U+D800
            [0xED, 0xBF, 0xBF],       // U+DFFF
            [0xF4, 0x90, 0x80, 0x80], // U+110000
            [0xF5, 0x80, 0x80, 0x80],
            [0xF8, 0x88, 0x80, 0x80, 0x80],
            [0xFF], [0xFE],
            [0xC3],                   // truncated 2-byte: next byte is the closing quote
            [0xE2, 0x82],             // truncated 3-byte
            [0xF0, 0x9F, 0x98],       // truncated 4-byte
            [0xC3, 0x28],             // invalid continuation
            [0xE2, 0x28, 0xA1],
        ]
        for b in bad {
            // in a value
            XCTAssertEqual(reason(withBytes(userPrefix, b, #""}"#)), "invalid_utf8", "value \(b)")
            // in a key (of an unknown field)
            XCTAssertEqual(reason(withBytes(#"{"k"#, b, #"":1,"event_id":"e1","ts":1,"action":"a","content_id":"c","user_id":"u"}"#)),
                           "invalid_utf8", "key \(b)")
            // in a nested skipped value
            XCTAssertEqual(reason(withBytes(#"{"event_id":"e1","ts":1,"action":"a","content_id":"c","user_id":"u","x":{"y":["a"#, b, #""]}}"#)),
                           "invalid_utf8", "nested \(b)")
            // long strings exercise the 8-byte fast path around the bad byte
            XCTAssertEqual(reason(withBytes(userPrefix + "0123456789abcdef", b, "0123456789abcdef\"}")), "invalid_utf8", "long \(b)")
        }
        // outside any string, a non-ASCII byte is a syntax error
        XCTAssertEqual(reason(Array(#"{"event_id":"#.utf8) + [0xC3, 0xA9]), "malformed_json")
        // boundaries that are valid
        let good: [[UInt8]] = [[0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80],
                               [0xEF, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF]]
        for g in good {
            XCTAssertEqual(reason(withBytes(userPrefix, g, #""}"#)), "ok", "\(g)")
        }
    }

    func testTruncationsOfBase() {
        let bytes = Array(Self.base.utf8)
        XCTAssertEqual(reason([]), "empty")
        for cut in 1..<bytes.count {
            XCTAssertEqual(reason(Array(bytes[..<cut])), "malformed_json", "cut at \(cut): \(String(decoding: bytes[..<cut], as: UTF8.self))")
        }
        // truncation inside a multi-byte character or an escape
        let uni = Array(event("user_id", #""中\u4e2d""#).utf8)
        let zhong = uni.firstIndex(of: 0xE4)!
        XCTAssertEqual(reason(Array(uni[..<(zhong + 1)])), "invalid_utf8")
        XCTAssertEqual(reason(Array(uni[..<(zhong + 2)])), "invalid_utf8")
        let esc = uni.firstIndex(of: UInt8(ascii: "\\"))!
        for cut in esc..<(esc + 6) { XCTAssertEqual(reason(Array(uni[..<cut])), "malformed_json", "cut \(cut)") }
    }

    func testIntegerParsing() {
        // Every digit count through the 8-digits-at-once path and past Int64's 19 digits.
        var rng = SeededRandom(seed: 7)
        for digits in 1...25 {
            for _ in 0..<40 {
                let text = String(Int.random(in: 1...9, using: &rng)) + String((1..<digits).map { _ in Character(String(Int.random(in: 0...9, using: &rng))) })
                let expected = Int64(text).map { "ok \($0)" } ?? "out_of_range:ts"
                let got: String
                switch scan(event("ts", text)) {
                case .success(let e): got = "ok \(e.ts)"
                case .failure(let e): got = e.reason
                }
                XCTAssertEqual(got, expected, text)
                XCTAssertEqual(reason(event("ts", text + ".5")), "wrong_type:ts", text)
                XCTAssertEqual(reason(event("ts", text + "e1")), "wrong_type:ts", text)
                XCTAssertEqual(reason(event("ts", text + "E+1")), "wrong_type:ts", text)
                XCTAssertEqual(reason(event("ts", text + "a")), "malformed_json", text)
                XCTAssertEqual(reason(event("ts", text + ":")), "malformed_json", text)
                XCTAssertEqual(reason(event("ts", "-" + text)), "out_of_range:ts", text)
            }
        }
        XCTAssertEqual(reason(event("ts", "1234567/9")), "malformed_json")
        XCTAssertEqual(reason(event("ts", "12345678:9")), "malformed_json")
        XCTAssertEqual(reason(event("ts", "0123456789")), "malformed_json")
        XCTAssertEqual(scan(event("duration_ms", "00")).map(\.durationMs), .failure(.malformedJSON(offset: 116, message: "expected ',' or '}' after a value")))
    }

    func testTooLarge() {
        var big = Array(event("x", "\"\"").utf8)
        big.insert(contentsOf: [UInt8](repeating: UInt8(ascii: "a"), count: 1 << 20), at: big.count - 2)
        XCTAssertEqual(reason(big), "too_large")
        XCTAssertEqual(scan(big, maxBytes: 2 << 20).map { _ in "ok" }, .success("ok"))
        // checked before anything else, even for garbage
        XCTAssertEqual(scan([UInt8](repeating: 0xFF, count: 65 * 1024)), .failure(.tooLarge(size: 65 * 1024, limit: 64 * 1024)))
        let exact = Array(Self.base.utf8)
        XCTAssertEqual(scan(exact, maxBytes: exact.count).map { _ in true }, .success(true))
        XCTAssertEqual(scan(exact, maxBytes: exact.count - 1).map { _ in true }, .failure(.tooLarge(size: exact.count, limit: exact.count - 1)))
    }

    func testErrorDetailsCarryOffsets() {
        let json = #"{"event_id":"e1","ts":01}"#
        guard case .failure(let e) = scan(json) else { return XCTFail("accepted") }
        XCTAssertEqual(e.reason, "malformed_json")
        XCTAssertEqual(e, .malformedJSON(offset: 23, message: "expected ',' or '}' after a value"))
        XCTAssertTrue(e.detail.contains("byte 23"), e.detail)
        guard case .failure(let m) = scan(event("ts", nil)) else { return XCTFail("accepted") }
        XCTAssertEqual(m.detail, #"required field "ts" is missing"#)
        guard case .failure(let w) = scan(event("ts", "1.5")) else { return XCTFail("accepted") }
        XCTAssertEqual(w, .wrongType(.ts, offset: 22))
        XCTAssertTrue(w.description.hasPrefix("wrong_type:ts: at byte 22"), w.description)
    }

    func testEscapesDecode() throws {
        let json = event("content_id", #""c\u0030\u00300\/1686\"\\\n\uD83D\uDE00é""#)
        let bytes = Array(json.utf8)
        let ev = try scan(bytes).get()
        XCTAssertTrue(ev.hasEscapes)
        XCTAssertEqual(string(bytes, ev.contentId), "c000/1686\"\\\n😀é")
        bytes.withUnsafeBytes { buf in
            XCTAssertEqual(EventScanner.decodeString(buf, ev.contentId), Array("c000/1686\"\\\n😀é".utf8))
            XCTAssertTrue(EventScanner.decodedEquals(buf, ev.contentId, UnsafeRawBufferPointer(start: nil, count: 0)) == false)
            Array("c000/1686\"\\\n😀é".utf8).withUnsafeBytes { XCTAssertTrue(EventScanner.decodedEquals(buf, ev.contentId, $0)) }
            Array("c000/1686".utf8).withUnsafeBytes { XCTAssertFalse(EventScanner.decodedEquals(buf, ev.contentId, $0)) }
        }
        // escapes only in a field the scanner does not extract leave hasEscapes false
        XCTAssertFalse(try scan(event("page", #""a\nb""#)).get().hasEscapes)
        XCTAssertTrue(try scan(event("strategy", #""s\u0031""#)).get().hasEscapes)
        // decodeString is tolerant of text the scanner would reject
        let raw = Array(#"a\uD800b\q\u12"#.utf8)
        raw.withUnsafeBytes { buf in
            XCTAssertEqual(String(decoding: EventScanner.decodeString(buf, ByteRange(start: 0, count: raw.count)), as: UTF8.self),
                           "a\u{FFFD}b\\q\\u12")
        }
    }

    // MARK: property tests against Foundation

    /// JSON string literal; escapes randomly (\uXXXX incl. surrogate pairs, short escapes) so the
    /// scanner sees every form. Foundation is the judge of what it decodes to.
    static func jsonString(_ s: String, _ rng: inout some RandomNumberGenerator) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            let forced = u.value < 0x20 || u == "\"" || u == "\\"
            if forced || Int.random(in: 0..<10, using: &rng) == 0 {
                switch u {
                case "\"" where Bool.random(using: &rng): out += "\\\""
                case "\\" where Bool.random(using: &rng): out += "\\\\"
                case "\n" where Bool.random(using: &rng): out += "\\n"
                case "/" where Bool.random(using: &rng): out += "\\/"
                default:
                    for unit in String(u).utf16 {
                        let hex = String(unit, radix: 16, uppercase: Bool.random(using: &rng))
                        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    }
                }
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    static func randomText(_ rng: inout some RandomNumberGenerator, maxLength: Int = 24) -> String {
        let pools: [ClosedRange<UInt32>] = [0x20...0x7E, 0x20...0x7E, 0x0...0x1F, 0xA0...0x7FF, 0x4E00...0x9FFF, 0xE000...0xFFFD, 0x1F600...0x1F64F, 0x10000...0x10FFFF]
        var s = ""
        for _ in 0..<Int.random(in: 0...maxLength, using: &rng) {
            let pool = pools.randomElement(using: &rng)!
            if let u = Unicode.Scalar(UInt32.random(in: pool, using: &rng)) { s.unicodeScalars.append(u) }
        }
        return s
    }

    static func randomValue(_ rng: inout some RandomNumberGenerator, depth: Int = 0) -> String {
        switch Int.random(in: 0..<(depth > 3 ? 5 : 7), using: &rng) {
        case 0: return jsonString(randomText(&rng), &rng)
        case 1: return String(Int64.random(in: Int64.min...Int64.max, using: &rng))
        case 2: return ["1.5", "-0.25e-3", "6.02E23", "0", "-0", "1e9", "3.14159"].randomElement(using: &rng)!
        case 3: return ["true", "false", "null"].randomElement(using: &rng)!
        case 4: return jsonString(String(Int.random(in: 0...1000, using: &rng)), &rng)
        case 5: return "[" + (0..<Int.random(in: 0...3, using: &rng)).map { _ in randomValue(&rng, depth: depth + 1) }.joined(separator: ",") + "]"
        default:
            return "{" + (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                jsonString(randomText(&rng, maxLength: 6), &rng) + ":" + randomValue(&rng, depth: depth + 1)
            }.joined(separator: ",") + "}"
        }
    }

    static func ws(_ rng: inout some RandomNumberGenerator) -> String {
        Int.random(in: 0..<4, using: &rng) == 0 ? [" ", "\n", "\t", "\r\n ", "  "].randomElement(using: &rng)! : ""
    }

    /// A random valid event: required fields, some optional ones, extra fields, random key order,
    /// random whitespace, built either by JSONSerialization or by the escaping writer above.
    static func randomEvent(_ rng: inout some RandomNumberGenerator) -> String {
        var fields: [(String, Any)] = [
            ("event_id", randomText(&rng, maxLength: 12)),
            ("ts", Int64.random(in: 0...Int64.max, using: &rng)),
            ("action", ["expose", "click", "play", "like", "share", "comment", "report", randomText(&rng)].randomElement(using: &rng)!),
            ("content_id", Bool.random(using: &rng) ? String(format: "c%08d", Int.random(in: 0...99_999_999, using: &rng)) : randomText(&rng)),
            ("user_id", "u" + randomText(&rng)),
        ]
        // event_id must be 1...64 bytes once decoded
        if let e = fields[0].1 as? String, e.utf8.count > 64 || e.isEmpty { fields[0].1 = "e\(e.count)" }
        if Bool.random(using: &rng) { fields.append(("strategy", Bool.random(using: &rng) ? randomText(&rng) as Any : NSNull())) }
        if Bool.random(using: &rng) { fields.append(("duration_ms", Bool.random(using: &rng) ? Int64.random(in: 0...Int64.max, using: &rng) as Any : NSNull())) }
        if Bool.random(using: &rng) { fields.append(("device", ["os": randomText(&rng), "app_ver": "8.1"])) }
        if Bool.random(using: &rng) { fields.append(("page", randomText(&rng))) }
        fields.shuffle(using: &rng)

        var parts: [String] = []
        let viaFoundation = Bool.random(using: &rng)
        for (k, v) in fields {
            let value: String
            if viaFoundation {
                let data = try! JSONSerialization.data(withJSONObject: v, options: [.fragmentsAllowed])
                value = String(decoding: data, as: UTF8.self)
            } else if let s = v as? String {
                value = jsonString(s, &rng)
            } else if let d = v as? [String: String] {
                value = "{" + d.map { jsonString($0.key, &rng) + ":" + jsonString($0.value, &rng) }.joined(separator: ",") + "}"
            } else if v is NSNull {
                value = "null"
            } else {
                value = "\(v)"
            }
            parts.append(ws(&rng) + jsonString(k, &rng) + ws(&rng) + ":" + ws(&rng) + value + ws(&rng))
        }
        for _ in 0..<Int.random(in: 0...4, using: &rng) {
            let key = "x_" + String(Int.random(in: 0...1_000_000, using: &rng))
            parts.insert(jsonString(key, &rng) + ":" + randomValue(&rng), at: Int.random(in: 0...parts.count, using: &rng))
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    func testRandomValidEventsMatchFoundation() throws {
        var rng = SeededRandom(seed: 0x5EED_0001)
        for i in 0..<3000 {
            let json = Self.randomEvent(&rng)
            let bytes = Array(json.utf8)
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any], json)
            let ev: ScannedEvent
            switch scan(bytes) {
            case .success(let e): ev = e
            case .failure(let e): XCTFail("#\(i) rejected (\(e)): \(json)"); continue
            }
            func check(_ field: String, _ r: ByteRange?, file: StaticString = #filePath, line: UInt = #line) {
                let expected = (object[field] as? String).map { Array($0.utf8) }
                let got = r.map { r in bytes.withUnsafeBytes { EventScanner.decodeString($0, r) } }
                XCTAssertEqual(got, expected, "#\(i) \(field) in \(json)", file: file, line: line)
            }
            check("event_id", ev.eventId)
            check("action", ev.action)
            check("content_id", ev.contentId)
            check("user_id", ev.userId)
            check("strategy", ev.strategy)
            XCTAssertEqual(ev.ts, (object["ts"] as? NSNumber)?.int64Value, json)
            XCTAssertEqual(ev.durationMs, (object["duration_ms"] as? NSNumber)?.int64Value, json)
            let anyEscaped = [ev.eventId, ev.action, ev.contentId, ev.userId, ev.strategy].compactMap { $0 }
                .contains { bytes[$0.start..<$0.end].contains(UInt8(ascii: "\\")) }
            XCTAssertEqual(ev.hasEscapes, anyEscaped, json)
        }
    }

    func testRandomTruncationsAndMutationsNeverCrash() {
        var rng = SeededRandom(seed: 0x5EED_0002)
        for _ in 0..<2000 {
            let json = Self.randomEvent(&rng)
            let bytes = Array(json.utf8)
            guard case .success = scan(bytes) else { XCTFail("valid event rejected: \(json)"); continue }
            // every strict prefix is rejected (the closing brace is the last byte)
            for _ in 0..<8 {
                let cut = Int.random(in: 0..<bytes.count, using: &rng)
                if case .success = scan(Array(bytes[..<cut])) { XCTFail("prefix \(cut) accepted: \(json)") }
            }
            // random byte mutations: never crash; anything accepted is JSON Foundation accepts too
            var mutated = bytes
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let i = Int.random(in: 0..<mutated.count, using: &rng)
                mutated[i] = [UInt8.random(in: 0...255, using: &rng), UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "{"), UInt8(ascii: "]")].randomElement(using: &rng)!
            }
            if case .success = scan(mutated) {
                XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(mutated)), String(decoding: mutated, as: UTF8.self))
            }
        }
    }

    func testEveryPrefixOfRandomEventsRejected() {
        var rng = SeededRandom(seed: 0x5EED_0003)
        for _ in 0..<100 {
            let bytes = Array(Self.randomEvent(&rng).utf8)
            for cut in 0..<bytes.count {
                if case .success = scan(Array(bytes[..<cut])) {
                    XCTFail("prefix \(cut) accepted: \(String(decoding: bytes, as: UTF8.self))")
                }
            }
        }
    }
}

