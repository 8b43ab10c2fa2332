public import Logging
public import StrataCore
public import StrataRedis
import Synchronization

/// The dimension cache of DESIGN.md, in front of a ``DimensionStore``:
///
/// 1. in-process tier (bounded, two generations, short TTL), asked first: it holds only what a
///    tier below or the changelog confirmed;
/// 2. valid-ID filter (a Bloom filter per kind, built from the store, kept current by `apply`):
///    the other ids certainly unknown to the store are blocked before Redis and the store;
/// 3. Redis (`dim:c:<id>` / `dim:u:<id>` → compact JSON; pipelined MGET in chunks);
/// 4. the store (one query per chunk, answering by the ids' positions).
///
/// Misses are written back to Redis with a staggered TTL (base ± jitter), behind the lookup (on a
/// queue and a connection of their own); ids the store does not know get a short negative entry
/// (`null`) in Redis and in process. With Redis down, lookups are
/// answered by the store (degraded, logged once per outage, counted) and a circuit breaker keeps
/// the outage from costing a timeout per call; the Redis tier is used again once it answers.
///
/// Lookups are meant to be called once per emission batch with the batch's distinct ids, from
/// the job's own threads (they block). Thread-safe.
public final class DimensionCache: Sendable {
    public let config: DimensionCacheConfig
    public let store: any DimensionStore
    private let redis: RedisTier?
    private let contents: KindCache<ContentDim>
    /// Users are kept as their DWM rows' `user` objects (see ``UserRowObject``).
    private let users: KindCache<UserRowObject>
    private let redisErrors: CacheCounter
    private let degraded: CacheCounter
    private let storeRetries: CacheCounter
    /// The store error behind a gate answer given without the store (see ``confirmContent(_:)``).
    private let gateFailure = Mutex<(any Error)?>(nil)

    /// `redis: nil` runs without the Redis tier. Give the cache its own ``RedisClient`` with few
    /// attempts and short timeouts (e.g. `maxAttempts: 2`, `commandTimeout: .milliseconds(500)`):
    /// a failed attempt is what a lookup pays before falling back to the store.
    /// Builds the valid-ID filters from the store unless `config.buildFiltersOnStart` is false.
    public convenience init(store: any DimensionStore, redis: RedisClient?, config: DimensionCacheConfig = DimensionCacheConfig(),
                            metrics: MetricsRegistry = .shared, logger: Logger = Logger(label: "strata.dims.cache")) throws {
        try self.init(store: store, redis: redis, redisConfig: redis?.config, config: config, metrics: metrics, logger: logger)
    }

    /// Connects to Redis lazily: the cache starts (degraded) even while Redis is down, and
    /// connects once a probe succeeds. Same advice on `redisConfig` as above.
    public convenience init(store: any DimensionStore, redisConfig: RedisConfig, config: DimensionCacheConfig = DimensionCacheConfig(),
                            metrics: MetricsRegistry = .shared, logger: Logger = Logger(label: "strata.dims.cache")) throws {
        try self.init(store: store, redis: nil, redisConfig: redisConfig, config: config, metrics: metrics, logger: logger)
    }

    private init(store: any DimensionStore, redis: RedisClient?, redisConfig: RedisConfig?, config: DimensionCacheConfig,
                 metrics: MetricsRegistry, logger: Logger) throws {
        self.config = config
        self.store = store
        let errors = CacheCounter(metrics.counter("strata_dim_cache_redis_errors_total",
                                                  help: "Failed Redis calls of the dimension cache"))
        let degraded = CacheCounter(metrics.counter("strata_dim_cache_degraded_lookups_total",
                                                    help: "Dimension lookups answered without Redis because it was unavailable"))
        redisErrors = errors
        self.degraded = degraded
        let tier = redisConfig.map {
            RedisTier(client: redis, clientConfig: $0, config: config, errors: errors, metrics: metrics, logger: logger)
        }
        self.redis = tier
        let retries = CacheCounter(metrics.counter("strata_dim_cache_store_retries_total",
                                                   help: "Dimension store queries retried while the store could not answer"))
        storeRetries = retries
        let wait = StoreWait(limit: config.storeWait, subject: "dimension store", logger: logger) { retries.add(1) }
        contents = KindCache(keyTag: "c", counters: KindCounters(kind: "content", registry: metrics), redis: tier,
                             degraded: degraded, store: store, config: config, storeWait: wait) { [store] in try store.contents($0, row: $1) }
        users = KindCache(keyTag: "u", counters: KindCounters(kind: "user", registry: metrics), redis: tier,
                          degraded: degraded, store: store, config: config, storeWait: wait) { [store] ids, row in
            try store.users(ids) { row($0, UserRowObject($1)) }
        }
        if config.useValidIdFilter && config.buildFiltersOnStart { try rebuildFilters() }
    }

