import Foundation
import XCTest
@testable import StrataQuery

final class ValueTests: XCTestCase {
    func testDecodeJSONTypes() throws {
        let row = try XCTUnwrap(Value.decodeRow(#"{"i":1,"b":true,"f":false,"d":1.5,"dd":2.0,"s":"x","n":null,"o":{"k":[1]},"big":12345678901234}"#))
        XCTAssertEqual(row["i"], .int(1))
        XCTAssertEqual(row["b"], .bool(true))
        XCTAssertEqual(row["f"], .bool(false))
        XCTAssertEqual(row["d"], .double(1.5))
        if case .double = row["dd"] {} else { XCTFail("2.0 stays a double: \(String(describing: row["dd"]))") }
        XCTAssertEqual(row["s"], .string("x"))
        XCTAssertEqual(row["n"], .null)
        XCTAssertEqual(row["o"], .object(["k": .null]), "arrays are outside the model")
        XCTAssertEqual(row["big"], .int(12_345_678_901_234))
        XCTAssertNil(Value.decodeRow("[1,2]"))
        XCTAssertNil(Value.decodeRow("not json"))
    }

    func testNumbersCompareByValue() {
        XCTAssertEqual(Value.int(5), Value.double(5.0))
        XCTAssertEqual(Set<Value>([.int(5), .double(5.0)]).count, 1)
        XCTAssertNotEqual(Value.int(5), Value.string("5"))
        XCTAssertLessThan(Value.order(.int(2), .double(2.5)), 0)
    }

    func testNDJSONShape() {
        let r = QueryResult(windowStart: 60_000, windowEnd: 120_000, final: true, columns: ["cat", "n", "ratio", "title"],
                            rows: [["game", 3, 0.5, "say \"hi\"\n"], [.null, 0, .double(.nan), .object(["b": 1, "a": true])]])
        XCTAssertEqual(r.ndjson, #"{"window_start":60000,"window_end":120000,"final":true,"rows":[{"cat":"game","n":3,"ratio":0.5,"title":"say \"hi\"\n"},{"cat":null,"n":0,"ratio":null,"title":{"a":true,"b":1}}]}"#)
        let g = QueryResult(windowStart: nil, windowEnd: nil, final: false, columns: ["n"], rows: [])
        XCTAssertEqual(g.ndjson, #"{"window_start":null,"window_end":null,"final":false,"rows":[]}"#)
        // Every line is valid JSON.
        XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(r.ndjson.utf8)))
    }
}
