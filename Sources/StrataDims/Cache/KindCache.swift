import CPrefetch
import StrataCore
import Synchronization

/// JSON `null`: the Redis value of a negative entry (a global: generic types have no stored statics).
let negativeRedisValue: [UInt8] = Array("null".utf8)

/// What the tiers need to know about a dimension type.
protocol CachedDimension: Sendable {
    var cacheId: String { get }
    func cacheJSON() -> [UInt8]
    static func fromCacheJSON(_ bytes: UnsafeRawBufferPointer) -> Self?
    /// Starts bringing the value's own storage into the cache (a lookup a few ids ahead).
    func prefetchStorage()
}

extension CachedDimension {
    func prefetchStorage() {}
}

extension ContentDim: CachedDimension {
    var cacheId: String { contentId }
    func cacheJSON() -> [UInt8] { DimJSON.encode(self) }
    static func fromCacheJSON(_ bytes: UnsafeRawBufferPointer) -> ContentDim? { DimJSON.decodeContent(bytes) }
}

extension UserRowObject: CachedDimension {
    var cacheId: String { userId }
    static func fromCacheJSON(_ bytes: UnsafeRawBufferPointer) -> UserRowObject? { DimJSON.userRowObject(fromCacheJSON: bytes) }
    func prefetchStorage() { withRowObjectMembers { strata_prefetch($0.baseAddress) } }
}

/// The tiers for one kind of dimension: filter → in-process → Redis → store.
final class KindCache<D: CachedDimension>: Sendable {

    let filter = FilterSlot()
    let counters: KindCounters
    private let local: Mutex<LocalTier<D>>
    private let redis: RedisTier?
    private let degraded: CacheCounter
    private let store: any DimensionStore
    /// The store's rows for some ids (each id once), by the ids' positions, in any order.
    private let fetch: @Sendable ([String], (Int, D) -> Void) throws -> Void
    private let storeWait: StoreWait
    private let keyPrefix: [UInt8]
    private let config: DimensionCacheConfig

    init(keyTag: String, counters: KindCounters, redis: RedisTier?, degraded: CacheCounter,
         store: any DimensionStore, config: DimensionCacheConfig, storeWait: StoreWait,
         fetch: @escaping @Sendable ([String], (Int, D) -> Void) throws -> Void) {
        self.storeWait = storeWait
        self.counters = counters
        self.local = Mutex(LocalTier(capacity: config.localCapacity))
        self.redis = redis
        self.degraded = degraded
        self.store = store
        self.fetch = fetch
        self.keyPrefix = Array((config.keyPrefix + keyTag + ":").utf8)
        self.config = config
    }

    func key(_ id: String) -> [UInt8] {
        var k: [UInt8] = []
        k.reserveCapacity(keyPrefix.count + id.utf8.count)
        k += keyPrefix
        k += id.utf8
        return k
    }

    /// Allocation-free gate for the hot path: false only when the filter is built and the id is
    /// certainly not in the store.
    func mightExist(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard config.useValidIdFilter, let f = filter.current else { return true }
        return f.mightContain(bytes)
    }

    func lookup(_ ids: [String]) throws -> [String: D] {
        var result: [String: D] = [:]
        result.reserveCapacity(ids.count)
        try lookup(ids) { i, d in result[ids[i]] = d }
        return result
    }

    /// Calls `found(i, d)` once for each `ids[i]` with dimensions, on the calling thread; the
    /// other ids are unknown. Positional, so a large lookup builds no map of its own.
    func lookup(_ ids: [String], found: (Int, D) -> Void) throws {
        let now = monotonicNanos()
        // 1. In-process tier, asked first: an entry there was confirmed by a tier below (or by a
        //    changelog update, which also feeds the filter), so a hit needs no filter probes.
        //    Below, ids are handled by their index in `ids`.
        let misses = askLocal(count: ids.count, now: now, found: { found($0, $1.pointee) }) { t, i, hit in t.get(ids[i], now: now, hit: hit) }
        try lookUpBelowLocal(ids, misses, now: now, found: found)
    }

    /// ``lookup(_:found:)`` for `count` ids given by their bytes and `ByteHash` (an interned
    /// batch's): the in-process tier answers without a String made or an id hashed again;
    /// Strings are made only for the ids it does not hold. Each dimension is lent by pointer, for
    /// the call only: a hit in the in-process tier is read where it lies (no retain per hit).
    func lookup(count: Int, bytes: (Int) -> UnsafeRawBufferPointer, hash: (Int) -> UInt64,
                found: (Int, UnsafePointer<D>) -> Void) throws {
        let now = monotonicNanos()
        let misses = askLocal(count: count, now: now, found: found, ahead: { t, i, step in t.prefetch(step, hash: hash(i)) { $0.pointee.prefetchStorage() } }) {
            t, i, hit in t.get(bytes: bytes(i), hash: hash(i), now: now, hit: hit)
        }
        if misses.isEmpty { return }
        let ids = misses.map { String(decoding: bytes($0), as: UTF8.self) }
        try lookUpBelowLocal(ids, Array(ids.indices), now: now) { j, d in withUnsafePointer(to: d) { found(misses[j], $0) } }
    }

