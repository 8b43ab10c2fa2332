import Foundation
import StrataCore
import StrataDims
import StrataGen
import Synchronization
import XCTest

/// A dimension store that cannot answer for a while: lookups wait and retry (`storeWait`) instead
/// of failing, give up with the store's error after the limit, and a content-id confirmation made
/// without the store is reported (`takeGateFailure`) so a job can fail before committing a guess.
/// The failing store is fault injection over a real SQLite store.
final class StoreWaitTests: XCTestCase {
    private var dir: URL!
    private var sqlite: SQLiteDimensionStore!
    private let gen = DimensionGenerator(contents: 200, users: 1_000, seed: 5)

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-storewait-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        sqlite = try SQLiteDimensionStore(path: dir.appendingPathComponent("dims.db").path)
        try sqlite.migrate()
        try sqlite.upsert(contents: gen.allContents())
        try sqlite.upsert(users: gen.allUsers())
    }

    override func tearDownWithError() throws {
        sqlite = nil
        try? FileManager.default.removeItem(at: dir)
    }

    private func cache(over store: FailingStore, wait: Duration) throws -> DimensionCache {
        var config = DimensionCacheConfig()
        config.storeWait = wait
        config.localCapacity = 0
        return try DimensionCache(store: store, redis: nil, config: config, metrics: MetricsRegistry())
    }

    func testLookupsWaitForTheStoreAndGetItsAnswer() throws {
        let store = FailingStore(sqlite)
        let cache = try cache(over: store, wait: .seconds(30))
        store.failNext(4)
        let ids = (0..<50).map(DimensionGenerator.userId)
        let found = try cache.lookupUsers(ids)
        XCTAssertEqual(Set(found.keys), Set(ids), "the answer after the outage is the store's")
        XCTAssertEqual(found[ids[7]]?.province, gen.allUsers()[7].province)
        XCTAssertEqual(cache.stats.storeRetries, 4, "one retry per failed attempt")
        XCTAssertEqual(store.failures, 4)
    }

    func testLookupsGiveUpWithTheStoresErrorAfterTheLimit() throws {
        let store = FailingStore(sqlite)
        let cache = try cache(over: store, wait: .milliseconds(400))
        store.failNext(1_000)
        let start = ContinuousClock.now
        XCTAssertThrowsError(try cache.lookupContents([DimensionGenerator.contentId(1)])) { error in
            XCTAssertEqual(error as? DimensionStoreError, .database("injected outage"))
        }
        let waited = ContinuousClock.now - start
        XCTAssertGreaterThanOrEqual(waited, .milliseconds(200), "it waited before giving up")
        XCTAssertLessThan(waited, .seconds(5), "and gave up near the limit")
        XCTAssertGreaterThan(cache.stats.storeRetries, 1)
    }

    func testAConfirmationWithoutTheStoreIsReportedOnce() throws {
        let store = FailingStore(sqlite)
        let cache = try cache(over: store, wait: .milliseconds(100))
        let known = Array(DimensionGenerator.contentId(3).utf8)
        XCTAssertTrue(known.withUnsafeBytes { cache.confirmContent($0) })
        XCTAssertNil(cache.takeGateFailure(), "the store answered")
        store.failNext(1_000)
        let other = Array(DimensionGenerator.contentId(4).utf8)
        XCTAssertTrue(other.withUnsafeBytes { cache.confirmContent($0) }, "let through rather than dropped")
        XCTAssertEqual(cache.takeGateFailure() as? DimensionStoreError, .database("injected outage"), "but reported")
        XCTAssertNil(cache.takeGateFailure(), "once")
    }
}

/// Fails the next N lookups with `DimensionStoreError.database("injected outage")`, then answers
/// from the real store.
final class FailingStore: DimensionStore, @unchecked Sendable {
    let inner: any DimensionStore
    private let remaining = Mutex(0)
    private let failed = Mutex(0)
    init(_ inner: any DimensionStore) { self.inner = inner }

    func failNext(_ n: Int) { remaining.withLock { $0 = n } }
    var failures: Int { failed.withLock { $0 } }

    private func check() throws {
        let fail = remaining.withLock { r in r > 0 ? { r -= 1; return true }() : false }
        if fail {
            failed.withLock { $0 += 1 }
            throw DimensionStoreError.database("injected outage")
        }
    }
    func migrate() throws { try inner.migrate() }
    func contents(_ ids: [String], row: (Int, ContentDim) throws -> Void) throws { try check(); try inner.contents(ids, row: row) }
    func users(_ ids: [String], row: (Int, UserDim) throws -> Void) throws { try check(); try inner.users(ids, row: row) }
    func upsert(contents: [ContentDim]) throws { try inner.upsert(contents: contents) }
    func upsert(users: [UserDim]) throws { try inner.upsert(users: users) }
    func deleteContents(_ ids: [String]) throws { try inner.deleteContents(ids) }
    func deleteUsers(_ ids: [String]) throws { try inner.deleteUsers(ids) }
    func forEachContentId(_ body: (String) throws -> Void) throws { try inner.forEachContentId(body) }
    func forEachUserId(_ body: (String) throws -> Void) throws { try inner.forEachUserId(body) }
    func contentCount() throws -> Int { try inner.contentCount() }
    func userCount() throws -> Int { try inner.userCount() }
    var queryCount: Int { inner.queryCount }
}
