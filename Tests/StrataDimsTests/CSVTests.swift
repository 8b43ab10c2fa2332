import Foundation
import StrataDims
import StrataGen
import XCTest

final class CSVTests: XCTestCase {
    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    func testQuotesEmbeddedCommasNewlinesAndAnyColumnOrder() throws {
        let text = "\u{FEFF}title,content_id,category,author_id,region,status,publish_ts,ignored\r\n"
            + "\"Top 10, \"\"best\"\" moments\",c00000001,game,a000001,Guangdong,published,1700000000000,x\r\n"
            + "\r\n"
            + "\"two\nlines\",c00000002,news,a000002,\"Inner Mongolia\",draft,-5,\"\"\n"
            + "plain,c00000003,food,a000003,Sichuan,published,0,"
        let rows = try DimensionCSV.parseContents(bytes(text))
        XCTAssertEqual(rows, [
            ContentDim(contentId: "c00000001", title: "Top 10, \"best\" moments", category: "game", authorId: "a000001",
                       region: "Guangdong", status: "published", publishTs: 1_700_000_000_000),
            ContentDim(contentId: "c00000002", title: "two\nlines", category: "news", authorId: "a000002",
                       region: "Inner Mongolia", status: "draft", publishTs: -5),
            ContentDim(contentId: "c00000003", title: "plain", category: "food", authorId: "a000003",
                       region: "Sichuan", status: "published", publishTs: 0),
        ])
    }

    func testUsers() throws {
        let rows = try DimensionCSV.parseUsers(bytes("city_tier,user_id,province,gender,age_band\n2,u000000001,Guangdong,m,18-24\n"))
        XCTAssertEqual(rows, [UserDim(userId: "u000000001", gender: "m", ageBand: "18-24", province: "Guangdong", cityTier: 2)])
    }

    /// The line of a bad row is its physical line in the file, counting line breaks inside quotes.
    func testBadRowIsReportedWithItsLineNumber() {
        let text = "user_id,gender,age_band,province,city_tier\n"
            + "u1,m,18-24,Guangdong,1\n"
            + "u2,f,\"25-30\",\"Guang\ndong\",2\n"   // lines 3-4
            + "u3,f,31-40,Hunan,three\n"              // line 5: bad integer
            + "u4,m,41-50,Hebei,4\n"
        XCTAssertThrowsError(try DimensionCSV.parseUsers(bytes(text), source: "users.csv")) { error in
            let e = error as! DimensionCSVError
            XCTAssertEqual(e.line, 5)
            XCTAssertEqual(e.source, "users.csv")
            XCTAssertTrue(e.message.contains("city_tier"), e.message)
            XCTAssertTrue(e.description.hasPrefix("users.csv:5:"), e.description)
        }
    }

    func testMalformedInputs() {
        let header = "user_id,gender,age_band,province,city_tier\n"
        let cases: [(String, Int, String)] = [
            ("", 1, "header"),
            ("user_id,gender,province,city_tier\nu1,m,Guangdong,1\n", 1, "age_band"),
            ("user_id,user_id,gender,age_band,province,city_tier\n", 1, "twice"),
            (header + "u1,m,18-24,Guangdong\n", 2, "expected 5 fields"),
            (header + "u1,m,18-24,Guangdong,1\nu2,m,18-24,\"Guangdong,1\n", 3, "unterminated"),
            (header + "u1,m,18-24,Guang\"dong,1\n", 2, "quote inside"),
            (header + "u1,m,\"18-24\"x,Guangdong,1\n", 2, "after a closing quote"),
            (header + "u1,m,18-24,Guangdong,1\nu1,f,18-24,Guangdong,1\n", 3, "duplicate"),
            (header + ",m,18-24,Guangdong,1\n", 2, "empty"),
        ]
        for (text, line, fragment) in cases {
            XCTAssertThrowsError(try DimensionCSV.parseUsers(bytes(text)), fragment) { error in
                guard let e = error as? DimensionCSVError else { return XCTFail("\(error)") }
                XCTAssertEqual(e.line, line, "\(fragment): \(e)")
                XCTAssertTrue(e.message.contains(fragment), "\(fragment): \(e)")
            }
        }
    }

    func testWriteThenReadRoundTripsGeneratedData() throws {
        let gen = DimensionGenerator(contents: 3_000, users: 3_000, seed: 3)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-csv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var contents = gen.allContents()
        contents[0].title = " leading space, \"quotes\"\r\nand CRLF "
        let users = gen.allUsers()
        try DimensionCSV.write(contents: contents, to: dir.appendingPathComponent("c.csv").path)
        try DimensionCSV.write(users: users, to: dir.appendingPathComponent("u.csv").path)
        XCTAssertEqual(try DimensionCSV.readContents(dir.appendingPathComponent("c.csv").path), contents)
        XCTAssertEqual(try DimensionCSV.readUsers(dir.appendingPathComponent("u.csv").path), users)
        XCTAssertTrue(contents.contains { $0.title.contains(",") } && contents.contains { $0.title.contains("\"") },
                      "generated titles exercise quoting")
        XCTAssertThrowsError(try DimensionCSV.readUsers(dir.appendingPathComponent("missing.csv").path))
    }
}
