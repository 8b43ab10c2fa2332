import Foundation
import StrataCore
@testable import StrataDims
import StrataGen
import StrataTestSupport
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

    /// Random gets (by String and by bytes), fills, overwrites, negatives, expiries and removals on small tiers (the
    /// generations turn over thousands of times, and tables grow and collide) give what the same
    /// rules give when written over Swift dictionaries.
    func testRandomOperationsMatchTheRulesOverDictionaries() {
        var rng = SeededRandom(seed: 5)
        for capacity in [2, 7, 64] {
            var t = LocalTier<Int>(capacity: capacity)
            var m = TierModel(generationSize: max(1, capacity / 2))
            let keys = (0..<(capacity * 3)).map { $0 % 5 == 0 ? "a-long-key-beyond-sixteen-bytes-\($0)" : "k\($0)" }
            for step in 0..<60_000 {
                let id = keys[rng.below(keys.count)]
                let now = UInt64(step)
                switch rng.below(10) {
                case 0...3:
                    var lent: Int?
                    // By the id's String or by its bytes and hash (an interned batch's ids).
                    let got: LocalTier<Int>.Found
                    if rng.below(2) == 0 {
                        got = t.get(id, now: now, hit: { lent = $0.pointee })
                    } else {
                        var bytes = id
                        got = bytes.withUTF8 { b in
                            t.get(bytes: UnsafeRawBufferPointer(b), hash: ByteHash.hash(UnsafeRawBufferPointer(b)), now: now, hit: { lent = $0.pointee })
                        }
                    }
                    let want = m.get(id, now: now)
                    switch (got, want) {
                    case (.hit, .some(.present(let v, _))): XCTAssertEqual(lent, v, "step \(step)")
                    case (.negative, .some(.absent)), (.miss, nil): XCTAssertNil(lent)
                    default: return XCTFail("capacity \(capacity) step \(step) \(id): \(got) != \(String(describing: want))")
                    }
                case 4...7:
                    let expiry = now + UInt64(rng.below(40))
                    let e: LocalTier<Int>.Entry = rng.below(4) == 0 ? .absent(expiresAt: expiry) : .present(step, expiresAt: expiry)
                    let overwrite = rng.below(3) == 0
                    t.put(id, e, overwrite: overwrite, now: now)
                    m.put(id, e, overwrite: overwrite, now: now)
                case 8:
                    t.remove(id)
                    m.remove(id)
                default:
                    let n = rng.below(capacity + 1)
                    t.reserve(n)
                }
                guard t.count == m.count else { return XCTFail("capacity \(capacity) step \(step): \(t.count) entries, \(m.count) by the rules") }
                XCTAssertLessThanOrEqual(t.count, max(2, capacity), "bounded")
            }
        }
    }
}

/// The tier's rules, over dictionaries: entries go into `young` until it has taken
/// `generationSize` (removals included); then `young` becomes `old`. A hit or a fill of an id in
/// `old` moves it to `young`; an expired entry answers as a miss and is replaced by any put.
private struct TierModel {
    let generationSize: Int
    var young: [String: LocalTier<Int>.Entry] = [:], old: [String: LocalTier<Int>.Entry] = [:]
    var takenByYoung = 0

    var count: Int { young.count + old.count }

    /// The entry that answers: nil for a miss.
    mutating func get(_ id: String, now: UInt64) -> LocalTier<Int>.Entry? {
        var e = young[id]
        if e == nil, let o = old.removeValue(forKey: id) {
            if o.expiresAt > now { insertYoung(id, o) }
            e = o
        }
        guard let e, e.expiresAt > now else { return nil }
        return e
    }

    mutating func put(_ id: String, _ entry: LocalTier<Int>.Entry, overwrite: Bool, now: UInt64) {
        if let o = old.removeValue(forKey: id) {
            insertYoung(id, !overwrite && o.expiresAt > now ? o : entry)
        } else if let y = young[id] {
            if overwrite || y.expiresAt <= now { young[id] = entry }
        } else {
            insertYoung(id, entry)
        }
    }

    mutating func remove(_ id: String) {
        young[id] = nil
        old[id] = nil
    }

    private mutating func insertYoung(_ id: String, _ e: LocalTier<Int>.Entry) {
        if takenByYoung >= generationSize {
            old = young
            young = [:]
            takenByYoung = 0
        }
        young[id] = e
        takenByYoung += 1
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
