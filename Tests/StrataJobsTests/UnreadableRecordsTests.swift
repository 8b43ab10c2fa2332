import Foundation
import StrataCore
import StrataKafka
import StrataSplit
import StrataTestSupport
import XCTest

/// Records a consumer cannot read (a broker answering a fetch with CORRUPT_MESSAGE, on
/// librdkafka's mock cluster) stop the reader with an error that says where, instead of being
/// skipped: a job would otherwise commit past them, and a state read restore from part of a topic.
final class UnreadableRecordsTests: XCTestCase {
    func testAStateReadStopsAtRecordsItCannotRead() throws {
        let mock = try mockCluster(topic: "state", records: (0..<10).map { (Array("k\($0)".utf8), Array("v\($0)".utf8)) })
        let read = { () throws -> Int in
            try TopicSnapshot.read(topic: "state", brokers: mock.bootstrapServers, kafka: [:], markerKey: "marker", timeout: .seconds(30)).count
        }
        XCTAssertEqual(try read(), 10)

        mock.failNext(apiKey: 1 /* Fetch */, count: 20, with: .corruptMessage)
        XCTAssertThrowsError(try read()) { error in
            XCTAssertEqual((error as? KafkaError)?.code, .corruptMessage, "\(error)")
            XCTAssertTrue("\(error)".contains("state["), "the error names the partition: \(error)")
        }
    }

    func testAJobStopsAtRecordsItCannotReadInsteadOfCommittingPastThem() throws {
        let mock = try KafkaMockCluster(brokers: 1)
        let sandbox = try PipelineSandbox(seed: 71, on: mock.bootstrapServers) { try mock.createTopic($0, partitions: $1) }
        let (lines, partitionOf) = generateWorkload(events: 2_000, seed: 71, contents: sandbox.contents, users: sandbox.users)
        try sandbox.produceRaw(lines[...], partitionOf: partitionOf)
        let job = try SplitJob(options: sandbox.splitOptions(batchSize: 200, untilIdle: .seconds(15)), topology: sandbox.topology,
                               logger: try sandbox.jobLogger("split"))
        // From the first commit on (the restore's state reads are done), the broker answers fetches
        // with CORRUPT_MESSAGE: the job must stop with that error rather than read on and finish.
        var injected = false
        XCTAssertThrowsError(try job.run(onProgress: { _ in
            if !injected { mock.failNext(apiKey: 1 /* Fetch */, count: 50, with: .corruptMessage); injected = true }
        })) { error in
            XCTAssertEqual((error as? KafkaError)?.code, .corruptMessage, "\(error)")
            XCTAssertTrue("\(error)".contains(sandbox.prefix + Topology.raw), "the error names the topic: \(error)")
        }
        XCTAssertTrue(injected, "the job committed before the faults")
    }
}

/// `strata query` and `strata consume` as a user runs them: records they cannot read end the
/// command with exit 1 and the error on stderr, instead of an answer from part of the topic.
final class UnreadableRecordsCommandTests: XCTestCase {
    func testQueryAndConsumeExitWithTheErrorInsteadOfAnsweringFromPartOfTheTopic() throws {
        let mock = try mockCluster(topic: "dws.content", records: (0..<20).map {
            (Array("c\($0)".utf8), Array("{\"minute\":0,\"content_id\":\"c\($0)\",\"expose\":1,\"rev\":1,\"final\":true}".utf8))
        })
        let commands: [[String]] = [
            ["query", "--brokers", mock.bootstrapServers, "--from-beginning", "--until-idle", "3", "--format", "ndjson",
             "SELECT count(*) AS rows FROM dws.content"],
            ["consume", "--brokers", mock.bootstrapServers, "--topic", "dws.content", "--from-beginning", "--until-idle", "3"],
        ]
        for args in commands {
            let (status, err) = try run(args)
            XCTAssertEqual(status, 0, "\(args[0]) reads the readable topic: \(err)")
        }
        for args in commands {
            mock.failNext(apiKey: 1 /* Fetch */, count: 30, with: .corruptMessage)
            let (status, err) = try run(args)
            XCTAssertEqual(status, 1, "\(args[0]) exits 1 on records it cannot read: \(err)")
            XCTAssertTrue(err.contains("cannot be read"), "\(args[0]) says why on stderr: \(err)")
        }
    }

    private func run(_ args: [String]) throws -> (Int32, String) {
        let out = Pipe(), err = Pipe()
        let p = try launchStrata(strataBinary, args, standardOutput: out, standardError: err)
        _ = out.fileHandleForReading.readDataToEndOfFile()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }
}

/// A one-broker mock cluster holding `topic` (2 partitions) with `records`, alternately in each partition.
private func mockCluster(topic name: String, records: [(key: [UInt8], value: [UInt8])]) throws -> KafkaMockCluster {
    let mock = try KafkaMockCluster(brokers: 1)
    try mock.createTopic(name, partitions: 2)
    let producer = try KafkaProducer(config: .producer(bootstrapServers: mock.bootstrapServers))
    let topic = producer.topic(name)
    for (i, r) in records.enumerated() {
        try r.key.withUnsafeBytes { k in try r.value.withUnsafeBytes { v in try producer.produce(to: topic, partition: Int32(i % 2), key: k, value: v) } }
    }
    try producer.flush()
    return mock
}
