import Foundation
import StrataDims
import XCTest

final class DimChangeTests: XCTestCase {
    let content = ContentDim(contentId: "c00000001", title: "A \"title\", with commas", category: "news", authorId: "a000001",
                             region: "Guangdong", status: "published", publishTs: 1_700_000_000_000)
    let user = UserDim(userId: "u000000001", gender: "f", ageBand: "25-30", province: "Sichuan", cityTier: 3)

    func testRoundTripsAndKeys() throws {
        let cases: [(DimChange, String)] = [
            (.upsertContent(content), "content:c00000001"),
            (.upsertUser(user), "user:u000000001"),
            (.deleteContent(id: "c00000002"), "content:c00000002"),
            (.deleteUser(id: "u000000002"), "user:u000000002"),
        ]
        for (change, key) in cases {
            XCTAssertEqual(change.key, key)
            let value = change.encoded()
            XCTAssertEqual(try DimChange.decode(value), change)
            XCTAssertEqual(try DimChange.decode(key: change.keyBytes, value: value), change)
        }
    }

    func testWireFormat() throws {
        let json = try JSONSerialization.jsonObject(with: Data(DimChange.upsertUser(user).encoded())) as! [String: Any]
        XCTAssertEqual(json["v"] as? Int, 1)
        XCTAssertEqual(json["op"] as? String, "upsert")
        XCTAssertEqual(json["kind"] as? String, "user")
        XCTAssertEqual(json["id"] as? String, "u000000001")
        XCTAssertEqual((json["user"] as? [String: Any])?["age_band"] as? String, "25-30")
        XCTAssertEqual(String(decoding: DimChange.deleteContent(id: "c1").encoded(), as: UTF8.self),
                       #"{"id":"c1","kind":"content","op":"delete","v":1}"#)
    }

    func testTombstoneIsADelete() throws {
        XCTAssertEqual(try DimChange.decode(key: Array("content:c00000009".utf8), value: nil), .deleteContent(id: "c00000009"))
        XCTAssertEqual(try DimChange.decode(key: Array("user:u1".utf8), value: nil), .deleteUser(id: "u1"))
    }

    func testRejectsBadRecords() {
        let value = DimChange.upsertContent(content).encoded()
        XCTAssertThrowsError(try DimChange.decode(key: Array("content:c00000002".utf8), value: value)) // key mismatch
        XCTAssertThrowsError(try DimChange.decode(key: Array("user:c00000001".utf8), value: value))    // kind mismatch
        XCTAssertThrowsError(try DimChange.decode(key: Array("c00000001".utf8), value: value))         // no kind
        XCTAssertThrowsError(try DimChange.decode(Array("{}".utf8)))
        XCTAssertThrowsError(try DimChange.decode(Array("not json".utf8)))
        XCTAssertThrowsError(try DimChange.decode(Array(#"{"v":2,"op":"delete","kind":"user","id":"u1"}"#.utf8)))
        XCTAssertThrowsError(try DimChange.decode(Array(#"{"v":1,"op":"upsert","kind":"user","id":"u1"}"#.utf8)))
        XCTAssertThrowsError(try DimChange.decode(Array(
            #"{"v":1,"op":"upsert","kind":"user","id":"u1","user":{"user_id":"u2","gender":"f","age_band":"x","province":"p","city_tier":1}}"#.utf8)))
    }
}
