/// 64-bit FNV-1a: the offset basis, the prime and the per-byte step, stable across processes and platforms (unlike `Hasher`).
public enum FNV1a {
    public static let offsetBasis: UInt64 = 0xCBF2_9CE4_8422_2325
    public static let prime: UInt64 = 0x0000_0100_0000_01B3

    /// Folds one byte into the running hash `h`.
    @inlinable @inline(__always)
    public static func combine(_ h: inout UInt64, _ byte: UInt8) {
        h = (h ^ UInt64(byte)) &* prime
    }

    /// Folds the eight bytes of `word`, least significant first, into `h`.
    @inlinable @inline(__always)
    public static func combine(_ h: inout UInt64, word: UInt64) {
        for k in 0..<8 { combine(&h, UInt8(truncatingIfNeeded: word >> (8 * UInt64(k)))) }
    }

    /// The FNV-1a hash of `bytes`.
    @inlinable
    public static func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var h = offsetBasis
        for b in bytes { combine(&h, b) }
        return h
    }
}
