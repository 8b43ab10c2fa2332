/// SplitMix64 (Steele, Lea & Flood): a tiny seeded generator; its sequence for a seed is fixed, so tests and demo data that depend on it stay reproducible.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The golden-ratio increment added to the state before each output.
    public static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15

    public var state: UInt64

    @inlinable
    public init(state: UInt64) { self.state = state }

    @inlinable @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= Self.gamma
        return Self.mix(state)
    }

    /// SplitMix64's finalizer; a bijection on UInt64, so distinct inputs give distinct outputs.
    @inlinable @inline(__always)
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