    /// The in-process tier's answers for ids `0..<count` (`get` asks it about one): hits are
    /// passed to `found`; returns the ids it does not hold (all of them when it is off).
    /// `ahead` (a batch's ids, by their hashes) takes the steps of the lookups some ids ahead of
    /// the one asked (``LocalTier/prefetch(_:hash:storage:)``).
    private func askLocal(count: Int, now: UInt64, found: (Int, UnsafePointer<D>) -> Void,
                          ahead: (LocalTier<D>, Int, PrefetchStep) -> Void = { _, _, _ in },
                          get: (inout LocalTier<D>, Int, (UnsafePointer<D>) -> Void) -> LocalTier<D>.Found) -> [Int] {
        guard config.localCapacity > 0 else { return Array(0..<count) }
        var misses: [Int] = []
        var hits = 0, negatives = 0
        misses.reserveCapacity(count)
        // `found` is called only during `get`, never kept: the compiler cannot see that a closure
        // over one non-escaping parameter, handed to another, is not re-entered.
        withoutActuallyEscaping(found) { found in
            local.withLock { t in
                for i in 0..<count {
                    // Each step a few lookups' time after the previous one (≈ a miss's latency).
                    if i + 24 < count { ahead(t, i + 24, .index) }
                    if i + 18 < count { ahead(t, i + 18, .entry) }
                    if i + 12 < count { ahead(t, i + 12, .value) }
                    if i + 6 < count { ahead(t, i + 6, .storage) }
                    switch get(&t, i, { found(i, $0) }) {
                    case .hit: hits += 1
                    case .negative: negatives += 1
                    case .miss: misses.append(i)
                    }
                }
            }
        }
        counters.localHits.add(hits)
        counters.negativeLocal.add(negatives)
        return misses
    }

    /// Tiers 2–4 for `ids[i]`, i in `misses` (what the in-process tier did not answer).
    private func lookUpBelowLocal(_ ids: [String], _ misses: [Int], now: UInt64, found: (Int, D) -> Void) throws {
        let localEnabled = config.localCapacity > 0

        // 2. Valid-ID filter: what the in-process tier does not hold and the store certainly
        //    does not have goes no further.
        var toRedis: [Int]
        if config.useValidIdFilter, let f = filter.current {
            toRedis = []
            toRedis.reserveCapacity(misses.count)
            for i in misses where f.mightContain(ids[i]) { toRedis.append(i) }
            counters.blocked.add(misses.count - toRedis.count)
        } else {
            toRedis = misses
        }
        if localEnabled { counters.localMisses.add(toRedis.count) }
        if toRedis.isEmpty { return }

        // 3. Redis: MGET in chunks, pipelined (over several connections when large); whatever it
        //    cannot answer goes to the store.
        var toStore: [Int] = []
        var unreadable = Set<Int>()
        let localExpiry = now &+ config.localTTL.nanoseconds
        let negativeExpiry = now &+ config.negativeTTL.nanoseconds
        if let redis {
            let redisIds = toRedis.map { ids[$0] }
            // Values are decoded straight from hiredis's reply buffers, by index, on the threads
            // that read them (each index is written by one thread only).
            var answers = [RedisAnswer<D>](repeating: .missing, count: redisIds.count)
            let answered = answers.withUnsafeMutableBufferPointer { out in
                redisIds.withUnsafeBufferPointer { asked in
                    redis.mget(prefix: keyPrefix, ids: redisIds) { i, value in
                        guard let value else { out[i] = .missing; return }
                        if value.count == 4 && value.elementsEqual(negativeRedisValue) {
                            out[i] = .negative
                        } else if let d = D.fromCacheJSON(value), d.cacheId == asked[i] {
                            out[i] = .found(d)
                        } else {
                            out[i] = .unreadable
                        }
                    }
                }
            }
            if answered < toRedis.count { degraded.add(1) }
            var hits = 0, misses = 0, negativeHits = 0
            // Found and negative answers fill the in-process tier under one lock, without a
            // list of fills in between (a warm-Redis lookup fills up to a million entries).
            local.withLock { t in
                if localEnabled { t.reserve(answered) }
                for k in 0..<answered {
                    let i = toRedis[k]
                    switch answers[k] {
                    case .missing:
                        toStore.append(i); misses += 1
                    case .negative:
                        negativeHits += 1
                        if localEnabled { t.put(ids[i], .absent(expiresAt: negativeExpiry), overwrite: false, now: now) }
                    case .found(let d):
                        found(i, d)
                        hits += 1
                        if localEnabled { t.put(ids[i], .present(d, expiresAt: localExpiry), overwrite: false, now: now) }
                    case .unreadable:
                        toStore.append(i) // the store's answer replaces it
                        unreadable.insert(i)
                        misses += 1
                    }
                }
            }
            toStore += toRedis[answered...]
            counters.redisHits.add(hits)
            counters.redisMisses.add(misses)
            counters.negativeRedis.add(negativeHits)
        } else {
            toStore = toRedis
        }

        // 4. The store: one query per chunk; found ids are written back with a staggered TTL,
        //    unknown ones get a short negative entry. Its rows come by position; the in-process
        //    tier is filled in the same pass.
        if !toStore.isEmpty {
            let storeIds = toStore.map { ids[$0] }
            var fetched = [D?](repeating: nil, count: storeIds.count)
            let before = store.queryCount
            try storeWait.run("lookup of \(storeIds.count) ids") {
                for k in fetched.indices { fetched[k] = nil } // a retried query starts again
                try fetch(storeIds) { k, d in fetched[k] = d }
            }
            counters.storeQueries.add(max(0, store.queryCount - before))
            counters.storeIds.add(storeIds.count)
            var writes: [(key: [UInt8], value: [UInt8], ttl: Int)] = []
            var replacements: [(key: [UInt8], value: [UInt8], ttl: Int)] = []
            if redis != nil { writes.reserveCapacity(storeIds.count) }
            var rng = SplitMix64.systemSeeded()
            let negativeTTL = config.negativeTTL.wholeSeconds
            local.withLock { t in
                if localEnabled { t.reserve(storeIds.count) }
                for (k, i) in toStore.enumerated() {
                    let id = storeIds[k]
                    let entry: (key: [UInt8], value: [UInt8], ttl: Int)?
                    if let d = fetched[k] {
                        found(i, d)
                        if localEnabled { t.put(id, .present(d, expiresAt: localExpiry), overwrite: false, now: now) }
                        entry = redis == nil ? nil : (key(id), d.cacheJSON(), config.redisTTL.next(using: &rng))
                    } else {
                        if localEnabled { t.put(id, .absent(expiresAt: negativeExpiry), overwrite: false, now: now) }
                        entry = redis == nil ? nil : (key(id), negativeRedisValue, negativeTTL)
                    }
                    if let entry {
                        if unreadable.contains(i) { replacements.append(entry) } else { writes.append(entry) }
                    }
                }
            }
            if let redis {
                let written = counters.redisWrites
                redis.writeBack(writes, replacing: replacements) { written.add($0) }
            }
        }
    }

