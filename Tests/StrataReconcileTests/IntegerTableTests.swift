@testable import StrataReconcile
import StrataTestSupport
import XCTest

/// The scan's own hash tables against Swift's Set and Dictionary.
final class IntegerTableTests: XCTestCase {
    func testSetAndMapAgreeWithSwiftCollections() {
        var rng = SeededRandom(seed: 99)
        var mine = UInt64Set(capacity: 4)
        var reference = Set<UInt64>()
        var map = UInt64IndexMap(capacity: 4)
        var referenceMap: [UInt64: Int32] = [:]
        for i in 0..<200_000 {
            // Packed keys that differ only in high bits, random keys, repeats, and 0.
            let key: UInt64 = switch i % 4 {
            case 0: UInt64(rng.below(1_440)) << 53 | UInt64(rng.below(50))
            case 1: rng.next()
            case 2: UInt64(rng.below(1_000))
            default: 0
            }
            XCTAssertEqual(mine.insert(key), reference.insert(key).inserted)
            if key != UInt64IndexMap.empty {
                let v = map.value(for: key) { Int32(referenceMap.count) }
                if referenceMap[key] == nil { referenceMap[key] = Int32(referenceMap.count) }
                XCTAssertEqual(v, referenceMap[key])
            }
        }
        XCTAssertEqual(mine.count, reference.count)
        var listed = Set<UInt64>()
        mine.forEach { listed.insert($0) }
        XCTAssertEqual(listed, reference)
        XCTAssertFalse(mine.contains(12_345_678_901))
        XCTAssertEqual(map.count, referenceMap.count)
        for (k, v) in referenceMap { XCTAssertEqual(map[k], v) }
        XCTAssertNil(map[987_654_321_987])
    }

    func testRawEventReaderVerdicts() throws {
        var reader = RawEventReader()
        func verdict(_ s: String) -> String {
            var s = s
            return s.withUTF8 { raw in
                do { _ = try reader.read(UnsafeRawBufferPointer(raw)); return "ok" } catch let e as Rejection { return e.code } catch { return "other: \(error)" }
            }
        }
        let base = #""event_id":"e1","ts":1,"action":"click","content_id":"c00000001","user_id":"u1""#
        XCTAssertEqual(verdict("{\(base)}"), "ok")
        XCTAssertEqual(verdict("{\(base),\"strategy\":null,\"duration_ms\":null,\"device\":null,\"x\":[1,{\"y\":\"\\u00e9\"}]}"), "ok")
        XCTAssertEqual(verdict("  "), "empty")
        XCTAssertEqual(verdict("[1]"), "not_an_object")
        XCTAssertEqual(verdict("{\(base)} x"), "malformed_json")
        XCTAssertEqual(verdict("{\(base),\"ts\":2}"), "duplicate_field:ts")
        XCTAssertEqual(verdict("{\(base),\"t\\u0073\":2}"), "duplicate_field:ts", "an escaped key is the key")
        XCTAssertEqual(verdict(#"{"event_id":"e1","ts":1.0,"action":"click","content_id":"c1","user_id":"u1"}"#), "wrong_type:ts")
        XCTAssertEqual(verdict(#"{"event_id":"e1","ts":-3,"action":"click","content_id":"c1","user_id":"u1"}"#), "out_of_range:ts")
        XCTAssertEqual(verdict(#"{"event_id":"e1","ts":-0,"action":"click","content_id":"c1","user_id":"u1"}"#), "ok")
        XCTAssertEqual(verdict(#"{"event_id":"e1","ts":99999999999999999999,"action":"click","content_id":"c1","user_id":"u1"}"#), "out_of_range:ts")
        XCTAssertEqual(verdict(#"{"event_id":"","ts":1,"action":"click","content_id":"c1","user_id":"u1"}"#), "event_id_length")
        XCTAssertEqual(verdict("{\"event_id\":\"\(String(repeating: "x", count: 65))\",\"ts\":1,\"action\":\"a\",\"content_id\":\"c\",\"user_id\":\"u\"}"), "event_id_length")
        XCTAssertEqual(verdict(#"{"event_id":"e1","ts":1,"action":"click","content_id":"c1","user_id":""}"#), "empty_field:user_id")
        XCTAssertEqual(verdict(#"{"event_id":"e1","action":"click","content_id":"c1","user_id":"u1"}"#), "missing_field:ts")
        XCTAssertEqual(verdict(#"{"event_id":"e1","ts":1,"action":"click","content_id":"c1","user_id":"u1","device":"x"}"#), "wrong_type:device")
        XCTAssertEqual(verdict(#"{"event_id":"e1","ts":1,"action":"click","content_id":"c1","user_id":"u1","s":"\ud800"}"#), "invalid_utf8")
        XCTAssertEqual(verdict(#"{"event_id":"e1","ts":1,"action":"click","content_id":"c1","user_id":"u1","s":"a\qb"}"#), "malformed_json")
        XCTAssertEqual(verdict("{\"event_id\":\"e\u{1}\",\"ts\":1}"), "malformed_json", "raw control character")
        let deep = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        XCTAssertEqual(verdict("{\(base),\"d\":\(deep)}"), "too_deep")
        let ok63 = String(repeating: "[", count: 63) + String(repeating: "]", count: 63)
        XCTAssertEqual(verdict("{\(base),\"d\":\(ok63)}"), "ok")
        // Syntax beats schema: a wrong type followed by a syntax error is malformed.
        XCTAssertEqual(verdict(#"{"event_id":1,"ts":1,"action":"click","content_id":"c1","user_id":"u1""#), "malformed_json")
        var bad: [UInt8] = Array("{\(base),\"s\":\"".utf8) + [0xC0, 0xAF] + Array("\"}".utf8)
        let code = bad.withUnsafeMutableBytes { raw -> String in
            do { _ = try reader.read(UnsafeRawBufferPointer(raw)); return "ok" } catch let e as Rejection { return e.code } catch { return "other: \(error)" }
        }
        XCTAssertEqual(code, "invalid_utf8", "overlong encoding")
        bad.removeAll()
    }
}
