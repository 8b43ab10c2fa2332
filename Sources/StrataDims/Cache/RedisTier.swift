import CoreMetrics
import Dispatch
import Logging
import StrataCore
import StrataRedis
import Synchronization

/// The Redis tier's access path: pipelined MGET/SET through ``RedisClient``s, behind a circuit
/// breaker. Failures never escape a lookup: they open the breaker, are logged once per outage
/// and counted, and the caller falls back to the store.
///
/// Large lookups are split over `config.redisConnections` connections read in parallel:
/// hiredis is synchronous, and with one connection the client's parsing and Redis's work
/// mostly take turns instead of overlapping.
///
/// Lookup write-backs are sent behind the lookup, from a queue of their own on a connection of
/// their own: a cold lookup's answer does not wait for Redis to store what the store said (half
/// of a cold lookup's time was Redis working through the `SET … NX`s).
final class RedisTier: Sendable {
    /// One slot per connection, each either given (the first) or created on first use from
    /// `clientConfig` (and again after a failed creation), so a cache can start while Redis is
    /// down. Writes go through the first.
    private let clients: [ClientSlot]
    private let clientConfig: RedisConfig
    let breaker: CircuitBreaker
    private let errors: CacheCounter
    private let logger: Logger
    private let chunkSize: Int
    private let pipelineKeys: Int
    /// Below this many keys a lookup uses one connection (threads cost more than they save).
    private let parallelFrom: Int
    /// The write-behind: its own connection, a serial queue, and the entries queued on it.
    private let writer: ClientSlot
    private let writeQueue = DispatchQueue(label: "strata.dims.redis-write-back")
    private let pendingWrites = Atomic<Int>(0)
    private let pendingLimit: Int
    private let pendingGauge: CoreMetrics.Recorder

    init(client: RedisClient?, clientConfig: RedisConfig, config: DimensionCacheConfig, errors: CacheCounter,
         metrics: MetricsRegistry, logger: Logger) {
        clients = (0..<max(1, config.redisConnections)).map { ClientSlot($0 == 0 ? client : nil) }
        writer = ClientSlot(nil)
        pendingLimit = max(1, config.redisWriteBackQueue)
        pendingGauge = metrics.gauge("strata_dim_cache_redis_write_back_pending",
                                     help: "Dimension cache write-backs queued for Redis, not yet sent")
        self.clientConfig = clientConfig
        self.breaker = CircuitBreaker(openFor: config.breakerOpenFor)
        self.errors = errors
        self.logger = logger
        self.chunkSize = max(1, config.redisChunkSize)
        self.pipelineKeys = max(1, config.redisPipelineKeys)
        parallelFrom = max(1, config.redisParallelFrom)
    }

    /// The client of slot `i`, connecting it first if needed (the connect counts as the call's failure).
    private func connected(_ i: Int = 0) throws(RedisError) -> RedisClient { try connected(clients[i]) }

    private func connected(_ slot: ClientSlot) throws(RedisError) -> RedisClient {
        try slot.client.withLock { (c: inout RedisClient?) throws(RedisError) -> RedisClient in
            if let c { return c }
            let made = try RedisClient(config: clientConfig)
            c = made
            return made
        }
    }

    /// Counters summed over the connected clients (nil before the first connected).
    var stats: RedisStats? {
        var sum: RedisStats?
        for slot in clients + [writer] {
            guard let s = slot.client.withLock({ $0?.stats }) else { continue }
            var t = sum ?? RedisStats(roundTrips: 0, commands: 0, reconnects: 0, errors: 0)
            t.roundTrips += s.roundTrips
            t.commands += s.commands
            t.reconnects += s.reconnects
            t.errors += s.errors
            sum = t
        }
        return sum
    }

    /// Hands the value of each key `prefix + ids[i]` to `visit(i, value)` without copying it
    /// (see ``RedisClient/mget(prefix:ids:chunkSize:visit:)``); returns how many leading ids were
    /// answered: all of them when Redis is healthy, fewer when the breaker is open or a pipeline
    /// failed, and the caller asks the store for the rest. With several connections `visit` is
    /// called from several threads at once, for disjoint indices.
    func mget(prefix: [UInt8], ids: [String], visit: (Int, UnsafeRawBufferPointer?) -> Void) -> Int {
        guard !ids.isEmpty, breaker.allow() else { return 0 }
        let parts = min(clients.count, max(1, ids.count / parallelFrom))
        if parts == 1 {
            let (done, error) = read(slot: 0, prefix: prefix, ids[...], visit: visit)
            if let error { failed(error, during: "read"); return done }
            succeeded()
            return ids.count
        }
        // Contiguous parts, one per connection and thread; each reports how far it got.
        let bounds = (0...parts).map { ids.count * $0 / parts }
        var results = [(done: Int, error: RedisError?)](repeating: (0, nil), count: parts)
        withoutActuallyEscaping(visit) { visit in
            results.withUnsafeMutableBufferPointer { out in
                // Each thread writes its own part's results and indices only.
                let shared = Unchecked((visit: visit, out: out))
                DispatchQueue.concurrentPerform(iterations: parts) { p in
                    let r = read(slot: p, prefix: prefix, ids[bounds[p]..<bounds[p + 1]], visit: shared.value.visit)
                    shared.value.out[p] = (r.0 - bounds[p], r.1)
                }
            }
        }
        var answered = 0
        for (p, r) in results.enumerated() {
            if let error = r.error {
                failed(error, during: "read")
                return answered + r.done
            }
            answered = bounds[p + 1]
        }
        succeeded()
        return answered
    }

