import Foundation
import XCTest
@testable import StrataGen

final class GeneratorTests: XCTestCase {
    struct Line {
        let bytes: [UInt8]
        let kind: GeneratedKind
        let index: Int
    }

    private func generate(_ w: EventWorkload, _ n: Int) -> (lines: [Line], stats: GeneratorStats) {
        var g = EventGenerator(w)
        var buf: [UInt8] = []
        var lines: [Line] = []
        lines.reserveCapacity(n)
        for i in 0..<n {
            buf.removeAll(keepingCapacity: true)
            let kind = g.next(into: &buf)
            lines.append(Line(bytes: buf, kind: kind, index: i))
        }
        return (lines, g.stats)
    }

    /// A strict reading of the raw event contract; nil when the line satisfies it.
    private func contractViolation(_ bytes: [UInt8], actions: Set<String>) -> String? {
        guard String(validating: bytes, as: UTF8.self) != nil else { return "invalid UTF-8" }
        guard let any = try? JSONSerialization.jsonObject(with: Data(bytes)) else { return "not JSON" }
        guard let obj = any as? [String: Any] else { return "not an object" }
        guard let id = obj["event_id"] as? String else { return "event_id missing or not a string" }
        guard (1...64).contains(id.utf8.count) else { return "event_id length" }
        guard let ts = obj["ts"], !(ts is String), !(ts is Bool), let tsNum = ts as? NSNumber,
              Double(tsNum.int64Value) == tsNum.doubleValue else { return "ts missing or not an integer" }
        guard let action = obj["action"] as? String, actions.contains(action) else { return "unknown action" }
        guard obj["content_id"] is String else { return "content_id missing or not a string" }
        guard obj["user_id"] is String else { return "user_id missing or not a string" }
        if let d = obj["duration_ms"], !(d is Int) { return "duration_ms not an integer" }
        return nil
    }

