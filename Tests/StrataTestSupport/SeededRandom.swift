import StrataCore

/// SplitMix64: a tiny seeded generator, so every randomized test case can be reproduced.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var generator: SplitMix64
    public var state: UInt64 { generator.state }
    public init(seed: UInt64) { generator = SplitMix64(state: seed) }
    public mutating func next() -> UInt64 { generator.next() }
    /// Uniform in 0..<n.
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}
