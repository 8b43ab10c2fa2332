import StrataCore

/// Redis TTLs with jitter: base ± up to `jitter`·base, uniformly, so entries written together
/// (a cold start, a bulk load) expire spread over a window instead of in one instant, and the
/// store never sees all of them come back at once (no cache avalanche).
public struct StaggeredTTL: Sendable, Equatable {
    public var baseSeconds: Int
    /// Fraction of the base, in 0..<1 (0.2 = ±20 %).
    public var jitter: Double

    public init(baseSeconds: Int, jitter: Double) {
        precondition(baseSeconds > 0, "baseSeconds must be positive")
        precondition(jitter >= 0 && jitter < 1, "jitter must be in 0..<1")
        self.baseSeconds = baseSeconds
        self.jitter = jitter
    }

    /// The range every TTL falls in.
    public var range: ClosedRange<Int> {
        let spread = Int((Double(baseSeconds) * jitter).rounded(.down))
        return max(1, baseSeconds - spread)...(baseSeconds + spread)
    }

    /// One TTL in seconds, uniform over ``range``.
    public func next<R: RandomNumberGenerator>(using rng: inout R) -> Int {
        let r = range
        return r.lowerBound + Int(rng.next(upperBound: UInt64(r.count)))
    }
}

extension SplitMix64 {
    /// A generator seeded once per batch from the system source, so a batch of a million TTLs
    /// costs no system calls.
    static func systemSeeded() -> SplitMix64 {
        var system = SystemRandomNumberGenerator()
        return SplitMix64(state: system.next())
    }
}