    private func object(_ bytes: [UInt8]) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] ?? [:]
    }

    private static let contentPattern = try! NSRegularExpression(pattern: "^c[0-9]{8}$")
    private func matchesContentPattern(_ s: String) -> Bool {
        Self.contentPattern.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }

    func testIdFormats() {
        XCTAssertEqual(EventWorkload.contentId(1686), "c00001686")
        XCTAssertEqual(EventWorkload.userId(463_861), "u000463861")
        XCTAssertEqual(EventWorkload.contentId(0), "c00000000")
        for id in EventWorkload.invalidContentIds { XCTAssertFalse(matchesContentPattern(id), id) }
        for id in ["", "0", "-1", "null", "undefined", "ad:77"] { XCTAssertTrue(EventWorkload.invalidContentIds.contains(id)) }
    }

    func testDeterministicForASeed() {
        let a = generate(EventWorkload(), 20_000)
        let b = generate(EventWorkload(), 20_000)
        XCTAssertEqual(a.lines.map(\.bytes), b.lines.map(\.bytes))
        XCTAssertEqual(a.stats, b.stats)
        let c = generate(EventWorkload(seed: 7), 1_000)
        XCTAssertNotEqual(a.lines.prefix(1_000).map(\.bytes), c.lines.map(\.bytes))
    }

    func testLinesByKindAgainstTheContract() throws {
        let w = EventWorkload()
        let actions = Set(w.actions)
        let (lines, stats) = generate(w, 100_000)
        var seen = Set<[UInt8]>()
        var eventIds = Set<String>()
        var kinds: [String: Int] = [:]
        var byAction: [String: Int] = [:]
        var totalBytes = 0
        var lastValidTs: Int64 = 0
        for line in lines {
            let b = line.bytes
            totalBytes += b.count
            kinds["\(line.kind)", default: 0] += 1
            XCTAssertFalse(b.isEmpty)
            XCTAssertFalse(b.contains(0x0A) || b.contains(0x0D), "no line breaks inside a line")
            let clock = w.startMs + Int64(Double(line.index) * 1000 / w.eventsPerSecond)
            defer { seen.insert(b) }

            if line.kind == .malformed {
                XCTAssertNotNil(contractViolation(b, actions: actions), String(decoding: b, as: UTF8.self))
                continue
            }
            if let v = contractViolation(b, actions: actions) {
                XCTFail("\(line.kind) line violates the contract (\(v)): \(String(decoding: b, as: UTF8.self))")
                continue
            }
            let o = object(b)
            let content = o["content_id"] as! String, user = o["user_id"] as! String, action = o["action"] as! String
            let ts = (o["ts"] as! NSNumber).int64Value
            let eventId = o["event_id"] as! String
            if line.kind != .invalidId { byAction[action, default: 0] += 1 }
            XCTAssertTrue(user.hasPrefix("u") && user.count == 10 && Int(user.dropFirst())! < w.users)
            XCTAssertEqual(action == "play", o["duration_ms"] != nil, "duration_ms exactly on play")
            if let d = o["duration_ms"] as? Int { XCTAssertTrue((1...10_000).contains(d)) }
            if let s = o["strategy"] as? String { XCTAssertTrue(["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"].contains(s)) }
            if let dev = o["device"] { XCTAssertNotNil((dev as? [String: Any])?["os"] as? String) }

            switch line.kind {
            case .duplicate:
                XCTAssertTrue(seen.contains(b), "a duplicate re-sends an earlier line byte for byte")
                XCTAssertTrue(eventIds.contains(eventId))
                XCTAssertLessThanOrEqual(clock - ts, w.outOfOrderMaxMs)
            case .invalidId:
                XCTAssertTrue(EventWorkload.invalidContentIds.contains(content), content)
                XCTAssertFalse(matchesContentPattern(content))
            case .unknownId:
                XCTAssertTrue(matchesContentPattern(content) && Int(content.dropFirst())! >= w.contents, content)
            case .valid, .outOfOrder, .late:
                XCTAssertTrue(matchesContentPattern(content) && Int(content.dropFirst())! < w.contents, content)
            case .malformed:
                break
            }
            switch line.kind {
            case .valid:
                XCTAssertEqual(ts, clock)
                XCTAssertGreaterThanOrEqual(ts, lastValidTs, "valid events are in event-time order")
                lastValidTs = ts
            case .outOfOrder:
                XCTAssertTrue(ts < clock && clock - ts <= w.outOfOrderMaxMs)
            case .late:
                XCTAssertTrue(clock - ts >= w.lateByMs && clock - ts <= w.lateByMs * 6 / 5)
            case .unknownId, .invalidId:
                XCTAssertEqual(ts, clock)
            default: break
            }
            if line.kind != .duplicate {
                XCTAssertFalse(eventIds.contains(eventId), "fresh events have fresh ids")
            }
            eventIds.insert(eventId)
        }

        // Stats add up and agree with what was generated.
        XCTAssertEqual(stats.total, lines.count)
        XCTAssertEqual(stats.valid + stats.unknownId + stats.invalidId + stats.malformed + stats.duplicate + stats.outOfOrder + stats.late,
                       stats.total)
        XCTAssertEqual(kinds, ["valid": stats.valid, "unknownId": stats.unknownId, "invalidId": stats.invalidId,
                               "malformed": stats.malformed, "duplicate": stats.duplicate,
                               "outOfOrder": stats.outOfOrder, "late": stats.late])
        XCTAssertEqual(stats.byAction, byAction)
        XCTAssertEqual(stats.byAction.values.reduce(0, +), stats.total - stats.invalidId - stats.malformed)
        XCTAssertEqual(stats.routed, stats.total - stats.invalidId - stats.malformed)
        XCTAssertEqual(stats.malformedByVariant.values.reduce(0, +), stats.malformed)
        XCTAssertEqual(Set(stats.byAction.keys), actions, "every action occurs")

        // Shares are honoured (within ~5 standard deviations).
        func near(_ count: Int, _ share: Double, _ name: String) {
            let expected = share * Double(stats.total)
            XCTAssertLessThan(abs(Double(count) - expected), 5 * expected.squareRoot() + 2, "\(name): \(count) vs \(expected)")
        }
        near(stats.invalidId, w.invalidIdShare, "invalidId")
        near(stats.unknownId, w.unknownIdShare, "unknownId")
        near(stats.malformed, w.malformedShare, "malformed")
        near(stats.duplicate, w.duplicateShare, "duplicate")
        near(stats.outOfOrder, w.outOfOrderShare, "outOfOrder")
        near(stats.late, w.lateShare, "late")

        let average = Double(totalBytes) / Double(lines.count)
        XCTAssertTrue((150...260).contains(average), "average line length \(average)")
    }

    func testZipfSkewAndSessions() {
        let w = EventWorkload(invalidIdShare: 0, unknownIdShare: 0, malformedShare: 0, duplicateShare: 0, outOfOrderShare: 0, lateShare: 0)
        let (lines, stats) = generate(w, 100_000)
        XCTAssertEqual(stats.valid, 100_000)
        var perContent: [String: Int] = [:]
        var cells: [String: [String]] = [:]   // (user, content) -> actions in order
        for line in lines {
            let o = object(line.bytes)
            let c = o["content_id"] as! String
            perContent[c, default: 0] += 1
            cells["\(o["user_id"]!)/\(c)", default: []].append(o["action"] as! String)
        }
        let top = perContent.values.sorted(by: >).prefix(w.contents / 100).reduce(0, +)
        XCTAssertGreaterThan(Double(top) / 100_000, 0.4, "the top 1% of contents get a large share")
        XCTAssertGreaterThan(perContent.count, 2_000, "the tail is long")
        // Popularity is scattered over the id space, not concentrated on the lowest ids.
        let hottest = perContent.max { $0.value < $1.value }!.key
        XCTAssertNotEqual(hottest, "c00000000")

        // Sessions: exposes come first, plays follow a click, heartbeats repeat.
        var clicked = 0, playedAfterClick = 0
        for actions in cells.values {
            if let ci = actions.firstIndex(of: "click") {
                clicked += 1
                XCTAssertEqual(actions.first, "expose")
                if let pi = actions.firstIndex(of: "play"), pi > ci { playedAfterClick += 1 }
            }
        }
        XCTAssertGreaterThan(clicked, 1_000)
        XCTAssertGreaterThan(Double(playedAfterClick) / Double(clicked), 0.9)
        XCTAssertGreaterThan(Double(stats.byAction["play"]!) / Double(stats.byAction["click"]!), 2.5)
        XCTAssertGreaterThan(stats.byAction["expose"]!, stats.byAction["click"]!)
        XCTAssertGreaterThan(stats.byAction["like"]!, stats.byAction["report"]!)
    }

    func testEveryMalformedVariantIsRejected() {
        let w = EventWorkload(invalidIdShare: 0, unknownIdShare: 0, malformedShare: 1, duplicateShare: 0, outOfOrderShare: 0, lateShare: 0)
        let (lines, stats) = generate(w, 5_000)
        XCTAssertEqual(stats.malformed, 5_000)
        XCTAssertEqual(Set(stats.malformedByVariant.keys), Set(MalformedVariant.allCases.map(\.rawValue)))
        XCTAssertEqual(stats.byAction, [:])
        for line in lines {
            XCTAssertEqual(line.kind, .malformed)
            XCTAssertFalse(line.bytes.isEmpty || line.bytes.contains(0x0A))
            XCTAssertNotNil(contractViolation(line.bytes, actions: Set(w.actions)), String(decoding: line.bytes, as: UTF8.self))
        }
        // Most variants are not even JSON; the rest break the schema.
        let notJSON = lines.filter { (try? JSONSerialization.jsonObject(with: Data($0.bytes))) == nil }.count
        XCTAssertGreaterThan(notJSON, 2_000)
    }

    func testCustomActionsAndTiming() {
        let w = EventWorkload(actions: ["expose", "play", "favorite"], outOfOrderShare: 0, startMs: 1_700_000_000_000,
                              eventsPerSecond: 100, seed: 9)
        let (lines, stats) = generate(w, 20_000)
        XCTAssertEqual(Set(stats.byAction.keys), ["expose", "play", "favorite"])
        for line in lines where line.kind == .valid {
            let o = object(line.bytes)
            XCTAssertTrue(w.actions.contains(o["action"] as! String))
            XCTAssertEqual((o["ts"] as! NSNumber).int64Value, 1_700_000_000_000 + Int64(line.index) * 10)
        }
    }

    func testWorkloadValidation() {
        XCTAssertNoThrow(try EventWorkload().validate())
        XCTAssertThrowsError(try EventWorkload(invalidIdShare: 0.6, unknownIdShare: 0.6).validate())
        XCTAssertThrowsError(try EventWorkload(contents: 0).validate())
        XCTAssertThrowsError(try EventWorkload(actions: ["expose", "expose"]).validate())
        XCTAssertThrowsError(try EventWorkload(actions: ["a\"b"]).validate())
        XCTAssertThrowsError(try EventWorkload(eventsPerSecond: 0).validate())
    }
}
