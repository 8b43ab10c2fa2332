import Foundation
import Logging
import StrataArchive
import StrataCore
import StrataKafka
@testable import StrataOffline
import StrataRuntime
import StrataTestSupport
import XCTest

/// The zombie's hazard at the archive stage, step by step: a writer that lost its partition
/// stages files after the new owner took it over (records it had fetched before it learned of
/// the rebalance) and must publish none of them; the new owner publishes the partition.
final class ArchiveLeaseStageTests: XCTestCase {
    func testAStageThatLostItsPartitionPublishesNothingItStagedAfterTheTakeover() throws {
        let sandbox = try PipelineSandbox(seed: 75)
        let (lines, _) = generateWorkload(events: 3_000, seed: 75, contents: sandbox.contents, users: sandbox.users, eventsPerSecond: 6)
        try sandbox.produceRaw(lines[...], partitionOf: [Int32](repeating: 0, count: lines.count))
        let archive = NSTemporaryDirectory() + "strata-lease-stage-\(sandbox.prefix)"
        defer { try? FileManager.default.removeItem(atPath: archive) }
        let topic = sandbox.prefix + Topology.raw
        func stage(_ instance: String) throws -> ArchiveStage {
            var o = ArchiveJob.Options(brokers: sandbox.brokers, root: archive)
            o.groupId = sandbox.prefix + "archive"
            o.instanceId = instance
            o.topicPrefix = sandbox.prefix
            return try ArchiveStage(options: o, logger: Logger(label: "test.archive.\(instance)"))
        }
        // Reads partition 0 whole (the stages only need the records and a consumer to ask for
        // committed offsets, of which the group has none).
        let consumer = try KafkaConsumer(config: .consumer(bootstrapServers: sandbox.brokers, groupId: sandbox.prefix + "archive"))
        defer { consumer.close() }
        let owned = [TopicPartitionOffset(topic: topic, partition: 0, offset: TopicPartitionOffset.first)]
        try consumer.assign(owned)
        var batches: [KafkaMessageBatch] = []
        var records: [KafkaMessage] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while records.count < lines.count, ContinuousClock.now < deadline {
            let b = try consumer.poll(maxMessages: 1_000, timeoutMs: 200)
            batches.append(b)
            records += b.filter { $0.error == nil }
        }
        XCTAssertEqual(records.count, lines.count)
        let tick = Tick(now: .now, inputPaused: true, finishing: true)

        let a = try stage("a"), b = try stage("b")
        _ = try a.restore(owned: owned, consumer: consumer)
        _ = try b.restore(owned: owned, consumer: consumer)   // b is assigned the partition after a
        try a.consume(records)
        try a.write(tick)
        XCTAssertEqual(try publishedFiles(archive), [], "a lost partition 0 before staging: nothing of it is published")
        XCTAssertEqual(stagedFiles(archive), [], "a's dropped files are removed")
        a.committed(tick)
        XCTAssertEqual(a.stats.archived + a.stats.archivedInvalid, 0, "a counts nothing it did not publish")

        try b.consume(records)
        try b.write(tick)
        b.committed(tick)
        XCTAssertFalse(try publishedFiles(archive).isEmpty)
        var archived = 0
        for path in try publishedFiles(archive) { try ZstdLineReader(path: path).forEachLine { _ in archived += 1 } }
        XCTAssertEqual(archived, lines.count, "b publishes the partition")
        XCTAssertEqual(b.stats.archived + b.stats.archivedInvalid, lines.count)

        withExtendedLifetime(batches) {}
    }

    private func stagedFiles(_ root: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: root + "/_staging")) ?? []
    }

    private func publishedFiles(_ root: String) throws -> [String] {
        try ArchiveLayout.days(root: root).flatMap { try ArchiveLayout.listDay(root: root, day: $0).map(\.path) }.sorted()
    }
}
