// 64-bit hashing of short byte strings (ids), after wyhash's structure: word loads and 64×64→128
// multiplies, no per-byte loop. Event-id hashes are the dedupe keys of a cell; content and user
// hashes key the engine's intern tables and the dimension cache's in-process tier. They are never
// persisted (replay rebuilds them), so the values only need to be stable within one process.

public enum ByteHash {
    // Computed, so that code inlined into other modules gets the constants, not a global's accessor.
    @inlinable public static var s0: UInt64 { 0xA076_1D64_78BD_642F }
    @inlinable public static var s1: UInt64 { 0xE703_7ED1_A0B4_28DB }

    @inlinable @inline(__always)
    public static func mum(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let m = a.multipliedFullWidth(by: b)
        return m.high ^ m.low
    }

    @inlinable @inline(__always)
    static func r8(_ p: UnsafeRawPointer) -> UInt64 { UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)) }

    @inlinable @inline(__always)
    static func r4(_ p: UnsafeRawPointer) -> UInt64 { UInt64(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))) }

    @inlinable @inline(__always)
    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let n = bytes.count
        var h = seed ^ mum(seed ^ s0, s1)
        var a: UInt64 = 0, b: UInt64 = 0
        if let p = bytes.baseAddress, n > 0 {
            if n <= 16 {
                if n >= 4 {
                    let q = (n >> 3) << 2
                    a = (r4(p) << 32) | r4(p + q)
                    b = (r4(p + n - 4) << 32) | r4(p + n - 4 - q)
                } else {
                    a = UInt64(p.load(as: UInt8.self)) << 16
                        | UInt64(p.load(fromByteOffset: n >> 1, as: UInt8.self)) << 8
                        | UInt64(p.load(fromByteOffset: n - 1, as: UInt8.self))
                }
            } else {
                var q = p
                var i = n
                while i > 16 {
                    h = mum(r8(q) ^ s1, r8(q + 8) ^ h)
                    q += 16
                    i -= 16
                }
                a = r8(q + i - 16)
                b = r8(q + i - 8)
            }
        }
        let m = (a ^ s1).multipliedFullWidth(by: b ^ h)
        return mum(m.low ^ s0 ^ UInt64(n), m.high ^ s1)
    }

    /// Mixes an integer key (packed cell key, content index) into a well-spread hash.
    @inlinable @inline(__always)
    public static func mix(_ x: UInt64) -> UInt64 {
        mum(x ^ s0, s1)
    }
}
