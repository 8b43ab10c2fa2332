import Dispatch
import Logging
import StrataRedis
import Synchronization

/// The Redis tier's access path: pipelined MGET/SET through ``RedisClient``s, behind a circuit
/// breaker. Failures never escape a lookup: they open the breaker, are logged once per outage
/// and counted, and the caller falls back to the store.
///
/// Large lookups are split over `config.redisConnections` connections read in parallel:
/// hiredis is synchronous, and with one connection the client's parsing and Redis's work
/// mostly take turns instead of overlapping.
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

    init(client: RedisClient?, clientConfig: RedisConfig, config: DimensionCacheConfig, errors: CacheCounter, logger: Logger) {
        clients = (0..<max(1, config.redisConnections)).map { ClientSlot($0 == 0 ? client : nil) }
        self.clientConfig = clientConfig
        self.breaker = CircuitBreaker(openFor: config.breakerOpenFor)
        self.errors = errors
        self.logger = logger
        self.chunkSize = max(1, config.redisChunkSize)
        self.pipelineKeys = max(1, config.redisPipelineKeys)
        parallelFrom = max(1, config.redisParallelFrom)
    }

    /// The client of slot `i`, connecting it first if needed (the connect counts as the call's failure).
    private func connected(_ i: Int = 0) throws(RedisError) -> RedisClient {
        try clients[i].client.withLock { (c: inout RedisClient?) throws(RedisError) -> RedisClient in
            if let c { return c }
            let made = try RedisClient(config: clientConfig)
            c = made
            return made
        }
    }

    /// Counters summed over the connected clients (nil before the first connected).
    var stats: RedisStats? {
        var sum: RedisStats?
        for slot in clients {
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
    /// the meantime is never replaced by an older store read; `replacing` (entries found
    /// unreadable) are overwritten. Skipped while the breaker is open.
    func writeBack(_ entries: [(key: [UInt8], value: [UInt8], ttl: Int)],
                   replacing: [(key: [UInt8], value: [UInt8], ttl: Int)] = []) -> Bool {
        guard !entries.isEmpty || !replacing.isEmpty, breaker.allow() else { return false }
        do {
            try set(entries, onlyIfAbsent: true)
            try set(replacing, onlyIfAbsent: false)
            succeeded()
            return true
        } catch {
            failed(error, during: "write-back")
            return false
        }
    }

    /// Changelog updates: plain `SET … EX ttl` (replaces), tried even while the breaker is open
    /// because the caller must learn whether the update reached Redis.
    func overwrite(_ entries: [(key: [UInt8], value: [UInt8], ttl: Int)]) throws(RedisError) {
        guard !entries.isEmpty else { return }
        do {
            try set(entries, onlyIfAbsent: false)
            succeeded()
        } catch {
            failed(error, during: "changelog update")
            throw error
        }
    }

    private func set(_ entries: [(key: [UInt8], value: [UInt8], ttl: Int)], onlyIfAbsent: Bool) throws(RedisError) {
        var start = 0
        while start < entries.count {
            let end = min(start + pipelineKeys, entries.count)
            try connected().set(entries[start..<end].map { (key: $0.key, value: $0.value, ttlSeconds: Optional($0.ttl)) },
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
