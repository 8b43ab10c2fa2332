import StrataCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
public import Darwin
#endif

/// A Bloom filter over id bytes: "definitely not present" or "probably present".
///
/// Sized for an expected count and false-positive rate: m = −n·ln p / ln²2 bits and
/// k = m/n·ln 2 hash functions, the k positions derived by double hashing
/// (g_i = h1 + i·h2 mod m) from one 64-bit hash of the bytes.
///
/// Bits are atomic words, so `insert` (from changelog updates) may run while other threads call
/// `mightContain`; both are lock- and allocation-free. Relaxed ordering is enough: a reader racing
/// an insert of the same id may answer either way, and the cache tolerates "not yet".
public final class BloomFilter: @unchecked Sendable {
    // @unchecked: `words` is only accessed through atomics and freed in deinit.
    public let bitCount: Int
    public let hashCount: Int
    /// The count the filter was sized for; past it the false-positive rate rises.
    public let expectedCount: Int
    public let falsePositiveRate: Double
    private let wordCount: Int
    private let words: UnsafeMutablePointer<Atomic<UInt64>>
    private let inserted = Atomic<Int>(0)

    public init(expectedCount: Int, falsePositiveRate: Double = 0.01) {
        precondition(falsePositiveRate > 0 && falsePositiveRate < 1, "falsePositiveRate must be in (0, 1)")
        let n = Double(max(1, expectedCount))
        let ln2 = 0.693_147_180_559_945_3
        let m = max(64, Int((-n * log(falsePositiveRate) / (ln2 * ln2)).rounded(.up)))
        self.expectedCount = max(1, expectedCount)
        self.falsePositiveRate = falsePositiveRate
        self.wordCount = (m + 63) / 64
        self.bitCount = wordCount * 64
        self.hashCount = max(1, min(30, Int((Double(bitCount) / n * ln2).rounded())))
        words = .allocate(capacity: wordCount)
        for i in 0..<wordCount { (words + i).initialize(to: Atomic(0)) }
    }

    deinit {
        words.deinitialize(count: wordCount)
        words.deallocate()
    }

    /// Ids inserted so far (with repeats).
    public var insertedCount: Int { inserted.load(ordering: .relaxed) }

    /// More ids inserted than the filter was sized for: time to rebuild it bigger.
    public var isOverCapacity: Bool { insertedCount > expectedCount }

    public func insert(_ bytes: UnsafeRawBufferPointer) {
        var (h, step) = Self.hashes(bytes)
        let m = UInt64(bitCount)
        for _ in 0..<hashCount {
            let bit = Int(h % m)
            words[bit >> 6].bitwiseOr(1 << UInt64(bit & 63), ordering: .relaxed)
            h &+= step
        }
        inserted.add(1, ordering: .relaxed)
    }

    public func insert(_ id: String) {
        var id = id
        id.withUTF8 { insert(UnsafeRawBufferPointer($0)) }
    }

    /// False: the id was never inserted. True: it probably was (false positives at about the
    /// configured rate while within the expected count).
    public func mightContain(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var (h, step) = Self.hashes(bytes)
        let m = UInt64(bitCount)
        for _ in 0..<hashCount {
            let bit = Int(h % m)
            if words[bit >> 6].load(ordering: .relaxed) & (1 << UInt64(bit & 63)) == 0 { return false }
            h &+= step
        }
        return true
    }

    public func mightContain(_ id: String) -> Bool {
        var id = id
        return id.withUTF8 { mightContain(UnsafeRawBufferPointer($0)) }
    }

    /// The fraction of bits set: the false-positive rate is about `fillRatio ^ hashCount`.
    public var fillRatio: Double {
        var set = 0
        for i in 0..<wordCount { set += words[i].load(ordering: .relaxed).nonzeroBitCount }
        return Double(set) / Double(bitCount)
    }

    /// h1 and an odd h2 (odd, so the k positions differ whenever m is a power of two too),
    /// from FNV-1a over 8-byte words, finalised by two SplitMix64 mixes.
    @inline(__always)
    static func hashes(_ bytes: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        // FNV-1a's constants, but a word at a time with an extra shift: not `FNV1a.hash`, and
        // kept so because it is the lookup's hot path and its filters' bit positions must not change.
        var h = FNV1a.offsetBasis
        let prime = FNV1a.prime
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            h = (h ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* prime
            h ^= h >> 29
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            tail |= UInt64(bytes[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ tail ^ (UInt64(n) << 56)) &* prime
        let h1 = SplitMix64.mix(h)
        let h2 = SplitMix64.mix(h1 ^ SplitMix64.gamma) | 1
        return (h1, h2)
    }
}