    // MARK: Lookups

    /// Dimensions of the given content ids (pass each id once); unknown ids are absent.
    /// Throws only when the store fails; Redis failures degrade to the store.
    public func lookupContents(_ ids: [String]) throws -> [String: ContentDim] { try contents.lookup(ids) }

    /// Dimensions of `ids` (each id once) by position, as ``lookupUserRowObjects(_:found:)``.
    public func lookupContents(_ ids: [String], found: (Int, ContentDim) -> Void) throws { try contents.lookup(ids, found: found) }

    /// Profiles of the given user ids (pass each id once); unknown ids are absent.
    public func lookupUsers(_ ids: [String]) throws -> [String: UserDim] { try users.lookup(ids).compactMapValues(\.dim) }

    /// The DWM row `user` objects of `ids` (each id once) by position: `found(i, object)` on the
    /// calling thread for each `ids[i]` known; the others are unknown. For large lookups (a
    /// minute's users): no map is built, and no profile is decoded.
    public func lookupUserRowObjects(_ ids: [String], found: (Int, UserRowObject) -> Void) throws {
        try users.lookup(ids, found: found)
    }

    /// ``lookupContents(_:found:)`` for `count` ids given by their bytes and `ByteHash.hash` of
    /// them (an interned batch's): no String is made for the ids the in-process tier holds.
    public func lookupContents(count: Int, bytes: (Int) -> UnsafeRawBufferPointer, hash: (Int) -> UInt64,
                               found: (Int, ContentDim) -> Void) throws {
        try contents.lookup(count: count, bytes: bytes, hash: hash) { i, c in found(i, c.pointee) }
    }

    /// The DWM row `user` objects of `count` ids given by their bytes and `ByteHash.hash` of them
    /// (an interned batch's), each lent as its members without the opening brace
    /// (`"gender":…,"city_tier":…}`, see ``UserRowObject/withRowObjectMembers(_:)``) for the call
    /// of `found` only. No String is made for the ids the in-process tier holds, and a hit there
    /// is read where it lies: no copy, no retain (the per-emission path of a warm cache).
    public func lookupUserRowObjectMembers(count: Int, bytes: (Int) -> UnsafeRawBufferPointer, hash: (Int) -> UInt64,
                                           found: (Int, UnsafeRawBufferPointer) -> Void) throws {
        try users.lookup(count: count, bytes: bytes, hash: hash) { i, u in u.pointee.withRowObjectMembers { found(i, $0) } }
    }

    /// The valid-ID gate for the per-event path: false when the content id is certainly not in
    /// the store. No allocation, no lock held while hashing. True while no filter is built.
    public func isKnownContent(_ bytes: UnsafeRawBufferPointer) -> Bool { contents.mightExist(bytes) }

    /// The exact valid-ID gate for content ids (the dwm engine calls it once per distinct id and
    /// remembers a yes): the Bloom filter answers "certainly not" without any tier; a "maybe" is
    /// confirmed through the tiers (in process, Redis, store), so a Bloom false positive costs one
    /// lookup, is then remembered as a negative entry, and never counts as known content. A store
    /// that cannot answer is waited for (`config.storeWait`). If it still cannot, the id is let
    /// through and the error is kept for ``takeGateFailure()``: the caller must then fail without
    /// committing, because that answer was a guess.
    public func confirmContent(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard contents.mightExist(bytes) else { return false }
        let id = String(decoding: bytes, as: UTF8.self)
        do {
            return try contents.lookup([id])[id] != nil
        } catch {
            gateFailure.withLock { if $0 == nil { $0 = error } }
            return true
        }
    }

    /// Warms the gate for a batch of content ids (repeats allowed): those the Bloom filter lets
    /// through are looked up together (one Redis MGET, one store query), filling the in-process
    /// tier, so ``confirmContent(_:)`` then answers each from memory instead of one round trip per
    /// new id. Only a warm-up: a failure is left to ``confirmContent(_:)``, which meets it per id.
    /// A concrete array, not a generic sequence: called once per poll across modules, a generic
    /// parameter ran unspecialized (metadata lookups per element, ≈ 7 % of a catch-up's CPU samples).
    public func warmContentGate(_ ids: [UnsafeRawBufferPointer]) {
        var batch: Set<String> = []
        for bytes in ids where contents.mightExist(bytes) { batch.insert(String(decoding: bytes, as: UTF8.self)) }
        guard !batch.isEmpty else { return }
        _ = try? contents.lookup(Array(batch))
    }