    // MARK: Changelog

    /// Makes `dims` current in every tier at once: filter, in-process (replacing), and the Redis
    /// entries returned for the caller to write (with fresh staggered TTLs).
    func upserted(_ dims: [D], rng: inout SplitMix64) -> [(key: [UInt8], value: [UInt8], ttl: Int)] {
        let now = monotonicNanos()
        let expiry = now &+ config.localTTL.nanoseconds
        for d in dims { filter.insert(d.cacheId) }
        local.withLock { t in
            t.reserve(dims.count)
            for d in dims { t.put(d.cacheId, .present(d, expiresAt: expiry), overwrite: true, now: now) }
        }
        return dims.map { (key($0.cacheId), $0.cacheJSON(), config.redisTTL.next(using: &rng)) }
    }

    /// Deleted ids become negative entries (a Bloom filter cannot forget them; the negative
    /// entry keeps them from the store until it expires, then the store answers "unknown" again).
    func deleted(_ ids: [String]) -> [(key: [UInt8], value: [UInt8], ttl: Int)] {
        let now = monotonicNanos()
        let expiry = now &+ config.negativeTTL.nanoseconds
        local.withLock { t in
            for id in ids { t.put(id, .absent(expiresAt: expiry), overwrite: true, now: now) }
        }
        let ttl = config.negativeTTL.wholeSeconds
        return ids.map { (key($0), negativeRedisValue, ttl) }
    }

    func clearLocal() { local.withLock { $0.removeAll() } }

    var localCount: Int { local.withLock { $0.count } }

    // MARK: Filter

    func rebuildFilter(count: () throws -> Int, scan: ((String) throws -> Void) throws -> Void) throws {
        try filter.rebuildLock.withLock { _ in
            filter.beginRebuild()
            do {
                let n = try count()
                let capacity = max(config.filterMinimumCapacity, Int(Double(n) * config.filterHeadroom))
                let f = BloomFilter(expectedCount: capacity, falsePositiveRate: config.filterFalsePositiveRate)
                try scan { f.insert($0) }
                filter.finishRebuild(f)
            } catch {
                filter.abortRebuild()
                throw error
            }
        }
    }
}

/// What Redis said about one id.
enum RedisAnswer<D> {
    case missing, negative, unreadable
    case found(D)
}
