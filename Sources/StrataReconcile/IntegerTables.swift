/// Open-addressing tables keyed by UInt64 for the scan's hot path. Swift's Set and Dictionary hash
/// every key with SipHash (seeded, collision-resistant); these keys are already hashes or packed
/// integers, so Fibonacci hashing (one multiply, the product's top bits) spreads them enough, at a
/// fraction of the cost.
/// Key 0 is reserved as "empty" and stored aside.
struct UInt64Set {
    private var slots: [UInt64]
    private var mask: Int
    private var shift: UInt64
    private var hasZero = false
    private(set) var count = 0

    init(capacity: Int = 1 << 16) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = Array(repeating: 0, count: size)
        mask = size - 1
        shift = Self.shift(for: size)
    }

    /// The slot of `k` in a table of 2^(64 − shift) slots: the top bits of k × 2^64/φ.
    @inline(__always) static func spread(_ k: UInt64, _ shift: UInt64) -> Int {
        Int(truncatingIfNeeded: (k &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    static func shift(for size: Int) -> UInt64 { UInt64(64 - size.trailingZeroBitCount) }

    /// True when `key` was not in the set.
    @inline(__always)
    mutating func insert(_ key: UInt64) -> Bool {
        if key == 0 {
            if hasZero { return false }
            hasZero = true
            count += 1
            return true
        }
        var i = Self.spread(key, shift)
        while true {
            let v = slots[i]
            if v == key { return false }
            if v == 0 { break }
            i = (i + 1) & mask
        }
        slots[i] = key
        count += 1
        if count * 2 > slots.count { grow() }
        return true
    }

    func contains(_ key: UInt64) -> Bool {
        if key == 0 { return hasZero }
        var i = Self.spread(key, shift)
        while true {
            let v = slots[i]
            if v == key { return true }
            if v == 0 { return false }
            i = (i + 1) & mask
        }
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: 0, count: old.count * 2)
        mask = slots.count - 1
        shift = Self.shift(for: slots.count)
        for k in old where k != 0 {
            var i = Self.spread(k, shift)
            while slots[i] != 0 { i = (i + 1) & mask }
            slots[i] = k
        }
    }

    /// Every key (order unspecified).
    func forEach(_ body: (UInt64) -> Void) {
        if hasZero { body(0) }
        for k in slots where k != 0 { body(k) }
    }
}

/// UInt64 → Int32 (row indexes), same scheme as ``UInt64Set``; key UInt64.max is reserved.
struct UInt64IndexMap {
    private var keys: [UInt64]
    private var values: [Int32]
    private var mask: Int
    private var shift: UInt64
    private(set) var count = 0
    static let empty = UInt64.max

    init(capacity: Int = 1 << 14) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = Array(repeating: Self.empty, count: size)
        values = Array(repeating: 0, count: size)
        mask = size - 1
        shift = UInt64Set.shift(for: size)
    }

    @inline(__always)
    subscript(key: UInt64) -> Int32? {
        var i = UInt64Set.spread(key, shift)
        while true {
            let k = keys[i]
            if k == key { return values[i] }
            if k == Self.empty { return nil }
            i = (i + 1) & mask
        }
    }

    /// The value for `key`, inserting `make()` when absent.
    @inline(__always)
    mutating func value(for key: UInt64, orInsert make: () -> Int32) -> Int32 {
        var i = UInt64Set.spread(key, shift)
        while true {
            let k = keys[i]
            if k == key { return values[i] }
            if k == Self.empty { break }
            i = (i + 1) & mask
        }
        let v = make()
        keys[i] = key
        values[i] = v
        count += 1
        if count * 2 > keys.count { grow() }
        return v
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        keys = Array(repeating: Self.empty, count: oldKeys.count * 2)
        values = Array(repeating: 0, count: oldKeys.count * 2)
        mask = keys.count - 1
        shift = UInt64Set.shift(for: keys.count)
        for (j, k) in oldKeys.enumerated() where k != Self.empty {
            var i = UInt64Set.spread(k, shift)
            while keys[i] != Self.empty { i = (i + 1) & mask }
            keys[i] = k
            values[i] = oldValues[j]
        }
    }
}