    /// The store error behind a ``confirmContent(_:)`` answer given without the store, once.
    public func takeGateFailure() -> (any Error)? { gateFailure.withLock { e in defer { e = nil }; return e } }

    public func isKnownUser(_ bytes: UnsafeRawBufferPointer) -> Bool { users.mightExist(bytes) }

    // MARK: Changelog

    /// Applies one `dim.changelog` record (see the batch form).
    public func apply(_ change: DimChange) throws { try apply([change]) }

    /// Applies changelog records in order: the filter and the in-process tier are updated first
    /// (they cannot fail), then Redis in one pipeline, each upsert with a fresh staggered TTL and
    /// each delete as a negative entry. Throws when Redis could not be written, so `dimsync`
    /// retries the records instead of committing past them.
    public func apply(_ changes: [DimChange]) throws {
        var rng = SplitMix64.systemSeeded()
        var writes: [(key: [UInt8], value: [UInt8], ttl: Int)] = []
        writes.reserveCapacity(changes.count)
        for change in changes {
            switch change {
            case .upsertContent(let d): writes += contents.upserted([d], rng: &rng)
            case .upsertUser(let d): writes += users.upserted([UserRowObject(d)], rng: &rng)
            case .deleteContent(let id): writes += contents.deleted([id])
            case .deleteUser(let id): writes += users.deleted([id])
            }
        }
        guard let redis else { return }
        try redis.overwrite(writes)
        let c = changes.filter { $0.kind == .content }.count
        contents.counters.redisWrites.add(c)
        users.counters.redisWrites.add(changes.count - c)
    }

    // MARK: Maintenance

    /// Rebuilds both valid-ID filters from the store (sized from its counts) and swaps them in;
    /// lookups keep using the old filters meanwhile, and changes applied during the scan are
    /// carried over. Run it at start, and periodically or when ``filtersNeedRebuild`` says so.
    public func rebuildFilters() throws {
        try contents.rebuildFilter(count: { try store.contentCount() }, scan: { try store.forEachContentId($0) })
        try users.rebuildFilter(count: { try store.userCount() }, scan: { try store.forEachUserId($0) })
    }

    /// True when more ids were added since the last rebuild than the filters were sized for.
    public var filtersNeedRebuild: Bool {
        (contents.filter.current?.isOverCapacity ?? false) || (users.filter.current?.isOverCapacity ?? false)
    }

    /// The current content filter (nil before the first build), e.g. to query it in a tight loop.
    public var contentFilter: BloomFilter? { contents.filter.current }
    public var userFilter: BloomFilter? { users.filter.current }

    /// Empties the in-process tier (tests, or after a bulk reload without changelog).
    public func clearLocalTier() {
        contents.clearLocal()
        users.clearLocal()
    }

    /// Redis key of a content / user id.
    public func redisKey(content id: String) -> [UInt8] { contents.key(id) }
    public func redisKey(user id: String) -> [UInt8] { users.key(id) }

    /// Returns once the Redis write-backs of every lookup made before the call have been sent
    /// (they go behind the lookups, see ``DimensionCacheConfig/redisWriteBackQueue``). Call it
    /// before the process exits, and in a test before reading Redis.
    public func awaitWriteBack() { redis?.awaitWriteBack() }

    /// Tests (`@testable`): hold the write-backs queued from now on, and let them go.
    func suspendWriteBack() { redis?.suspendWriteBack() }
    func resumeWriteBack() { redis?.resumeWriteBack() }

    /// Counters of the cache's Redis client (round trips, reconnects …); nil without one.
    public var redisStats: RedisStats? { redis?.stats }

    /// Whether the circuit breaker currently routes lookups around Redis.
    public var isDegraded: Bool { redis?.breaker.isOpen ?? false }

    public var stats: DimensionCacheStats {
        var s = DimensionCacheStats()
        for k in [contents.counters, users.counters] {
            s.localHits += k.localHits.value
            s.localMisses += k.localMisses.value
            s.redisHits += k.redisHits.value
            s.redisMisses += k.redisMisses.value
            s.negativeHits += k.negativeLocal.value + k.negativeRedis.value
            s.storeIds += k.storeIds.value
            s.storeQueries += k.storeQueries.value
            s.blocked += k.blocked.value
            s.redisWrites += k.redisWrites.value
        }
        s.redisErrors = redisErrors.value
        s.degradedLookups = degraded.value
        s.storeRetries = storeRetries.value
        return s
    }
}
