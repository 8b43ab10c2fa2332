import Logging
import StrataRedis
import Synchronization

/// The Redis tier's access path: pipelined MGET/SET through one ``RedisClient``, behind a
/// circuit breaker. Failures never escape a lookup: they open the breaker, are logged once per
/// outage and counted, and the caller falls back to the store.
final class RedisTier: Sendable {
    /// Either given, or created on first use from `clientConfig` (and again after a failed
    /// creation), so a cache can start while Redis is down.
    private let client: Mutex<RedisClient?>
    private let clientConfig: RedisConfig
    let breaker: CircuitBreaker
    private let errors: CacheCounter
    private let logger: Logger
    private let chunkSize: Int
    private let pipelineKeys: Int

    init(client: RedisClient?, clientConfig: RedisConfig, config: DimensionCacheConfig, errors: CacheCounter, logger: Logger) {
        self.client = Mutex(client)
        self.clientConfig = clientConfig
        self.breaker = CircuitBreaker(openFor: config.breakerOpenFor)
        self.errors = errors
        self.logger = logger
        self.chunkSize = max(1, config.redisChunkSize)
        self.pipelineKeys = max(1, config.redisPipelineKeys)
    }

    /// The client, connecting it first if needed (the connect counts as the call's failure).
    private func connected() throws(RedisError) -> RedisClient {
        try client.withLock { (c: inout RedisClient?) throws(RedisError) -> RedisClient in
            if let c { return c }
            let made = try RedisClient(config: clientConfig)
            c = made
            return made
        }
    }

    /// Counters of the current client (nil before it first connected).
    var stats: RedisStats? { client.withLock { $0?.stats } }

    /// Hands each value to `visit` without copying it (see ``RedisClient/mget(_:chunkSize:visit:)``);
    /// returns how many leading keys were answered: all of them when Redis is healthy, fewer when
    /// the breaker is open or a pipeline failed, and the caller asks the store for the rest.
    func mget(_ keys: [[UInt8]], visit: (Int, UnsafeRawBufferPointer?) -> Void) -> Int {
        guard !keys.isEmpty, breaker.allow() else { return 0 }
        var start = 0
        while start < keys.count {
            let end = min(start + pipelineKeys, keys.count)
            let offset = start
            do {
                try connected().mget(Array(keys[start..<end]), chunkSize: chunkSize) { i, v in visit(offset + i, v) }
            } catch {
                failed(error, during: "read")
                return start
            }
            start = end
        }
        succeeded()
        return keys.count
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
        let set = Array("SET".utf8), ex = Array("EX".utf8), nx = Array("NX".utf8)
        var start = 0
        while start < entries.count {
            let end = min(start + pipelineKeys, entries.count)
            let commands: [[[UInt8]]] = entries[start..<end].map { e in
                onlyIfAbsent ? [set, e.key, e.value, ex, Array(String(e.ttl).utf8), nx]
                             : [set, e.key, e.value, ex, Array(String(e.ttl).utf8)]
            }
            for reply in try connected().pipeline(commands) {
                switch reply {
                case .status, .null: continue // OK, or NX found the key present
                case .error(let m): throw .server(m)
                default: throw .protocolError("unexpected SET reply \(reply)")
                }
            }
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
