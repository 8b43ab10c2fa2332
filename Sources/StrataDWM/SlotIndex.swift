// Open-addressing index from a 64-bit hash to a dense id (0, 1, 2, …). A slot is 4 bytes: the id
// plus a 5-bit fingerprint of the hash, so a probe rarely touches the caller's storage (where the
// keys live) for a key that is not there. Linear probing, power-of-two capacity, grown at 70 % load
// by re-inserting ids in order.

struct SlotIndex {
    private var slots: UnsafeMutablePointer<UInt32>   // 0 = empty, else fingerprint << 27 | (id + 1)
    private var mask: Int
    private(set) var count = 0

    static let notFound = UInt32.max
    /// Ids must stay below this (134 M entries per table).
    static let maxCount = (1 << 27) - 2
    private static let idMask: UInt32 = (1 << 27) - 1

    init(capacity: Int = 16) {
        var c = 16
        while c < capacity { c <<= 1 }
        slots = .allocate(capacity: c)
        slots.initialize(repeating: 0, count: c)
        mask = c - 1
    }

    var capacity: Int { mask + 1 }

    @inline(__always)
    private static func fingerprint(_ hash: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: hash >> 59) }

    /// The id whose key matches, or `notFound` and the empty slot where it would go.
    @inline(__always)
    func find(_ hash: UInt64, _ isMatch: (UInt32) -> Bool) -> (id: UInt32, slot: Int) {
        let fp = Self.fingerprint(hash)
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let s = slots[i]
            if s == 0 { return (Self.notFound, i) }
            if s >> 27 == fp {
                let id = (s & Self.idMask) &- 1
                if isMatch(id) { return (id, i) }
            }
            i = (i &+ 1) & mask
        }
    }

    /// Records `id` (== count: ids are dense) for `hash` at an empty `slot` returned by `find`.
    /// `hashOf` re-hashes existing ids when the table grows.
    @inline(__always)
    mutating func insert(_ id: UInt32, hash: UInt64, at slot: Int, hashOf: (UInt32) -> UInt64) {
        precondition(count < Self.maxCount, "SlotIndex: more than \(Self.maxCount) entries")
        slots[slot] = Self.fingerprint(hash) << 27 | (id &+ 1)
        count += 1
        if count * 10 > capacity * 7 { grow(hashOf) }
    }

    private mutating func grow(_ hashOf: (UInt32) -> UInt64) {
        let c = capacity * 2
        slots.deallocate()
        slots = .allocate(capacity: c)
        slots.initialize(repeating: 0, count: c)
        mask = c - 1
        for id in 0..<UInt32(count) {
            let h = hashOf(id)
            var i = Int(truncatingIfNeeded: h) & mask
            while slots[i] != 0 { i = (i &+ 1) & mask }
            slots[i] = Self.fingerprint(h) << 27 | (id &+ 1)
        }
    }

    /// Empties the index, keeping its capacity.
    mutating func removeAll() {
        guard count > 0 else { return }   // the job empties its batch at commit and again before the next collect
        slots.update(repeating: 0, count: capacity)
        count = 0
    }

    func deallocate() { slots.deallocate() }

    var allocatedBytes: Int { capacity * 4 }
}
