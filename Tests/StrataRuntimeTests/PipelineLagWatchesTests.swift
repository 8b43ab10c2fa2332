import Foundation
import StrataCore
import StrataKafka
import StrataRuntime
import XCTest

/// Which groups and topics the lag readers (dashboard, soak bench) watch for each job.
final class PipelineLagWatchesTests: XCTestCase {
    func testEachJobIsWatchedOnTheTopicsItReads() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let topology = try Topology.load(path: root.appendingPathComponent("topology/topology.yaml").path)
        let split = LagWatch.split(topicPrefix: "p.")
        XCTAssertEqual([split.job, split.groupId], ["split", "strata-split"])
        XCTAssertEqual(split.topics, ["p.ods.raw"])
        let dwm = LagWatch.dwm(topology: topology, topicPrefix: "p.", groupId: "g")
        XCTAssertEqual([dwm.job, dwm.groupId], ["dwm", "g"])
        XCTAssertEqual(dwm.topics, ["p.ods.expose", "p.ods.click", "p.ods.play", "p.ods.like", "p.ods.share", "p.ods.comment", "p.ods.report"])
        XCTAssertEqual(dwm.alternatives, [["p.ods.raw"]], "--read-raw reads ods.raw")
        XCTAssertEqual(LagWatch.archive().topics, ["ods.raw"])
        XCTAssertEqual(LagWatch.archive().groupId, "strata-archive")
        XCTAssertEqual(LagWatch.sink().topics, [Topology.dws])
        XCTAssertEqual(LagWatch.sink().groupId, "strata-sink")
    }
}
