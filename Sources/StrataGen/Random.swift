import Foundation
import StrataCore

/// xoshiro256** seeded through SplitMix64: our own PRNG so a seed gives the same bytes on every
/// platform and Swift version (SystemRandomNumberGenerator cannot be seeded). Public for tools
/// that need the same seeded choices as the workload (e.g. a benchmark's partition choice).
public struct Xoshiro256: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var seeder = SplitMix64(state: seed)
        s0 = seeder.next(); s1 = seeder.next(); s2 = seeder.next(); s3 = seeder.next()
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = (s1 &* 5).rotl(7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = s3.rotl(45)
        return result
    }

    /// Uniform in [0, 1) with 53 bits.
    @inline(__always)
    mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in 0..<n (Lemire's multiply-high; the bias is below 2^-40 for our n).
    @inline(__always)
    public mutating func below(_ n: Int) -> Int {
        Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(n)).high)
    }

    @inline(__always)
    mutating func chance(_ p: Double) -> Bool { unit() < p }
}

extension UInt64 {
    @inline(__always)
    fileprivate func rotl(_ k: UInt64) -> UInt64 { (self << k) | (self >> (64 - k)) }
}

/// Zipf(s) over ranks 0..<n via a precomputed CDF and binary search. Sampling happens once per
/// session (not per event), so the O(log n) search is not on the per-event path.
struct ZipfSampler: Sendable {
    private let cdf: [Double]

    init(n: Int, exponent s: Double) {
        precondition(n > 0)
        var cdf = [Double](repeating: 0, count: n)
        var sum = 0.0
        for k in 0..<n {
            sum += 1.0 / Foundation.pow(Double(k + 1), s)
            cdf[k] = sum
        }
        for k in 0..<n { cdf[k] /= sum }
        cdf[n - 1] = 1.0
        self.cdf = cdf
    }

    /// The first rank whose cumulative probability exceeds u.
    func sample(_ u: Double) -> Int {
        var lo = 0, hi = cdf.count - 1
        while lo < hi {
            let mid = (lo + hi) >> 1
            if cdf[mid] > u { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}
