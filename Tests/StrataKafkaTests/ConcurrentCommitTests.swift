import Foundation
import StrataTestSupport
import Synchronization
import XCTest
@testable import StrataKafka

extension KafkaWrapperTests {
    /// Several transactional producers commit at once to the same partitions, then close: every
    /// committed record becomes visible to read_committed readers (their last stable offset
    /// reaches the high watermark on every partition). On Tansu 0.6 that takes the
    /// ``TransactionEndLock``: without it, 3 runs of 9 here left every partition's last stable
    /// offset stuck for good part way (656 of 1 280 records visible, then no more); with it, 8 of 8
    /// passed.
    func testOverlappingCommitsOfSeveralProducersAllBecomeVisible() throws {
        let lock = TransactionEndLock(path: NSTemporaryDirectory() + "strata-test-\(UUID().uuidString).lock")
        defer { unlink(lock.path) }
        let data = uniqueTopic("overlap"), side = uniqueTopic("overlap-side")
        try createTopic(data, partitions: 4)
        try createTopic(side)
        let producers = 4, rounds = 40, perRound = 8
        let brokers = try brokers, run = UUID().uuidString.prefix(8)
        let errors = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: producers) { i in
            do {
                var cfg = KafkaConfig.producer(bootstrapServers: brokers)
                cfg.transactionalId = "test-overlap-\(run)-\(i)"
                let p = try KafkaProducer(config: cfg, endLock: lock)
                try p.initTransactions()
                for r in 0..<rounds {
                    try p.beginTransaction()
                    for k in 0..<perRound { try p.produce(topic: data, key: Array("\(i)-\(r)-\(k)".utf8), value: Array("v".utf8)) }
                    try p.produce(topic: side, key: Array("\(i)".utf8), value: Array("\(r)".utf8))
                    try p.commitTransaction()
                }
            } catch {
                errors.withLock { $0.append("producer \(i): \(error)") }
            }
        }
        XCTAssertEqual(errors.withLock { $0 }, [])
        let total = producers * rounds * perRound
        XCTAssertEqual(try readAll(data, partitions: 4, expected: total, timeout: 30).count, total)
        XCTAssertEqual(try readAll(side, expected: producers * rounds, timeout: 30).count, producers * rounds)
    }

    /// The lock lets one holder at a time through, between threads as between processes (one
    /// descriptor per holding), and says which file and variable when it cannot be taken.
    func testTheTransactionEndLockLetsOneHolderAtATime() throws {
        let lock = TransactionEndLock(path: NSTemporaryDirectory() + "strata-test-\(UUID().uuidString).lock")
        defer { unlink(lock.path) }
        let spans = Mutex<[(ContinuousClock.Instant, ContinuousClock.Instant)]>([])
        DispatchQueue.concurrentPerform(iterations: 3) { _ in
            try? lock.holding("test") { () throws(KafkaError) in
                let start = ContinuousClock.now
                Thread.sleep(forTimeInterval: 0.2)
                spans.withLock { $0.append((start, .now)) }
            }
        }
        let sorted = spans.withLock { $0 }.sorted { $0.0 < $1.0 }
        XCTAssertEqual(sorted.count, 3)
        for (a, b) in zip(sorted, sorted.dropFirst()) { XCTAssertLessThanOrEqual(a.1, b.0, "holders overlapped") }

        let missing = TransactionEndLock(path: "/nonexistent-\(UUID().uuidString)/commit.lock")
        XCTAssertThrowsError(try missing.holding("commit_transaction") { () throws(KafkaError) in }) { error in
            XCTAssertTrue("\(error)".contains(missing.path) && "\(error)".contains("STRATA_COMMIT_LOCK"), "\(error)")
        }
    }
}
