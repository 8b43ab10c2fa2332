import Foundation
import StrataCore
import StrataDWM
import StrataKafka
import StrataTestSupport
import XCTest

/// A replay whose records are gone (deleted by retention, or hidden by a broker that answers a
/// fetch as if committed records were aborted) must not rebuild windows without them, nor hang
/// silently, nor end an `--until-idle` run as if it had finished: the dwm job reads the partition
/// once more from its beginning, then stops with an error naming the partition.
final class ReplayGapTests: XCTestCase {
    func testAReplayWhoseRecordsAreMissingStopsWithAnError() throws {
        let sandbox = try PipelineSandbox(contents: 50, users: 100, seed: 97)
        let queue = sandbox.prefix + Topology.microQueue(for: "click")
        // Five records in one committed transaction: offsets 0–4, its commit marker at 5.
        var cfg = KafkaConfig.producer(bootstrapServers: sandbox.brokers)
        cfg.transactionalId = "test-gap-\(sandbox.prefix)"
        let producer = try KafkaProducer(config: cfg)
        try producer.initTransactions()
        try producer.beginTransaction()
        let topic = producer.topic(queue)
        for i in 0..<5 { try Array("not an event \(i)".utf8).withUnsafeBytes { try producer.produce(to: topic, partition: 0, key: nil, value: $0) } }
        try producer.commitTransaction()
        let reader = try KafkaConsumer(config: .consumer(bootstrapServers: sandbox.brokers, groupId: sandbox.prefix + "dwm"))
        defer { reader.close() }
        let end = try reader.watermarks(topic: queue, partition: 0).high
        XCTAssertEqual(end, 6, "a commit marker follows the five records")

        // A checkpoint that says the last commit stood after offset 5, to be replayed from 5: the
        // record the state needs at 5 does not exist (the marker is there), as if deleted.
        let group = sandbox.prefix + "dwm"
        let checkpoint = SourceCheckpoint(replayOffset: end - 1, maxTs: 1_795_219_200_000, watermark: Int64.min)
        try producer.beginTransaction()
        try producer.produce(topic: sandbox.prefix + Topology.dwmCheckpoint, key: Array("\(group)|\(queue)|0".utf8),
                             value: Array("\(end)|\(checkpoint.encoded)".utf8))
        try producer.commitTransaction()
        try reader.commit([TopicPartitionOffset(topic: queue, partition: 0, offset: end)])

        let (dwm, _) = try sandbox.launchJob("dwm", untilIdle: 3, batch: 100, staticMembership: TestEnvironment.brokerHidesAbortedTransactions)
        let deadline = ContinuousClock.now + .seconds(90)
        while dwm.isRunning && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.2) }
        if dwm.isRunning { kill(dwm.processIdentifier, SIGKILL) }
        dwm.waitUntilExit()
        let log = try String(contentsOfFile: "\(sandbox.logDir)/\(sandbox.prefix)dwm.log", encoding: .utf8)
        XCTAssertEqual(dwm.terminationReason, .exit, "the job stopped on its own (not idle, not hung)")
        XCTAssertNotEqual(dwm.terminationStatus, 0, "it failed")
        XCTAssertTrue(log.contains("reading the partition again from its beginning"), "it read the partition again first")
        XCTAssertTrue(log.contains("cannot rebuild the state of \(queue)[0]"), "the error names the partition")
        XCTAssertFalse(log.contains("\"state restored\""), "no state was published as restored")
    }
}
