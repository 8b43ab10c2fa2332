import CoreMetrics
import StrataCore
import Synchronization

/// One event counter of the cache: the instance's own atomic (for ``DimensionCacheStats``) plus
/// the process-wide Prometheus counter.
final class CacheCounter: Sendable {
    private let local = Atomic<Int>(0)
    private let metric: CoreMetrics.Counter

    init(_ metric: CoreMetrics.Counter) { self.metric = metric }

    func add(_ n: Int) {
        guard n > 0 else { return }
        local.add(n, ordering: .relaxed)
        metric.increment(by: n)
    }

    var value: Int { local.load(ordering: .relaxed) }
}

/// The counters of one kind (content or user). Metric names:
/// `strata_dim_cache_{hits,misses,negative_hits}_total{kind,tier}`,
/// `strata_dim_cache_{store_queries,store_ids,blocked,redis_writes}_total{kind}`.
final class KindCounters: Sendable {
    let localHits, localMisses, redisHits, redisMisses, negativeLocal, negativeRedis: CacheCounter
    let storeIds, storeQueries, blocked, redisWrites: CacheCounter

    init(kind: String, registry: MetricsRegistry) {
        func c(_ name: String, _ help: String, _ tier: String? = nil) -> CacheCounter {
            var labels = ["kind": kind]
            if let tier { labels["tier"] = tier }
            return CacheCounter(registry.counter("strata_dim_cache_\(name)_total", help: help, labels: labels))
        }
        localHits = c("hits", "Dimension ids answered by a cache tier", "local")
        redisHits = c("hits", "Dimension ids answered by a cache tier", "redis")
        localMisses = c("misses", "Dimension ids a cache tier did not have", "local")
        redisMisses = c("misses", "Dimension ids a cache tier did not have", "redis")
        negativeLocal = c("negative_hits", "Unknown dimension ids answered by a negative cache entry", "local")
        negativeRedis = c("negative_hits", "Unknown dimension ids answered by a negative cache entry", "redis")
        storeIds = c("store_ids", "Dimension ids looked up in the dimension store")
        storeQueries = c("store_queries", "Queries sent to the dimension store by cache misses")
        blocked = c("blocked", "Dimension ids stopped by the valid-ID filter before Redis and the store")
        redisWrites = c("redis_writes", "Dimension cache entries written to Redis")
    }
}