    /// Reads `ids` through slot `slot` in pipelines of `pipelineKeys`; returns the index after the
    /// last answered pipeline and the error that stopped it, if any.
    private func read(slot: Int, prefix: [UInt8], _ ids: ArraySlice<String>, visit: (Int, UnsafeRawBufferPointer?) -> Void) -> (Int, RedisError?) {
        var start = ids.startIndex
        while start < ids.endIndex {
            let end = min(start + pipelineKeys, ids.endIndex)
            do {
                try connected(slot).mget(prefix: prefix, ids: ids[start..<end], chunkSize: chunkSize, visit: visit)
            } catch {
                return (start, error)
            }
            start = end
        }
        return (ids.endIndex, nil)
    }

    /// Write-back of lookup results: `SET … EX ttl NX`, so an entry a changelog update wrote in
    /// the meantime is never replaced by an older store read. Sent behind the lookup (see the
    /// type's note): `written(n)` is called on the write-back queue once `n` entries are stored.
    /// A lookup waits only when `config.redisWriteBackQueue` entries are queued already (it then
    /// waits for the queue to drain: the memory stays bounded, and nothing is dropped).
    /// `replacing` (entries found unreadable) are overwritten at once, on the caller's thread: a
    /// plain `SET` sent later could replace what a changelog update wrote in between.
    /// Skipped while the breaker is open; a write-back never probes Redis (the lookups' reads do).
    func writeBack(_ entries: [(key: [UInt8], value: [UInt8], ttl: Int)],
                   replacing: [(key: [UInt8], value: [UInt8], ttl: Int)] = [], written: @escaping @Sendable (Int) -> Void) {
        guard !entries.isEmpty || !replacing.isEmpty, !breaker.isOpen else { return }
        if !replacing.isEmpty {
            do {
                try set(replacing, onlyIfAbsent: false, through: clients[0])
                succeeded()
                written(replacing.count)
            } catch {
                failed(error, during: "write-back")
                return
            }
        }
        guard !entries.isEmpty else { return }
        let queued = pendingWrites.load(ordering: .relaxed)
        if queued > 0 && queued + entries.count > pendingLimit { writeQueue.sync {} }
        pendingGauge.record(Int64(pendingWrites.add(entries.count, ordering: .relaxed).newValue))
        writeQueue.async { [self] in
            defer { pendingGauge.record(Int64(pendingWrites.subtract(entries.count, ordering: .relaxed).newValue)) }
            guard !breaker.isOpen else { return } // Redis failed since: the entries are not kept
            do throws(RedisError) {
                try set(entries, onlyIfAbsent: true, through: writer)
                succeeded()
                written(entries.count)
            } catch {
                failed(error, during: "write-back")
            }
        }
    }

    /// Returns once every write-back queued before the call has been sent (or given up).
    func awaitWriteBack() { writeQueue.sync {} }

    /// Tests: holds the queued write-backs until ``resumeWriteBack()`` (a lookup that would have
    /// to wait for the queue then waits until it resumes).
    func suspendWriteBack() { writeQueue.suspend() }
    func resumeWriteBack() { writeQueue.resume() }

    /// Changelog updates: plain `SET … EX ttl` (replaces), tried even while the breaker is open
    /// because the caller must learn whether the update reached Redis.
    func overwrite(_ entries: [(key: [UInt8], value: [UInt8], ttl: Int)]) throws(RedisError) {
        guard !entries.isEmpty else { return }
        do {
            try set(entries, onlyIfAbsent: false, through: clients[0])
            succeeded()
        } catch {
            failed(error, during: "changelog update")
            throw error
        }
    }

    private func set(_ entries: [(key: [UInt8], value: [UInt8], ttl: Int)], onlyIfAbsent: Bool,
                     through slot: ClientSlot) throws(RedisError) {
        var start = 0
        while start < entries.count {
            let end = min(start + pipelineKeys, entries.count)
            try connected(slot).set(entries[start..<end].map { (key: $0.key, value: $0.value, ttlSeconds: Optional($0.ttl)) },
                                onlyIfAbsent: onlyIfAbsent)
            start = end
        }
    }

    private func succeeded() {
        if breaker.succeeded() {
            logger.notice("redis is reachable again; dimension lookups use the redis tier")
        }
    }

    private func failed(_ error: RedisError, during what: String) {
        errors.add(1)
        if breaker.failed() {
            logger.warning("redis unavailable; dimension lookups go to the store until it returns",
                           metadata: ["error": "\(error)", "during": "\(what)"])
        }
    }
}

/// One connection's client (a class: a `Mutex` cannot sit in an array).
private final class ClientSlot: Sendable {
    let client: Mutex<RedisClient?>
    init(_ client: RedisClient?) { self.client = Mutex(client) }
}

/// Lends the reading threads what the caller guarantees they use apart (disjoint indices).
private struct Unchecked<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
