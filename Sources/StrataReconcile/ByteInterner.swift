#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Distinct byte strings (content ids, user ids) → dense ids 0, 1, 2…, looked up from a raw
/// buffer without building a String: open addressing over a flat arena of the bytes.
struct ByteInterner {
    private var slots: [Int32]
    private var hashes: [UInt64] = []
    /// offsets[id] ..< offsets[id + 1] in `arena`.
    private var offsets: [Int] = [0]
    private var arena: [UInt8] = []
    private var mask: Int

    init(capacity: Int = 1 << 12) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = Array(repeating: -1, count: size)
        mask = size - 1
    }

    var count: Int { hashes.count }

    /// 64-bit hash of bytes (word-at-a-time multiply-xorshift; only needs to spread well).
    @inline(__always)
    static func hash(_ b: UnsafeRawBufferPointer, seed: UInt64 = 0x243F_6A88_85A3_08D3) -> UInt64 {
        var h = seed ^ (UInt64(b.count) &* 0x9E37_79B9_7F4A_7C15)
        var i = 0
        let n = b.count
        if let base = b.baseAddress {
            while n - i >= 8 {
                h = (h ^ base.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
                h ^= h >> 29
                i += 8
            }
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while i < n {
                tail |= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) << shift
                shift += 8
                i += 1
            }
            h = (h ^ tail) &* 0x94D0_49BB_1331_11EB
        }
        h ^= h >> 31
        h = h &* 0xD6E8_FEB8_6659_FD93
        return h ^ (h >> 32)
    }

    @inline(__always)
    private func equals(_ id: Int, _ b: UnsafeRawBufferPointer) -> Bool {
        let start = offsets[id], len = offsets[id + 1] - start
        guard len == b.count else { return false }
        if len == 0 { return true }
        return arena.withUnsafeBytes { a in
            guard let ab = a.baseAddress, let bb = b.baseAddress else { return false }
            return memcmp(ab + start, bb, len) == 0
        }
    }

    func find(_ b: UnsafeRawBufferPointer) -> UInt32? {
        let h = Self.hash(b)
        var s = Int(truncatingIfNeeded: h) & mask
        while true {
            let id = slots[s]
            if id < 0 { return nil }
            if hashes[Int(id)] == h && equals(Int(id), b) { return UInt32(id) }
            s = (s + 1) & mask
        }
    }

    /// The id of `b`, adding it when new; `isNew` tells which.
    @inline(__always)
    mutating func intern(_ b: UnsafeRawBufferPointer, isNew: inout Bool) -> UInt32 {
        let h = Self.hash(b)
        var s = Int(truncatingIfNeeded: h) & mask
        while true {
            let id = slots[s]
            if id < 0 { break }
            if hashes[Int(id)] == h && equals(Int(id), b) { isNew = false; return UInt32(id) }
            s = (s + 1) & mask
        }
        isNew = true
        let id = hashes.count
        hashes.append(h)
        arena.append(contentsOf: b)
        offsets.append(arena.count)
        slots[s] = Int32(id)
        if hashes.count * 2 > slots.count { grow() }
        return UInt32(id)
    }

    mutating func intern(_ s: String) -> UInt32 {
        var s = s
        var isNew = false
        return s.withUTF8 { intern(UnsafeRawBufferPointer($0), isNew: &isNew) }
    }

    func find(_ s: String) -> UInt32? {
        var s = s
        return s.withUTF8 { find(UnsafeRawBufferPointer($0)) }
    }

    private mutating func grow() {
        let size = slots.count * 2
        slots = Array(repeating: -1, count: size)
        mask = size - 1
        for (id, h) in hashes.enumerated() {
            var s = Int(truncatingIfNeeded: h) & mask
            while slots[s] >= 0 { s = (s + 1) & mask }
            slots[s] = Int32(id)
        }
    }

    func string(_ id: UInt32) -> String {
        let i = Int(id)
        return String(decoding: arena[offsets[i]..<offsets[i + 1]], as: UTF8.self)
    }
}
