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

    // MARK: - Slot decoding (RowLayout / RowBatch)

    /// Each slot must hold what the dictionary decoder finds at its path.
    private func assertSlotsAgree(_ text: String, _ layout: RowLayout, file: StaticString = #filePath, line: UInt = #line) {
        var batch = RowBatch(layout: layout)
        let ok = text.utf8CString.withUnsafeBytes { batch.append(json: UnsafeRawBufferPointer(rebasing: $0.dropLast())) }
        let reference = Value.decodeRow(text)
        XCTAssertEqual(ok, reference != nil, "accepts \(text)", file: file, line: line)
        guard ok, let reference else { XCTAssertEqual(batch.count, 0, file: file, line: line); return }
        for (slot, path) in layout.paths.enumerated() {
            var v: Value = .object(reference)
            for k in path { v = v[k] }
            XCTAssertEqual(batch[0, slot], v, "\(path) in \(text)", file: file, line: line)
        }
    }

    func testSlotDecodingAgreesWithTheDictionaryDecoder() {
        let layout = RowLayout(paths: [["minute"], ["content", "category"], ["content", "region"], ["a"], ["a", "b"],
                                       ["a", "b", "c"], ["s"], ["missing"], ["k"], ["x", "y"]])
        let docs = [
            #"{"minute":1,"content":{"category":"game","title":"t \"q\""},"a":{"b":{"c":[1,2]}},"s":"x"}"#,
            #"{"content":"not an object","a":5,"x":{"y":null}}"#,
            // A repeated key: the last one wins, parts included.
            #"{"content":{"category":"game","region":"GD"},"content":{"region":"BJ"}}"#,
            #"{"a":{"b":1},"a":{"b":{"c":2}}}"#,
            // Escaped keys match their decoded text; arrays are skipped but checked.
            #"{"\u006binute":7,"\u006b":true,"s":"\u00e9\ud83d\ude00","arr":[{"z":[[]]},"]",-1.5e3]}"#,
            #"  {"x":{"y":{"deep":{"er":1}}},"s":"日本語"}  "#,
            "{}",
        ]
        for d in docs { assertSlotsAgree(d, layout) }
        // Invalid JSON is refused by both, whether or not the bad part is a field the layout reads.
        for bad in ["", "{", "{\"a\":}", "{\"a\":1,}", "{\"a\" 1}", "[1]", "{\"a\":01}", "{\"zz\":1.}", "{\"zz\":tru}",
                    "{\"zz\":\"x}", "{\"zz\":\"\\q\"}", "{\"zz\":\"\\ud800\"}", "{\"a\":1} x", "{'a':1}",
                    "{\"zz\":\"\u{1}\"}", "{\"zz\":[1,]}", "{\"zz\":{\"q\":}}", "{\"zz\":{1:2}}",
                    "{\"zz\":" + String(repeating: "[", count: 300) + String(repeating: "]", count: 300) + "}"] {
            assertSlotsAgree(bad, layout)
        }
    }

    func testSlotDecodingOfRandomRows() {
        var rng = SeededRandom(seed: 7)
        let names = ["a", "b", "c", "d"]
        func random(_ depth: Int) -> Value {
            switch Int.random(in: 0..<(depth > 2 ? 5 : 6), using: &rng) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &rng))
            case 2: return .int(Int64.random(in: -1_000...1_000, using: &rng))
            case 3: return .double(Double.random(in: -1e6...1e6, using: &rng))
            case 4: return .string(String((0..<Int.random(in: 0..<6, using: &rng)).map { _ in "aé\"\\\n😀".randomElement(using: &rng)! }))
            default:
                var o: [String: Value] = [:]
                for _ in 0..<Int.random(in: 0..<4, using: &rng) { o[names.randomElement(using: &rng)!] = random(depth + 1) }
                return .object(o)
            }
        }
        let layout = RowLayout(paths: [["a"], ["b", "a"], ["b", "c", "d"], ["c"], ["c", "a"], ["d", "d"]])
        for _ in 0..<2_000 {
            var o: [String: Value] = [:]
            for _ in 0..<Int.random(in: 0..<6, using: &rng) { o[names.randomElement(using: &rng)!] = random(0) }
            assertSlotsAgree(Value.object(o).jsonText, layout)
        }
    }

    func testBatchesKeepRowsAndPartitionsApart() throws {
        let layout = RowLayout(paths: [["minute"], ["content_id"]])
        var batch = RowBatch(layout: layout)
        for (i, text) in [#"{"minute":1,"content_id":"a"}"#, "not json", #"{"content_id":"b","minute":2}"#].enumerated() {
            _ = text.utf8CString.withUnsafeBytes { batch.append(json: UnsafeRawBufferPointer(rebasing: $0.dropLast()), partition: i) }
        }
        XCTAssertEqual(batch.count, 2)
        XCTAssertEqual(batch.partitions, [0, 2])
        XCTAssertEqual(batch.value(1, "content_id"), "b")
        XCTAssertEqual(batch[1, 0], 2)
        batch.removeLast()
        batch.append(["minute": 3, "content_id": "c", "other": true])
        XCTAssertEqual(batch.partitions, [0, 0])
        XCTAssertEqual(batch.value(1, "minute"), 3)
        batch.removeAll()
        XCTAssertTrue(batch.isEmpty)
    }
}
