import Foundation
import StrataCore
import StrataDims
import StrataKafka
import StrataOffline
import StrataRuntime
import Synchronization
import XCTest

/// `strata run --until-idle` stops its jobs in data-flow order. The sink's own idle clock follows
/// only its input: with a dwm still at work (rebuilding its windows, or flushing its last minutes
/// after the split's idle markers) a sink stopping on its own time lost the last DWS rows.
final class IdleOrderTests: XCTestCase {
    func testSinkStopsOnlyAfterItsUpstreamHasFinishedAndItHasReadWhatCameLast() throws {
        let sandbox = try PipelineSandbox(seed: 5)
        let table = try DWSTableFactory.open("sqlite:" + sandbox.storePath)
        let upstream = JobCompletion()
        var o = SinkJob.Options(brokers: sandbox.brokers)
        o.topicPrefix = sandbox.prefix
        o.groupId = sandbox.prefix + "sink"
        o.untilIdle = .seconds(1)
        o.idleOrder = IdleOrder(after: upstream)
        let sink = try SinkJob(options: o, table: table, dwm: nil)

        let brokers = sandbox.brokers, topic = sandbox.prefix + Topology.dws
        @Sendable func publish(content: String, click: Int) throws {
            let producer = try KafkaProducer(config: .producer(bootstrapServers: brokers))
            let row = #"{"minute":1700000040000,"content_id":"\#(content)","click":\#(click),"rev":1,"final":true,"emitted_at":0}"#
            try Array(row.utf8).withUnsafeBytes { try producer.produce(to: producer.topic(topic), partition: 0, key: nil, value: $0) }
            try producer.flush(timeoutMs: 10_000)
        }
        try publish(content: "c1", click: 3)
        // The upstream publishes its last row 3 s (the sink's idle time is 1 s) after the sink has read
        // the first one, then finishes.
        let finishedAt = Mutex<ContinuousClock.Instant?>(nil)
        let consumed = Atomic<Int>(0)
        let upstreamThread = Thread {
            let deadline = Date().addingTimeInterval(60)
            while consumed.load(ordering: .relaxed) == 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            Thread.sleep(forTimeInterval: 3)
            try? publish(content: "c2", click: 5)
            finishedAt.withLock { $0 = .now }
            upstream.markFinished()
        }
        upstreamThread.start()
        try sink.run(shouldStop: { false }, report: { consumed.store($0.consumed, ordering: .relaxed) })
        let ended = ContinuousClock.now
        let finished = try XCTUnwrap(finishedAt.withLock { $0 }, "the sink stopped while its upstream was still running")
        XCTAssertGreaterThanOrEqual(ended - finished, .seconds(1), "idle time counts from the upstream's end")
        XCTAssertEqual(Set(try table.allRows().map { "\($0.contentId)=\($0.click)" }), ["c1=3", "c2=5"])
        XCTAssertTrue(sink.summary.balanced, "\(sink.summary)")
    }
}
