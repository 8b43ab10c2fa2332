import StrataDims
import StrataGen
import XCTest

final class GeneratorTests: XCTestCase {
    func testIdsAreTheWorkloadIds() {
        let gen = DimensionGenerator(contents: 1_000, users: 2_000, seed: 1)
        let contents = gen.allContents(), users = gen.allUsers()
        XCTAssertEqual(contents.map(\.contentId), (0..<1_000).map(EventWorkload.contentId))
        XCTAssertEqual(users.map(\.userId), (0..<2_000).map(EventWorkload.userId))
        XCTAssertEqual(DimensionGenerator.contentId(12_345_678), EventWorkload.contentId(12_345_678))
        XCTAssertEqual(DimensionGenerator.userId(123_456_789), EventWorkload.userId(123_456_789))
        let pattern = try! IdPatternCheck.contentPattern()
        XCTAssertTrue(contents.allSatisfy { pattern($0.contentId) })
    }

    /// Events with "unknown" ids use c9xxxxxxx, which no generated dimension has.
    func testGeneratedEventsHitKnownIdsOnly() throws {
        let workload = EventWorkload(contents: 500, users: 800, seed: 5)
        let gen = DimensionGenerator(contents: workload.contents, users: workload.users, seed: 5)
        let known = Set(gen.allContents().map(\.contentId)), knownUsers = Set(gen.allUsers().map(\.userId))
        var g = EventGenerator(workload)
        var seenUnknown = 0
        var line: [UInt8] = []
        for _ in 0..<20_000 {
            line.removeAll(keepingCapacity: true)
            let kind = g.next(into: &line)
            guard kind == .valid || kind == .unknownId,
                  let json = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let c = json["content_id"] as? String, let u = json["user_id"] as? String else { continue }
            XCTAssertTrue(knownUsers.contains(u))
            if kind == .valid { XCTAssertTrue(known.contains(c), c) } else { XCTAssertFalse(known.contains(c), c); seenUnknown += 1 }
        }
        XCTAssertGreaterThan(seenUnknown, 0)
    }

    func testDeterministicAndRealistic() {
        let a = DimensionGenerator(contents: 5_000, users: 20_000, seed: 9)
        XCTAssertEqual(a.allContents(), DimensionGenerator(contents: 5_000, users: 20_000, seed: 9).allContents())
        XCTAssertNotEqual(a.allContents(), DimensionGenerator(contents: 5_000, users: 20_000, seed: 10).allContents())
        XCTAssertEqual(a.content(77), a.allContents()[77])

        let contents = a.allContents(), users = a.allUsers()
        XCTAssertTrue(Set(contents.map(\.category)).isSuperset(of: ["game", "news", "sports", "music", "food", "tech"]))
        XCTAssertTrue(contents.contains { $0.region == "Guangdong" })
        XCTAssertTrue(contents.allSatisfy { $0.authorId.count == 7 && $0.authorId.hasPrefix("a") })
        XCTAssertTrue(contents.allSatisfy { $0.publishTs < DimensionGenerator.referenceMs && $0.publishTs > DimensionGenerator.referenceMs - 731 * 86_400_000 })
        XCTAssertEqual(Set(users.map(\.gender)), ["m", "f"])
        XCTAssertEqual(Set(users.map(\.cityTier)), [1, 2, 3, 4, 5])
        XCTAssertEqual(Set(users.map(\.ageBand)).count, 6)
        // Guangdong is the most populous province, so the most frequent one.
        let byProvince = Dictionary(grouping: users, by: \.province).mapValues(\.count)
        XCTAssertEqual(byProvince.max { $0.value < $1.value }?.key, "Guangdong")
    }
}

import Foundation
import StrataCore

enum IdPatternCheck {
    static func contentPattern() throws -> (String) -> Bool {
        let p = try IdPattern(IdPattern.defaultContentId)
        return { id in p.matches(id) }
    }
}
