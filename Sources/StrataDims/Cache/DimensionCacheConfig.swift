/// Knobs of ``DimensionCache``; the defaults are DESIGN.md's.
public struct DimensionCacheConfig: Sendable {
    /// In-process entries per kind (contents, users); 0 disables the tier.
    public var localCapacity: Int = 500_000
    /// How long an in-process entry is trusted. Bounds staleness in a process that misses a
    /// changelog update (changes applied with `apply` take effect at once).
    public var localTTL: Duration = .seconds(60)
    /// Redis TTL of a dimension: base ± jitter (staggered, against avalanches).
    public var redisTTL: StaggeredTTL = StaggeredTTL(baseSeconds: 86_400, jitter: 0.2)
    /// TTL of negative entries (ids the store does not know), in Redis and in process.
    public var negativeTTL: Duration = .seconds(300)
    /// Keys per MGET command.
    public var redisChunkSize: Int = 500
    /// Keys per pipeline (one network round trip); bounds the memory of one batch.
    public var redisPipelineKeys: Int = 50_000
    /// Connections a large lookup's MGETs are spread over, read in parallel on as many threads
    /// (hiredis is synchronous). Two keep both of the reference machine's cores busy.
    public var redisConnections: Int = 2
    /// Write-back entries (ids a lookup read from the store) queued for Redis behind the lookups
    /// before a lookup waits for them to be sent. A cold minute's lookup then returns while Redis
    /// stores its answers; the bound keeps the queue's memory to ≈ 100 bytes per entry.
    public var redisWriteBackQueue: Int = 500_000
    /// Keys per connection below which a lookup stays on one connection.
    public var redisParallelFrom: Int = 5_000
    /// How long Redis is skipped after a failure before one call probes it again.
    public var breakerOpenFor: Duration = .seconds(1)
    /// How long a lookup waits for a dimension store that cannot answer, retrying with backoff,
    /// before it fails (a job then exits; its restart resumes from its last commit). A wait past
    /// the consumer's `max.poll.interval.ms` takes the job out of its group; it rejoins after and
    /// redoes its uncommitted work (`StoreOutageTests`: 14 s against a 10 s interval).
    public var storeWait: Duration = .seconds(120)
    /// Gate lookups with the valid-ID Bloom filters (ids not in the store are blocked).
    public var useValidIdFilter: Bool = true
    /// Build the filters from the store when the cache is created (otherwise nothing is blocked
    /// until ``DimensionCache/rebuildFilters()`` ran).
    public var buildFiltersOnStart: Bool = true
    /// Target false-positive rate of the filters.
    public var filterFalsePositiveRate: Double = 0.01
    /// Filters are sized for `max(minimum, count × headroom)` ids, leaving room for inserts
    /// from the changelog before the next rebuild.
    public var filterHeadroom: Double = 1.5
    public var filterMinimumCapacity: Int = 10_000
    /// Redis key prefix; keys are `<prefix>c:<content_id>` and `<prefix>u:<user_id>`.
    public var keyPrefix: String = "dim:"

    public init() {}
}

/// Counts of one cache instance since it was created (the same events also feed the
/// process-wide Prometheus counters).
public struct DimensionCacheStats: Sendable, Equatable {
    /// Ids answered by the in-process tier with a dimension.
    public var localHits = 0
    /// Ids the in-process tier did not have (asked of Redis or the store).
    public var localMisses = 0
    public var redisHits = 0
    /// Ids Redis did not have (asked of the store).
    public var redisMisses = 0
    /// Ids answered "unknown" by a negative entry (in process or in Redis).
    public var negativeHits = 0
    /// Ids asked of the store, and the queries that took (one per chunk).
    public var storeIds = 0
    public var storeQueries = 0
    /// Ids stopped by the valid-ID filter before Redis and the store.
    public var blocked = 0
    /// Failed Redis calls (reads and writes).
    public var redisErrors = 0
    /// Lookup calls that could not use Redis (outage) and went to the store instead.
    public var degradedLookups = 0
    /// Entries written to Redis (write-backs, negative entries, changelog updates).
    public var redisWrites = 0
    /// Store queries retried while the store could not answer (``DimensionCacheConfig/storeWait``).
    public var storeRetries = 0

    public init() {}
}
