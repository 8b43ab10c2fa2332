import StrataCore
import StrataGen
import StrataSplit
import XCTest

/// The split engine without a broker.
final class SplitRouterTests: XCTestCase {
    let router = try! SplitRouter(topology: Topology.load(path: SplitSandbox.topologyPath))

    func route(_ s: String) -> SplitOutcome { Array(s.utf8).withUnsafeBytes { router.route($0) } }
    func route(_ b: [UInt8]) -> SplitOutcome { b.withUnsafeBytes { router.route($0) } }

    func testRoutesByActionWithContentIdKey() {
        let line = #"{"event_id":"e1","ts":1795219200000,"action":"click","content_id":"c00000042","user_id":"u1"}"#
        guard case .route(let action, let key) = route(line) else { return XCTFail("\(route(line))") }
        XCTAssertEqual(router.actions[action], "click")
        XCTAssertEqual(String(decoding: Array(line.utf8)[key.start..<key.start + key.count], as: UTF8.self), "c00000042")
    }

    func testEscapedContentIdIsDecodedForTheKey() {
        let line = #"{"event_id":"e1","ts":1,"action":"pl\u0061y","content_id":"c0000004\u0032","user_id":"u1"}"#
        XCTAssertEqual(route(line), .routeDecoded(action: router.actions.firstIndex(of: "play")!, key: Array("c00000042".utf8)))
    }

    func testNonContentIdsAreFiltered() {
        for id in ["", "0", "-1", "null", "undefined", "ad:77", "c1234567", "c123456789", "C00000001"] {
            let line = #"{"event_id":"e1","ts":1,"action":"expose","content_id":"\#(id)","user_id":"u1"}"#
            XCTAssertEqual(route(line), .filter(reason: SplitRouter.invalidContentId), id)
        }
    }

    func testBadInputIsDeadLetteredWithAReason() {
        let cases: [(String, [UInt8])] = [
            ("malformed_json", Array(#"{"event_id":"e1","ts":1,"act"#.utf8)),
            ("wrong_type:ts", Array(#"{"event_id":"e1","ts":"1","action":"click","content_id":"c00000001","user_id":"u"}"#.utf8)),
            ("missing_field:user_id", Array(#"{"event_id":"e1","ts":1,"action":"click","content_id":"c00000001"}"#.utf8)),
            (SplitRouter.unknownAction, Array(#"{"event_id":"e1","ts":1,"action":"teleport","content_id":"c00000001","user_id":"u"}"#.utf8)),
            ("invalid_utf8", Array(#"{"event_id":"e1","ts":1,"action":"click","content_id":"c00000001","user_id":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)),
            ("empty", []),
            ("not_an_object", Array("[1,2,3]".utf8)),
            ("too_large", Array(repeating: UInt8(ascii: " "), count: 1 << 20)),
        ]
        for (reason, bytes) in cases {
            guard case .deadLetter(let r, let detail) = route(bytes) else { XCTFail("\(reason): \(route(bytes))"); continue }
            XCTAssertEqual(r, reason)
            XCTAssertFalse(detail.isEmpty)
        }
    }

    /// Every generated line lands in exactly the bucket the generator says it belongs to.
    func testGeneratedWorkloadIsAccountedExactly() {
        let (lines, kinds, stats) = generate(50_000)
        var routed: [String: Int] = [:], filtered = 0, dead = 0
        for (line, kind) in zip(lines, kinds) {
            switch route(line) {
            case .route(let a, _), .routeDecoded(let a, _):
                routed[router.actions[a], default: 0] += 1
                XCTAssertTrue(kind != .invalidId && kind != .malformed, "\(kind) routed: \(String(decoding: line, as: UTF8.self))")
            case .filter:
                filtered += 1
                XCTAssertEqual(kind, .invalidId, String(decoding: line, as: UTF8.self))
            case .deadLetter:
                dead += 1
                XCTAssertEqual(kind, .malformed, String(decoding: line, as: UTF8.self))
            }
        }
        XCTAssertEqual(routed, stats.byAction)
        XCTAssertEqual(filtered, stats.invalidId)
        XCTAssertEqual(dead, stats.malformed)
        XCTAssertEqual(routed.values.reduce(0, +) + filtered + dead, lines.count)
    }
}
