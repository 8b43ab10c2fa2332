import Synchronization

/// Per-key token buckets: each key (a site key, a user, a client address) may make `rate`
/// requests a second with bursts of up to `burst`. A refused request learns how long until a token
/// is back (the `Retry-After`). Keys are spread over shards so concurrent requests rarely share a
/// lock; keys idle long enough to have refilled are forgotten, which bounds memory.
public final class RateLimiter: Sendable {
    public let rate: Double
    public let burst: Double

    private struct Bucket {
        var tokens: Double
        var last: UInt64
    }

    private struct Shard {
        var buckets: [String: Bucket] = [:]
        var lastCleanup: UInt64 = 0
    }

    /// A lock per shard (a class, since `Mutex` itself cannot sit in an array).
    private final class Locked: Sendable {
        let state = Mutex(Shard())
    }

    private static let shardCount = 16
    private let shards: [Locked]
    private let clock: @Sendable () -> UInt64

    /// `clock` returns nanoseconds (monotonic); tests pass their own.
    public init(rate: Double, burst: Double, clock: @escaping @Sendable () -> UInt64 = RateLimiter.monotonicNanos) {
        precondition(rate > 0 && burst >= 1)
        self.rate = rate
        self.burst = burst
        self.clock = clock
        shards = (0..<Self.shardCount).map { _ in Locked() }
    }

    private static let epoch = ContinuousClock.now

    /// Nanoseconds on the monotonic clock since the first use.
    public static func monotonicNanos() -> UInt64 {
        let d = epoch.duration(to: .now)
        return UInt64(d.components.seconds) * 1_000_000_000 + UInt64(d.components.attoseconds / 1_000_000_000)
    }

    /// nil when allowed (a token was taken); else the seconds until one is back (≥ 1).
    public func take(_ key: String) -> Int? {
        let now = clock()
        var h = Hasher()
        h.combine(key)
        let shard = shards[Int(UInt(bitPattern: h.finalize()) % UInt(Self.shardCount))]
        return shard.state.withLock { s -> Int? in
            cleanup(&s, now: now)
            var b = s.buckets[key] ?? Bucket(tokens: burst, last: now)
            let elapsed = Double(now &- b.last) / 1e9
            b.tokens = min(burst, b.tokens + elapsed * rate)
            b.last = now
            if b.tokens >= 1 {
                b.tokens -= 1
                s.buckets[key] = b
                return nil
            }
            s.buckets[key] = b
            return max(1, Int(((1 - b.tokens) / rate).rounded(.up)))
        }
    }

    /// A bucket that has been idle long enough to refill is the same as no bucket: drop it.
    private func cleanup(_ s: inout Shard, now: UInt64) {
        let full = UInt64(burst / rate * 1e9) + 1_000_000_000
        guard now &- s.lastCleanup > full, s.buckets.count > 1024 else { return }
        s.lastCleanup = now
        s.buckets = s.buckets.filter { now &- $0.value.last < full }
    }
}
