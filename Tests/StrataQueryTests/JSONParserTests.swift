import StrataTestSupport
import Foundation
import XCTest
@testable import StrataQuery

/// The direct JSON parser against Foundation's JSONSerialization (the reference decoder).
final class JSONParserTests: XCTestCase {
    func testAgreesWithFoundationOnEdgeCases() throws {
        let docs = [
            #"{}"#,
            #"  {"a" : 1 , "b":[1,[2,{"x":3}]], "c":{"d":{"e":null}}}  "#,
            #"{"s":"tab\there \"quoted\" back\\slash \/ \u00e9 \ud83d\ude00 \u0000","k":"日本語"}"#,
            #"{"n":-0,"m":-12,"big":9223372036854775807,"huge":9223372036854775808}"#,
            #"{"f":1.5,"e":1e3,"E":-2.5E-3,"z":0.0,"t":true,"u":false}"#,
            "{\"minute\":1795219200000,\"content_id\":\"c00001686\",\"user_id\":\"u000463861\",\"expose\":2,\"click\":1,\"content\":{\"title\":\"…\",\"category\":\"game\"},\"final\":true,\"rev\":2}",
        ]
        for d in docs {
            let fast = try XCTUnwrap(Value.decodeRow(d), d)
            let reference = try XCTUnwrap(Value.decodeRowWithFoundation(Data(d.utf8)), d)
            XCTAssertEqual(fast, reference, d)
        }
        let row = try XCTUnwrap(Value.decodeRow(docs[2]))
        XCTAssertEqual(row["s"], .string("tab\there \"quoted\" back\\slash / é 😀 \u{0}"))
        let nums = try XCTUnwrap(Value.decodeRow(docs[3]))
        XCTAssertEqual(nums["huge"], .double(9223372036854775808))
        // JSONSerialization on Linux turns large negative integers into doubles; the direct parser does not.
        XCTAssertEqual(Value.decodeRow(#"{"small":-9223372036854775808}"#)?["small"], .int(Int64.min))
    }

    func testRejectsInvalidJSON() {
        for bad in ["", "{", "{\"a\":}", "{\"a\":1,}", "{\"a\" 1}", "[1]", "{\"a\":01}", "{\"a\":1.}", "{\"a\":tru}",
                    "{\"a\":\"x}", "{\"a\":\"\\q\"}", "{\"a\":\"\\ud800\"}", "{\"a\":1} x", "{'a':1}", "{\"a\":\"\u{1}\"}",
                    String(repeating: "{\"a\":", count: 300) + "1" + String(repeating: "}", count: 300)] {
            XCTAssertNil(Value.decodeRow(bad), bad)
        }
    }

    func testRandomRowsRoundTripThroughJSONText() throws {
        var rng = SeededRandom(seed: 99)
        func random(_ depth: Int) -> Value {
            switch Int.random(in: 0..<(depth > 2 ? 5 : 6), using: &rng) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &rng))
            case 2: return .int(Int64.random(in: Int64.min...Int64.max, using: &rng))
            case 3: return .double(Double.random(in: -1e6...1e6, using: &rng))
            case 4: return .string(String((0..<Int.random(in: 0..<12, using: &rng)).map { _ in
                "aé\"\\\n😀x/\t".randomElement(using: &rng) ?? "a" }))
            default:
                var o: [String: Value] = [:]
                for k in 0..<Int.random(in: 0..<5, using: &rng) { o["k\(k)"] = random(depth + 1) }
                return .object(o)
            }
        }
        for _ in 0..<500 {
            var o: [String: Value] = [:]
            for k in 0..<Int.random(in: 0..<10, using: &rng) { o["f\(k)"] = random(0) }
            let text = Value.object(o).jsonText
            // Exact, including 19-digit integers and 17-digit doubles (which JSONSerialization
            // on Linux rounds, so it is no reference here).
            XCTAssertEqual(Value.decodeRow(text), o, text)
        }
    }
}
