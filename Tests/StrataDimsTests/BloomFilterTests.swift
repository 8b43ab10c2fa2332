import Foundation
import StrataCore
@testable import StrataDims
import StrataGen
import XCTest

final class BloomFilterTests: XCTestCase {
    func testNoFalseNegativesAndFalsePositivesNearTheTarget() {
        let n = 100_000
        let f = BloomFilter(expectedCount: n, falsePositiveRate: 0.01)
        XCTAssertEqual(f.hashCount, 7)
        for i in 0..<n { f.insert(DimensionGenerator.contentId(i)) }
        for i in 0..<n { XCTAssertTrue(f.mightContain(DimensionGenerator.contentId(i))) }
        var fp = 0
        for i in 0..<n where f.mightContain("c9\(String(format: "%07d", i))") { fp += 1 }
        let rate = Double(fp) / Double(n)
        XCTAssertLessThan(rate, 0.015, "false-positive rate \(rate)")
        XCTAssertGreaterThan(rate, 0.005, "false-positive rate \(rate) is suspiciously low for the size")
        XCTAssertFalse(f.isOverCapacity)
        f.insert("one more")
        XCTAssertTrue(f.isOverCapacity)
    }

    func testRawBytesAndStringsAgree() {
        let f = BloomFilter(expectedCount: 10)
        f.insert("c00000001")
        let hit = Array("c00000001".utf8).withUnsafeBytes { f.mightContain($0) }
        XCTAssertTrue(hit)
        // Every length class of the hash (words and tails) is distinct.
        for len in 0..<20 {
            let id = String(repeating: "x", count: len)
            f.insert(id)
            XCTAssertTrue(f.mightContain(id))
        }
    }

    func testConcurrentInsertsAndReads() {
        let f = BloomFilter(expectedCount: 200_000)
        // Counted on the workers and asserted here: a miss fails this test rather than trapping the runner.
        let misses = LockedCounter()
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for i in 0..<50_000 {
                let id = DimensionGenerator.contentId(t * 50_000 + i)
                f.insert(id)
                if !f.mightContain(id) { misses.add() }
            }
        }
        XCTAssertEqual(misses.value, 0, "an id inserted by a thread is visible to that thread at once")
        XCTAssertEqual(f.insertedCount, 200_000)
        for i in stride(from: 0, to: 200_000, by: 7) { XCTAssertTrue(f.mightContain(DimensionGenerator.contentId(i))) }
    }
}

final class LocalTierTests: XCTestCase {
    func testBoundedAndKeepsRecentlyUsedEntries() {
        var t = LocalTier<Int>(capacity: 100)
        let far: UInt64 = .max
        for i in 0..<50 { t.put("k\(i)", .present(i, expiresAt: far), overwrite: true, now: 0) }
        // k0 is used, so it is promoted when the generation turns; the others age out.
        for i in 50..<130 {
            _ = t.get("k0", now: 0)
            t.put("k\(i)", .present(i, expiresAt: far), overwrite: true, now: 0)
        }
        XCTAssertLessThanOrEqual(t.count, 100)
        guard case .hit(0) = t.get("k0", now: 0) else { return XCTFail("recently used entry was evicted") }
        guard case .miss = t.get("k1", now: 0) else { return XCTFail("idle entry survived two generations") }
    }

    func testExpiryNegativesAndOverwrite() {
        var t = LocalTier<String>(capacity: 10)
        t.put("a", .present("old", expiresAt: 100), overwrite: true, now: 0)
        t.put("a", .present("lookup fill", expiresAt: 100), overwrite: false, now: 0)
        guard case .hit("old") = t.get("a", now: 50) else { return XCTFail("a fill replaced a live entry") }
        guard case .miss = t.get("a", now: 100) else { return XCTFail("expired entry answered") }
        t.put("n", .absent(expiresAt: 100), overwrite: true, now: 0)
        guard case .negative = t.get("n", now: 99) else { return XCTFail("negative entry lost") }
        var off = LocalTier<String>(capacity: 0)
        off.put("a", .present("x", expiresAt: 100), overwrite: true, now: 0)
        guard case .miss = off.get("a", now: 0) else { return XCTFail("disabled tier stored") }
    }
}

final class CircuitBreakerTests: XCTestCase {
    func testOpensProbesOnceAndCloses() {
        let b = CircuitBreaker(openFor: .seconds(1))
        XCTAssertTrue(b.allow(now: 0))
        XCTAssertTrue(b.failed(now: 0), "first failure starts an outage")
        XCTAssertFalse(b.failed(now: 10), "later failures do not")
        XCTAssertFalse(b.allow(now: 500_000_000), "open: skip redis")
        XCTAssertTrue(b.allow(now: 1_100_000_000), "half-open: one probe")
        XCTAssertFalse(b.allow(now: 1_100_000_001), "only one probe at a time")
        b.failed(now: 1_200_000_000)
        XCTAssertFalse(b.allow(now: 2_000_000_000))
        XCTAssertTrue(b.allow(now: 2_300_000_000))
        XCTAssertTrue(b.succeeded(), "probe success ends the outage")
        XCTAssertTrue(b.allow(now: 2_300_000_001))
        XCTAssertFalse(b.isOpen)
    }

    func testStaggeredTTLRange() {
        let ttl = StaggeredTTL(baseSeconds: 86_400, jitter: 0.2)
        XCTAssertEqual(ttl.range, 69_120...103_680)
        var rng = SplitMix64.systemSeeded()
        for _ in 0..<10_000 { XCTAssertTrue(ttl.range.contains(ttl.next(using: &rng))) }
        XCTAssertEqual(StaggeredTTL(baseSeconds: 10, jitter: 0).range, 10...10)
    }
}
