import Foundation
@testable import StrataDims
import XCTest

final class ModelTests: XCTestCase {
    let content = ContentDim(contentId: "c00001686", title: "Top 10 \"moments\", \\ vol. 2\n内容🎬\u{1}", category: "game",
                             authorId: "a000123", region: "Guangdong", status: "published", publishTs: 1_795_219_200_000)
    let user = UserDim(userId: "u000463861", gender: "m", ageBand: "18-24", province: "Guangdong", cityTier: 2)

    func testCodableUsesSnakeCaseKeys() throws {
        let c = try JSONSerialization.jsonObject(with: JSONEncoder().encode(content)) as! [String: Any]
        XCTAssertEqual(Set(c.keys), ["content_id", "title", "category", "author_id", "region", "status", "publish_ts"])
        let u = try JSONSerialization.jsonObject(with: JSONEncoder().encode(user)) as! [String: Any]
        XCTAssertEqual(Set(u.keys), ["user_id", "gender", "age_band", "province", "city_tier"])
        XCTAssertEqual(u["city_tier"] as? Int, 2)
    }

    func testFastJSONRoundTripsAndAgreesWithFoundation() throws {
        let bytes = DimJSON.encode(content)
        XCTAssertEqual(DimJSON.decodeContent(bytes), content)
        // What DimJSON writes, JSONDecoder reads, and the other way round.
        XCTAssertEqual(try JSONDecoder().decode(ContentDim.self, from: Data(bytes)), content)
        XCTAssertEqual(DimJSON.decodeContent([UInt8](try JSONEncoder().encode(content))), content)
        XCTAssertEqual(DimJSON.decodeUser(DimJSON.encode(user)), user)
        XCTAssertEqual(DimJSON.decodeUser([UInt8](try JSONEncoder().encode(user))), user)
        XCTAssertEqual(String(decoding: DimJSON.encode(user), as: UTF8.self),
                       #"{"user_id":"u000463861","gender":"m","age_band":"18-24","province":"Guangdong","city_tier":2}"#)
    }

    /// Every escape, byte for byte. Found by fuzzing (Fuzz/corpus/FuzzDimJSON/content_escaped.json):
    /// a release build wrote `"` as `\t`, `\` as `\r`, CR as `\\` and a tab as `\"` here, because the
    /// linker mixed up the constant arrays JSONString.append had been inlined with in StrataCore and
    /// in this module. Debug builds were right, so this test only catches it under
    /// `swift test -c release`; the fuzz smoke run (built with -O) catches it from that seed.
    func testEscapesAreWrittenByteForByte() {
        let c = ContentDim(contentId: "c1", title: "q\"b\\s/n\nr\rt\tu\u{1}\u{1f}é🎬", category: "\"", authorId: "\\",
                           region: "\t", status: "\r", publishTs: 0)
        XCTAssertEqual(String(decoding: DimJSON.encode(c), as: UTF8.self),
                       #"{"content_id":"c1","title":"q\"b\\s/n\nr\rt\tu\u0001\u001fé🎬","category":"\"","author_id":"\\","region":"\t","status":"\r","publish_ts":0}"#)
        XCTAssertEqual(String(decoding: DimJSON.dwmContentObject(c), as: UTF8.self),
                       #"{"title":"q\"b\\s/n\nr\rt\tu\u0001\u001fé🎬","category":"\"","author_id":"\\","region":"\t"}"#)
        XCTAssertEqual(DimJSON.decodeContent(DimJSON.encode(c)), c)
    }

    func testDecoderToleratesOrderWhitespaceUnknownKeysAndEscapes() {
        let text = #" { "city_tier" : 5, "extra": {"a":[1,2,{"b":null}]}, "province":"Guang\u0064ong", "age_band":"50+","gender":"f","user_id":"u1","n":-1.5e3,"t":true } "#
        XCTAssertEqual(DimJSON.decodeUser(Array(text.utf8)),
                       UserDim(userId: "u1", gender: "f", ageBand: "50+", province: "Guangdong", cityTier: 5))
        XCTAssertEqual(DimJSON.decodeUser(Array(#"{"user_id":"\ud83c\udfac","gender":"f","age_band":"x","province":"p","city_tier":1}"#.utf8))?.userId, "🎬")
        // An escaped key is still the same key.
        XCTAssertEqual(DimJSON.decodeUser(Array(#"{"user\u005fid":"u2","gender":"f","age_band":"x","province":"p","city_tier":1}"#.utf8))?.userId, "u2")
    }

    func testDecoderRejectsBrokenOrIncompleteValues() {
        let bad = ["", "null", "[]", "{", #"{"user_id":"u1"}"#,
                   #"{"user_id":"u1","gender":"f","age_band":"x","province":"p","city_tier":"2"}"#,
                   #"{"user_id":"u1","gender":"f","age_band":"x","province":"p","city_tier":2.5}"#,
                   #"{"user_id":"u1","gender":"f","age_band":"x","province":"p","city_tier":2} x"#,
                   #"{"user_id":"u1\q","gender":"f","age_band":"x","province":"p","city_tier":2}"#,
                   #"{"user_id":"u1","gender":"f","age_band":"x","province":"p","city_tier":99999999999999999999}"#]
        for b in bad { XCTAssertNil(DimJSON.decodeUser(Array(b.utf8)), b) }
    }

    /// The cache cuts a user's row object from the cached JSON without decoding plain strings;
    /// it must be exactly what decoding the profile and writing its object gives, whatever the
    /// value holds (escapes, non-ASCII, key order, unknown or repeated keys, broken values).
    func testUserRowObjectCutFromCachedJSONIsTheDecodedProfilesObject() {
        let users = [user,
                     UserDim(userId: "u1", gender: "f\"q", ageBand: "18\\24", province: "广东", cityTier: 5),
                     UserDim(userId: "u2", gender: "\u{1}", ageBand: "a/b", province: "Guang\tdong", cityTier: -3),
                     UserDim(userId: "u\"3", gender: "", ageBand: "🎬", province: "\u{7f}", cityTier: Int(Int32.max))]
        var texts = users.map { String(decoding: DimJSON.encode($0), as: UTF8.self) }
        texts += [
            #" { "city_tier" : 5, "extra": {"a":[1,2,{"b":null}]}, "province":"Guang\u0064ong", "age_band":"50+","gender":"f","user_id":"u1","n":-1.5e3,"t":true } "#,
            #"{"user_id":"u1","gender":"f","age_band":"x","province":"p","city_tier":1,"gender":"m"}"#,
            #"{"user_id":"u1","gender":"f\u0041","age_band":"x","province":"p","city_tier":1,"gender":"m"}"#,
            #"{"user_id":"u1","gender":"f","age_band":"x","province":"p","city_tier":007}"#,
            #"{"user_id":"u1","gender":"f","age_band":"x","province":"p"}"#,
            #"{"user_id":"u1","gender":"f","age_band":"x","province":"p","city_tier":99999999999}"#,
            #"{"user_id":"u1","gender":"f","age_band":"x","province":"p\q","city_tier":2}"#,
            #"{"user_id":"u1","gender":"f","age_band":"x","province":p,"city_tier":2}"#,
            #"{"user_id":"u1","gender":"f","age_band":"x","province":"p","city_tier":2} x"#,
            "{\"user_id\":\"u1\",\"gender\":\"f\u{1}\",\"age_band\":\"x\",\"province\":\"p\",\"city_tier\":2}",
            "null", "",
        ]
        var cut = 0
        for t in texts {
            var bytes = Array(t.utf8)
            let fast = bytes.withUnsafeBytes { DimJSON.userRowObject(fromCacheJSON: $0) }
            let slow = DimJSON.decodeUser(bytes).map(UserRowObject.init)
            XCTAssertEqual(fast.map { String(decoding: $0.json, as: UTF8.self) }, slow.map { String(decoding: $0.json, as: UTF8.self) }, t)
            XCTAssertEqual(fast?.userId, slow?.userId, t)
            XCTAssertEqual(fast?.cacheJSON(), slow?.cacheJSON(), "the Redis value written back is the canonical one: \(t)")
            if fast != nil { cut += 1 }
            // Invalid UTF-8 inside a plain-looking string: the decoder repairs it, so must this.
            bytes = Array(t.utf8).map { $0 == UInt8(ascii: "G") ? 0xFF : $0 }
            let fastBad = bytes.withUnsafeBytes { DimJSON.userRowObject(fromCacheJSON: $0) }
            XCTAssertEqual(fastBad, DimJSON.decodeUser(bytes).map(UserRowObject.init), t)
        }
        XCTAssertEqual(cut, users.count + 5, "the valid values are found")
        for u in users {
            XCTAssertEqual(UserRowObject(u).cacheJSON(), DimJSON.encode(u), "the cached JSON is DimJSON's")
            XCTAssertEqual(UserRowObject(u).dim, u)
        }
        XCTAssertEqual(String(decoding: UserRowObject(user).json, as: UTF8.self),
                       #"{"gender":"m","age_band":"18-24","province":"Guangdong","city_tier":2}"#)
    }

    func testDWMObjectsHaveTheDesignKeys() throws {
        let c = try JSONSerialization.jsonObject(with: Data(DimJSON.dwmContentObject(content))) as! [String: Any]
        XCTAssertEqual(Set(c.keys), ["title", "category", "author_id", "region"])
        XCTAssertEqual(c["title"] as? String, content.title)
        let u = try JSONSerialization.jsonObject(with: Data(DimJSON.dwmUserObject(user))) as! [String: Any]
        XCTAssertEqual(Set(u.keys), ["gender", "age_band", "province", "city_tier"])
    }
}
