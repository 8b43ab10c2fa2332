import Foundation
import StrataCore
@testable import StrataDims
import StrataGen
import StrataRedis
import StrataTestSupport
import XCTest

/// The cache against a real SQLite file and a real redis-server child process. Expected values
/// come from the generator, not from the store or the cache.
final class DimensionCacheTests: XCTestCase {
    private var dir: URL!
    private var redis: RedisServerProcess!
    private var store: SQLiteDimensionStore!
    private let gen = DimensionGenerator(contents: 2_000, users: 10_000, seed: 11)

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-cache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        redis = try RedisServerProcess()
        store = try SQLiteDimensionStore(path: dir.appendingPathComponent("dims.db").path)
        try store.migrate()
        try store.upsert(contents: gen.allContents())
        try store.upsert(users: gen.allUsers())
    }

    override func tearDownWithError() throws {
        redis = nil
        store = nil
        try? FileManager.default.removeItem(at: dir)
    }

    private func client() throws -> RedisClient {
        try RedisClient(config: RedisConfig(port: redis.port, connectTimeout: .milliseconds(300),
                                            commandTimeout: .seconds(2), reconnectBackoffInitial: .milliseconds(5),
                                            reconnectBackoffMax: .milliseconds(50), maxAttempts: 2))
    }

    private func makeCache(registry: MetricsRegistry = MetricsRegistry(),
                           _ tweak: (inout DimensionCacheConfig) -> Void = { _ in }) throws -> DimensionCache {
        var config = DimensionCacheConfig()
        tweak(&config)
        return try DimensionCache(store: store, redis: try client(), config: config, metrics: registry)
    }

    private func unknownContentIds(_ n: Int) -> [String] { (0..<n).map { "c9\(String(format: "%07d", $0))" } }

    private func ttls(_ keys: [[UInt8]], via c: RedisClient) throws -> [Int] {
        try c.pipeline(keys.map { [Array("TTL".utf8), $0] }).map { reply in
            guard case .integer(let t) = reply else { throw RedisError.protocolError("TTL reply \(reply)") }
            return Int(t)
        }
    }

    /// No 1 % slice of the TTL range holds more than 3× its share, and TTLs stay in the range.
    private func assertSpread(_ ttls: [Int], _ range: ClosedRange<Int>, file: StaticString = #filePath, line: UInt = #line) {
        let width = Double(range.upperBound - range.lowerBound)
        var slices = [Int](repeating: 0, count: 100)
        for t in ttls {
            // A few seconds pass between the writes and reading TTLs back.
            XCTAssertTrue((range.lowerBound - 30)...range.upperBound ~= t, "TTL \(t) outside \(range)", file: file, line: line)
            slices[min(99, max(0, Int(Double(t - range.lowerBound) / width * 100)))] += 1
        }
        let share = Double(ttls.count) / 100
        XCTAssertLessThanOrEqual(Double(slices.max()!), 3 * share, "slices \(slices)", file: file, line: line)
        XCTAssertGreaterThanOrEqual(slices.filter { $0 > 0 }.count, 95, "expiries cover the range: \(slices)", file: file, line: line)
    }

    // MARK: Staggered TTLs

    func testKeysWrittenAtOnceHaveSpreadExpiries() throws {
        let cache = try makeCache()
        let users = gen.allUsers()
        let found = try cache.lookupUsers(users.map(\.userId))
        XCTAssertEqual(found.count, 10_000)
        cache.awaitWriteBack()
        XCTAssertEqual(cache.stats.storeQueries, 20, "10 000 ids in chunks of 500")
        XCTAssertEqual(cache.stats.redisWrites, 10_000)

        let reader = try client()
        let keys = users.map { cache.redisKey(user: $0.userId) }
        assertSpread(try ttls(keys, via: reader), cache.config.redisTTL.range)
        XCTAssertTrue(try reader.mget(keys).allSatisfy { $0 != nil })

        // The changelog path staggers too.
        try cache.apply(users.map { .upsertUser($0) })
        assertSpread(try ttls(keys, via: reader), cache.config.redisTTL.range)
    }

    // MARK: Penetration

    func testUnknownIdsAreBlockedBeforeRedisAndTheStoreOnceTheFilterIsWarm() throws {
        let cache = try makeCache()
        let unknown = unknownContentIds(10_000)
        let known = (0..<300).map(DimensionGenerator.contentId)
        let before = store.queryCount
        let first = try cache.lookupContents(unknown + known)
        XCTAssertEqual(Set(first.keys), Set(known))
        let blocked = cache.stats.blocked
        XCTAssertGreaterThanOrEqual(blocked, 9_800, "the 1 % filter stops ~99 % of unknown ids")
        XCTAssertEqual(cache.stats.storeIds, 10_300 - blocked, "only filter false positives and known ids reach the store")
        XCTAssertGreaterThan(store.queryCount, before)

        // Blocked ids reached neither Redis nor the store: nothing about them in Redis.
        cache.awaitWriteBack()
        let blockedIds = unknown.filter { id in !Array(id.utf8).withUnsafeBytes { cache.isKnownContent($0) } }
        XCTAssertEqual(blockedIds.count, blocked)
        XCTAssertTrue(try client().mget(blockedIds.map { cache.redisKey(content: $0) }).allSatisfy { $0 == nil })

        // Warm: the same stream of unknown ids costs the store nothing.
        let warm = store.queryCount
        for _ in 0..<3 { XCTAssertTrue(try cache.lookupContents(unknown).isEmpty) }
        XCTAssertEqual(store.queryCount, warm, "zero store queries for unknown ids")
        XCTAssertEqual(cache.stats.blocked, blocked * 4)
        XCTAssertEqual(cache.stats.negativeHits, 3 * (10_000 - blocked))
    }

    func testNegativeCacheStopsRepeatStoreQueriesForFalsePositives() throws {
        let cache = try makeCache { c in
            c.filterMinimumCapacity = 1 // a filter filled to its 1 % design point, so false positives exist
            c.filterHeadroom = 1
        }
        let filter = try XCTUnwrap(cache.contentFilter)
        // Well-formed unknown ids that the Bloom filter lets through.
        let falsePositives = unknownContentIds(20_000).filter { filter.mightContain($0) }.prefix(5).map { $0 }
        guard falsePositives.count == 5 else { return XCTFail("only \(falsePositives.count) false positives") }

        XCTAssertTrue(try cache.lookupContents(falsePositives).isEmpty)
        XCTAssertEqual(cache.stats.storeQueries, 1)
        cache.awaitWriteBack()
        let reader = try client()
        for id in falsePositives {
            XCTAssertEqual(try reader.get(cache.redisKey(content: id)), Array("null".utf8))
        }
        for t in try ttls(falsePositives.map { cache.redisKey(content: $0) }, via: reader) {
            XCTAssertTrue(1...300 ~= t, "negative TTL \(t)")
        }

        XCTAssertTrue(try cache.lookupContents(falsePositives).isEmpty)
        XCTAssertEqual(cache.stats.storeQueries, 1, "in-process negative entries")
        cache.clearLocalTier()
        XCTAssertTrue(try cache.lookupContents(falsePositives).isEmpty)
        XCTAssertEqual(cache.stats.storeQueries, 1, "Redis negative entries")
        XCTAssertEqual(cache.stats.negativeHits, 10)

        // Creating the id through the changelog replaces its negative entries.
        let created = ContentDim(contentId: falsePositives[0], title: "new", category: "tech", authorId: "a000009",
                                 region: "Guangdong", status: "published", publishTs: 1)
        try cache.apply(.upsertContent(created))
        XCTAssertEqual(try cache.lookupContents([created.contentId]), [created.contentId: created])
        cache.clearLocalTier()
        XCTAssertEqual(try cache.lookupContents([created.contentId]), [created.contentId: created])
        XCTAssertEqual(cache.stats.storeQueries, 1)
    }

    // MARK: Consistency

    /// A batch's content ids warmed together (repeats and unknown ids among them): one store
    /// query for all, and the exact gate then confirms each known id from the in-process tier.
    func testWarmingTheContentGateLooksUpABatchOnceAndConfirmsFromMemory() throws {
        let cache = try makeCache()
        let known = gen.allContents().prefix(200).map(\.contentId)
        let unknown = unknownContentIds(100)
        let batch = known + known.prefix(50) + unknown
        let bytes = batch.flatMap { Array($0.utf8) }
        var starts: [Int] = [0]
        for id in batch { starts.append(starts.last! + id.utf8.count) }
        func views(_ body: (_ ids: [UnsafeRawBufferPointer]) -> Void) {
            bytes.withUnsafeBytes { all in
                body(batch.indices.map { UnsafeRawBufferPointer(rebasing: all[starts[$0]..<starts[$0 + 1]]) })
            }
        }

        views { cache.warmContentGate($0) }
        let warmed = cache.stats
        XCTAssertEqual(warmed.storeQueries, 1, "one query for the batch (Redis was empty)")
        let filter = try XCTUnwrap(cache.contentFilter)
        let falsePositives = unknown.filter { filter.mightContain($0) }.count
        XCTAssertLessThan(falsePositives, 10)
        XCTAssertEqual(warmed.storeIds, known.count + falsePositives, "each id once; the filter kept the other unknown ids out")

        views { ids in
            for (i, id) in ids.enumerated() {
                XCTAssertEqual(cache.confirmContent(id), i < known.count + 50, batch[i])
            }
        }
        let after = cache.stats
        XCTAssertEqual(after.storeQueries, 1, "the gate asked nothing more of the store")
        XCTAssertEqual(after.redisHits + after.redisMisses, warmed.redisHits + warmed.redisMisses, "nor of Redis")
        XCTAssertEqual(after.localHits - warmed.localHits, known.count + 50)
        XCTAssertNil(cache.takeGateFailure())
    }

    func testAppliedChangeIsVisibleInRedisAndInTheNextLookup() throws {
        let cache = try makeCache()
        let original = gen.content(5)
        XCTAssertEqual(try cache.lookupContents([original.contentId])[original.contentId], original)

        var changed = original
        changed.title = "Renamed, \"again\""
        changed.category = "music"
        try store.upsert(contents: [changed])         // what `strata dims put` does first
        try cache.apply(.upsertContent(changed))       // what dimsync does with the changelog record
        let reader = try client()
        let key = cache.redisKey(content: changed.contentId)
        XCTAssertEqual(try reader.get(key).flatMap(DimJSON.decodeContent), changed)
        XCTAssertTrue(cache.config.redisTTL.range ~= (try ttls([key], via: reader))[0])

        let queries = store.queryCount
        XCTAssertEqual(try cache.lookupContents([changed.contentId])[changed.contentId], changed)
        cache.clearLocalTier()
        XCTAssertEqual(try cache.lookupContents([changed.contentId])[changed.contentId], changed)
        XCTAssertEqual(store.queryCount, queries, "served by the tiers, not the store")

        // A brand-new id becomes known to the filter and the tiers at once.
        let fresh = ContentDim(contentId: DimensionGenerator.contentId(2_000), title: "fresh", category: "news",
                               authorId: "a000001", region: "Hunan", status: "published", publishTs: 2)
        XCTAssertFalse(Array(fresh.contentId.utf8).withUnsafeBytes { cache.isKnownContent($0) })
        try cache.apply(.upsertContent(fresh))
        XCTAssertTrue(Array(fresh.contentId.utf8).withUnsafeBytes { cache.isKnownContent($0) })
        XCTAssertEqual(try cache.lookupContents([fresh.contentId]), [fresh.contentId: fresh])

        // Users and deletes.
        var user = gen.user(3)
        user.province = "Guangdong"
        user.cityTier = 1
        try cache.apply(.upsertUser(user))
        XCTAssertEqual(try cache.lookupUsers([user.userId]), [user.userId: user])
        try cache.apply(.deleteContent(id: changed.contentId))
        XCTAssertEqual(try reader.get(key), Array("null".utf8))
        XCTAssertTrue(try cache.lookupContents([changed.contentId]).isEmpty)
        XCTAssertEqual(store.queryCount, queries)
    }

    /// The write-back goes behind the lookup: the lookup has returned before Redis holds its
    /// answers, and a change applied in between (here, while the queue is held) is not replaced
    /// by the older store read when the queued `SET … NX` reaches Redis — for a known id and for
    /// an unknown id's negative entry alike.
    func testAWriteBackQueuedBeforeAChangeNeverReplacesIt() throws {
        let cache = try makeCache { $0.useValidIdFilter = false }
        let original = gen.content(7)
        let unknownId = unknownContentIds(1)[0]
        let reader = try client()
        let key = cache.redisKey(content: original.contentId), unknownKey = cache.redisKey(content: unknownId)

        cache.suspendWriteBack()
        XCTAssertEqual(try cache.lookupContents([original.contentId, unknownId]), [original.contentId: original])
        XCTAssertNil(try reader.get(key), "the lookup returned before its write-back was sent")
        XCTAssertNil(try reader.get(unknownKey))

        var changed = original
        changed.title = "changed while the write-back waited"
        let created = ContentDim(contentId: unknownId, title: "created", category: "news", authorId: "a000003",
                                 region: "Hunan", status: "published", publishTs: 4)
        try store.upsert(contents: [changed, created])
        try cache.apply([.upsertContent(changed), .upsertContent(created)])
        cache.resumeWriteBack()
        cache.awaitWriteBack()
        XCTAssertEqual(try reader.get(key).flatMap(DimJSON.decodeContent), changed, "the change stays")
        XCTAssertEqual(try reader.get(unknownKey).flatMap(DimJSON.decodeContent), created, "no negative entry over it")

        let queries = store.queryCount
        cache.clearLocalTier()
        XCTAssertEqual(try cache.lookupContents([original.contentId, unknownId]),
                       [original.contentId: changed, unknownId: created])
        XCTAssertEqual(store.queryCount, queries, "answered by Redis")
        XCTAssertEqual(cache.stats.redisWrites, 4, "2 changes, and the 2 write-backs counted though NX kept them out")
    }

    /// The write-back queue is bounded: a lookup whose entries would pass the bound waits until
    /// the queue has drained, and loses none of them.
    func testALookupWaitsForAFullWriteBackQueue() throws {
        let cache = try makeCache { $0.redisWriteBackQueue = 100 }
        let first = (0..<80).map(DimensionGenerator.userId), second = (80..<160).map(DimensionGenerator.userId)
        cache.suspendWriteBack()
        XCTAssertEqual(try cache.lookupUsers(first).count, 80, "80 entries queued: under the bound")
        let resumed = LockedCounter()
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(300)) {
            resumed.add()
            cache.resumeWriteBack()
        }
        XCTAssertEqual(try cache.lookupUsers(second).count, 80)
        XCTAssertEqual(resumed.value, 1, "the second lookup (80 more, past 100) returned only after the queue moved")
        cache.awaitWriteBack()
        XCTAssertEqual(cache.stats.redisWrites, 160)
        XCTAssertTrue(try client().mget((first + second).map { cache.redisKey(user: $0) }).allSatisfy { $0 != nil })
    }

    /// One lookup whose ids are answered by every tier at once, interleaved across the store's
    /// chunks: ids in process, ids only in Redis, ids only in the store, unknown ids (the filter
    /// off, so they reach the store). Each known id gets its own user's row object at its own
    /// position, once; the write-back holds each user's DimJSON text, the unknown ids `null`.
    func testALookupAnsweredByEveryTierPutsEachUserAtItsPosition() throws {
        let cache = try makeCache { $0.useValidIdFilter = false }
        let users = gen.allUsers()
        let inProcess = Array(users[0..<700]), inRedis = Array(users[700..<1_500]), inStore = Array(users[1_500..<3_000])
        try cache.lookupUserRowObjects((inProcess + inRedis).map(\.userId)) { _, _ in }
        cache.awaitWriteBack()
        cache.clearLocalTier()
        try cache.lookupUserRowObjects(inProcess.map(\.userId)) { _, _ in }

        var rng = SplitMix64(state: 5)
        let unknown = (0..<600).map { "u9\(String(format: "%08d", $0))" }
        let asked = (inProcess.map(\.userId) + inRedis.map(\.userId) + inStore.map(\.userId) + unknown).shuffled(using: &rng)
        let byId = Dictionary(uniqueKeysWithValues: users.map { ($0.userId, $0) })
        let before = cache.stats
        var seen = [Int](repeating: 0, count: asked.count)
        try cache.lookupUserRowObjects(asked) { i, u in
            seen[i] += 1
            XCTAssertEqual(u.userId, asked[i])
            XCTAssertEqual(byId[asked[i]].map { DimJSON.dwmUserObject($0) }, u.json, "position \(i)")
        }
        XCTAssertEqual(seen.indices.filter { seen[$0] != 0 }, asked.indices.filter { byId[asked[$0]] != nil },
                       "every known id found, no unknown one")
        XCTAssertEqual(seen.max(), 1)
        let after = cache.stats
        XCTAssertEqual(after.localHits - before.localHits, inProcess.count)
        XCTAssertEqual(after.redisHits - before.redisHits, inRedis.count)
        XCTAssertEqual(after.storeIds - before.storeIds, inStore.count + unknown.count)

        cache.awaitWriteBack()
        let reader = try client()
        for u in inStore { XCTAssertEqual(try reader.get(cache.redisKey(user: u.userId)), DimJSON.encode(u)) }
        for id in unknown { XCTAssertEqual(try reader.get(cache.redisKey(user: id)), Array("null".utf8)) }
    }

    func testUnreadableRedisEntriesAreReplacedFromTheStore() throws {
        let cache = try makeCache { $0.localCapacity = 0 }
        let user = gen.user(42)
        let key = cache.redisKey(user: user.userId)
        let writer = try client()
        try writer.set(key, Array("{\"user_id\":\"u000000042\",\"gender\":".utf8), ttlSeconds: 3_600) // truncated
        XCTAssertEqual(try cache.lookupUsers([user.userId]), [user.userId: user])
        XCTAssertEqual(try writer.get(key).flatMap(DimJSON.decodeUser), user, "the write-back replaced the broken value")
        try writer.set(key, DimJSON.encode(gen.user(43)), ttlSeconds: 3_600) // a value for another id
        XCTAssertEqual(try cache.lookupUsers([user.userId]), [user.userId: user])
    }

    func testRebuildPicksUpIdsWrittenWithoutChangelog() throws {
        let cache = try makeCache()
        let extra = ContentDim(contentId: DimensionGenerator.contentId(5_000), title: "x", category: "food",
                               authorId: "a000002", region: "Fujian", status: "published", publishTs: 3)
        try store.upsert(contents: [extra])
        XCTAssertTrue(try cache.lookupContents([extra.contentId]).isEmpty, "blocked by the old filter")
        try cache.rebuildFilters()
        XCTAssertEqual(try cache.lookupContents([extra.contentId]), [extra.contentId: extra])
    }

    // MARK: Degraded mode

    func testRedisOutageDegradesToTheStoreAndRecovers() throws {
        let cache = try makeCache { c in
            c.localCapacity = 0                      // every lookup must go past the local tier
            c.breakerOpenFor = .milliseconds(200)
        }
        let contentIds = (0..<500).map { DimensionGenerator.contentId($0 * 3) }
        let userIds = (0..<2_000).map { DimensionGenerator.userId($0 * 5) }
        let expectedContents = Dictionary(uniqueKeysWithValues: contentIds.indices.map { (contentIds[$0], gen.content($0 * 3)) })
        let expectedUsers = Dictionary(uniqueKeysWithValues: userIds.indices.map { (userIds[$0], gen.user($0 * 5)) })
        func check(_ what: String) throws {
            XCTAssertEqual(try cache.lookupContents(contentIds), expectedContents, what)
            XCTAssertEqual(try cache.lookupUsers(userIds), expectedUsers, what)
        }

        try check("cold")
        cache.awaitWriteBack()
        try check("warm")
        XCTAssertEqual(cache.stats.redisHits, 2_500)
        XCTAssertEqual(cache.stats.degradedLookups, 0)

        redis.stop()
        let queriesBefore = store.queryCount
        for i in 0..<10 { try check("redis down #\(i)") }
        let down = cache.stats
        XCTAssertEqual(down.degradedLookups, 20, "every lookup during the outage was answered by the store")
        // Read back from the store: 500 contents (one chunk of 500) and 2 000 users (four) per round.
        XCTAssertEqual(store.queryCount - queriesBefore, 10 * (1 + 4), "the store saw every id of the outage")
        XCTAssertGreaterThan(down.redisErrors, 0)
        XCTAssertTrue(cache.isDegraded)
        XCTAssertEqual(down.redisHits, 2_500)

        try redis.start()                                  // same port, empty
        // The breaker lets one lookup probe Redis once its 200 ms have passed; lookups (exact all
        // along, from the store meanwhile) until one has closed it.
        let deadline = Date().addingTimeInterval(10)
        var round = 0
        while cache.isDegraded {
            guard Date() < deadline else {
                return XCTFail("the breaker still routes around Redis 10 s after it came back: \(cache.stats)")
            }
            try check("redis back, probing #\(round)")
            round += 1
        }
        try check("redis back, refilled")
        cache.awaitWriteBack()
        XCTAssertFalse(cache.isDegraded)
        let refilled = cache.stats
        try check("redis back, warm")
        XCTAssertEqual(cache.stats.redisHits - refilled.redisHits, 2_500, "the Redis tier answers every id again")
        XCTAssertEqual(cache.stats.degradedLookups, refilled.degradedLookups)
        // Read back from the restarted (empty) Redis: exactly the looked-up ids were written again.
        XCTAssertEqual(try client().command(["DBSIZE"]), .integer(2_500))
    }

    /// While the breaker is open no lookup touches Redis: the failed read that opened it is the
    /// outage's only attempt until `breakerOpenFor` (here far longer than the test) has passed.
    func testOpenBreakerKeepsLookupsOffRedis() throws {
        let cache = try makeCache { c in
            c.localCapacity = 0
            c.breakerOpenFor = .seconds(600)
        }
        let ids = (0..<500).map(DimensionGenerator.contentId)
        let expected = Dictionary(uniqueKeysWithValues: (0..<500).map { (DimensionGenerator.contentId($0), gen.content($0)) })
        XCTAssertEqual(try cache.lookupContents(ids), expected, "cold")
        cache.awaitWriteBack()
        XCTAssertEqual(try cache.lookupContents(ids), expected, "warm")
        XCTAssertEqual(cache.stats.redisHits, 500)

        redis.stop()
        XCTAssertEqual(try cache.lookupContents(ids), expected, "first lookup of the outage")
        let opened = cache.stats
        let client = try XCTUnwrap(cache.redisStats)
        XCTAssertEqual(opened.redisErrors, 1, "the failed read opened the breaker")
        XCTAssertTrue(cache.isDegraded)
        for i in 0..<20 {
            XCTAssertEqual(try cache.lookupContents(ids), expected, "outage lookup #\(i)")
            XCTAssertEqual(try cache.lookupUsers([DimensionGenerator.userId(i)]), [DimensionGenerator.userId(i): gen.user(i)])
        }
        XCTAssertEqual(cache.stats.redisErrors, 1, "no further Redis attempt while the breaker is open")
        XCTAssertEqual(cache.redisStats, client, "the Redis client sent nothing while the breaker was open")
        XCTAssertEqual(cache.stats.degradedLookups, 41)
        XCTAssertTrue(cache.isDegraded)
    }

    func testStartsWhileRedisIsDownAndConnectsWhenItComesUp() throws {
        redis.stop()
        var rc = RedisConfig(port: redis.port, connectTimeout: .milliseconds(300), maxAttempts: 1)
        rc.reconnectBackoffInitial = .milliseconds(5)
        var config = DimensionCacheConfig()
        config.localCapacity = 0
        config.breakerOpenFor = .milliseconds(100)
        let cache = try DimensionCache(store: store, redisConfig: rc, config: config, metrics: MetricsRegistry())
        let ids = (0..<1_000).map(DimensionGenerator.userId)
        let expected = Dictionary(uniqueKeysWithValues: (0..<1_000).map { (DimensionGenerator.userId($0), gen.user($0)) })
        XCTAssertEqual(try cache.lookupUsers(ids), expected)
        XCTAssertEqual(cache.stats.degradedLookups, 1)
        XCTAssertNil(cache.redisStats, "never connected")

        try redis.start()
        // Once the breaker's 100 ms have passed, a lookup connects (misses, writes back); until
        // then lookups are answered by the store. Exact all along.
        let deadline = Date().addingTimeInterval(10)
        while cache.redisStats == nil || cache.isDegraded {
            guard Date() < deadline else { return XCTFail("no connection to Redis 10 s after it came up: \(cache.stats)") }
            XCTAssertEqual(try cache.lookupUsers(ids), expected)
        }
        XCTAssertEqual(try cache.lookupUsers(ids), expected)
        cache.awaitWriteBack()
        let hits = cache.stats.redisHits
        XCTAssertEqual(try cache.lookupUsers(ids), expected)
        XCTAssertEqual(cache.stats.redisHits - hits, 1_000, "the Redis tier answers every id")
        XCTAssertNotNil(cache.redisStats)
        XCTAssertEqual(try client().command(["DBSIZE"]), .integer(1_000), "the write-back reached Redis")
    }

    func testWorksWithoutARedisTier() throws {
        let cache = try DimensionCache(store: store, redis: nil, metrics: MetricsRegistry())
        let ids = (0..<100).map(DimensionGenerator.userId)
        XCTAssertEqual(try cache.lookupUsers(ids).count, 100)
        XCTAssertEqual(try cache.lookupUsers(ids).count, 100)
        XCTAssertEqual(cache.stats.localHits, 100)
        XCTAssertEqual(cache.stats.degradedLookups, 0)
        try cache.apply(.deleteUser(id: ids[0]))
        XCTAssertEqual(try cache.lookupUsers(ids).count, 99)
    }

    func testConcurrentLookupsAndChangesStayExact() throws {
        let cache = try makeCache { $0.localCapacity = 1_000 } // small: generations turn over during the test
        let failures = LockedCounter()
        let gen = self.gen
        DispatchQueue.concurrentPerform(iterations: 6) { t in
            do {
                for round in 0..<5 {
                    let ids = (0..<800).map { DimensionGenerator.userId(($0 * 7 + t * 1_000 + round * 97) % 10_000) }
                    let got = try cache.lookupUsers(ids)
                    for id in ids where got[id] != gen.user(Int(id.dropFirst())!) { failures.add() }
                    if t == 0 { try cache.apply(.upsertUser(gen.user(round))) } // same values: results must not change
                }
            } catch { failures.add() }
        }
        XCTAssertEqual(failures.value, 0)
    }

    func testMetricsAreRegisteredPerTier() throws {
        let registry = MetricsRegistry()
        let cache = try makeCache(registry: registry)
        let ids = (0..<10).map(DimensionGenerator.contentId)
        _ = try cache.lookupContents(ids)                       // store
        cache.awaitWriteBack()
        cache.clearLocalTier()
        _ = try cache.lookupContents(ids)                       // redis
        _ = try cache.lookupContents(ids)                       // local
        _ = try cache.lookupContents(unknownContentIds(100))    // mostly blocked
        let m = registry.snapshot()
        XCTAssertEqual(m[#"strata_dim_cache_hits_total{kind="content",tier="local"}"#], 10)
        XCTAssertEqual(m[#"strata_dim_cache_hits_total{kind="content",tier="redis"}"#], 10)
        XCTAssertEqual(m[#"strata_dim_cache_misses_total{kind="content",tier="redis"}"#].map { $0 >= 10 }, true)
        XCTAssertEqual(m[#"strata_dim_cache_store_queries_total{kind="content"}"#].map { $0 >= 1 }, true)
        XCTAssertEqual(m[#"strata_dim_cache_blocked_total{kind="content"}"#].map { $0 >= 95 }, true)
        XCTAssertNotNil(m[#"strata_dim_cache_negative_hits_total{kind="content",tier="redis"}"#])
        XCTAssertEqual(m["strata_dim_cache_redis_errors_total"], 0)
        XCTAssertEqual(m["strata_dim_cache_degraded_lookups_total"], 0)
        XCTAssertTrue(registry.render().contains("# TYPE strata_dim_cache_hits_total counter"))
    }
}
