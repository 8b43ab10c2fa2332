import CPrefetch
import Dispatch
import StrataCore

/// The in-process tier: a bounded map with two generations ("LRU-ish"). Entries go into `young`
/// until it has taken half the capacity; then `young` becomes `old` and the previous `old` is
/// dropped. A hit in `old` is moved back to `young`, so entries in use survive and idle ones age
/// out after two turns. O(1) per operation, at most `capacity` entries, no per-entry list.
///
/// Every entry expires (positive ones after the local TTL, negative ones after the negative TTL),
/// which bounds how stale a process is when it misses a changelog update.
/// Not thread-safe: the cache keeps one per kind behind a mutex.
///
/// Each generation is an open-addressing table keyed by the id's bytes with `ByteHash` (a
/// `Dictionary<String, …>` spent most of a hit in SipHash), and a hit lends its value to the
/// caller by pointer, where it lies (``get(_:now:hit:)``): no retain and release per hit.
struct LocalTier<Value> {
    enum Entry {
        case present(Value, expiresAt: UInt64)
        case absent(expiresAt: UInt64)

        var expiresAt: UInt64 {
            switch self {
            case .present(_, let t), .absent(let t): t
            }
        }
    }

    enum Lookup {
        case hit(Value)
        case negative
        case miss
    }

    /// What ``get(_:now:hit:)`` found.
    enum Found { case hit, negative, miss }

    let capacity: Int
    private var young = Generation<Value>()
    private var old = Generation<Value>()

    init(capacity: Int) { self.capacity = max(0, capacity) }

    var isEnabled: Bool { capacity > 0 }
    var count: Int { young.live + old.live }
    private var generationSize: Int { max(1, capacity / 2) }

    /// Calls `hit` with the value of a live positive entry, lent for the call (the pointer is
    /// valid only during it).
    mutating func get(_ id: String, now: UInt64, hit: (UnsafePointer<Value>) -> Void) -> Found {
        guard isEnabled else { return .miss }
        let h = Self.hash(id)
        if let k = young.find(id, hash: h) { return young.answer(k, now: now, hit: hit) }
        if old.live > 0, let k = old.find(id, hash: h) {
            let e = old.remove(at: k)
            if e.expiresAt > now { insertYoung(id, hash: h, e) }
            return Self.answer(e, now: now, hit: hit)
        }
        return .miss
    }

    /// ``get(_:now:hit:)`` for an id given by its bytes and their `ByteHash` (an interned batch's
    /// ids): no String is made, and the id is not hashed again.
    mutating func get(bytes: UnsafeRawBufferPointer, hash h: UInt64, now: UInt64, hit: (UnsafePointer<Value>) -> Void) -> Found {
        guard isEnabled else { return .miss }
        if let k = young.find(bytes, hash: h) { return young.answer(k, now: now, hit: hit) }
        if old.live > 0, let k = old.find(bytes, hash: h) {
            let id = old.entries[k].id
            let e = old.remove(at: k)
            if e.expiresAt > now { insertYoung(id, hash: h, e) }
            return Self.answer(e, now: now, hit: hit)
        }
        return .miss
    }

    /// One step of a lookup made some ids ahead of it (``KindCache``'s batch lookups): in a large
    /// tier each of a hit's reads (the index slot, the entry, the value, the value's storage) is a
    /// cache miss, and they depend on each other. Started ids ahead, step after step, each reads
    /// what the previous step brought in, and the lookup finds everything in the cache.
    /// Only the young generation, where the ids in use are.
    @inline(__always)
    func prefetch(_ step: PrefetchStep, hash: UInt64, storage: (UnsafePointer<Value>) -> Void) {
        young.prefetch(step, hash: hash, storage: storage)
    }

    mutating func get(_ id: String, now: UInt64) -> Lookup {
        var value: Value?
        switch get(id, now: now, hit: { value = $0.pointee }) {
        case .hit: return .hit(value!)
        case .negative: return .negative
        case .miss: return .miss
        }
    }

    /// The answer of an entry taken out of the old generation (a promotion: not the hot path).
    fileprivate static func answer(_ e: Entry, now: UInt64, hit: (UnsafePointer<Value>) -> Void) -> Found {
        switch e {
        case .present(let v, let t):
            if t <= now { return .miss }
            withUnsafePointer(to: v) { hit($0) }
            return .hit
        case .absent(let t):
            return t <= now ? .miss : .negative
        }
    }

    /// `overwrite: false` keeps a live entry (a lookup's fill must not replace what a changelog
    /// update wrote in the meantime). An id is in at most one generation.
    mutating func put(_ id: String, _ entry: Entry, overwrite: Bool, now: UInt64) {
        guard isEnabled else { return }
        let h = Self.hash(id)
        if old.live > 0, let k = old.find(id, hash: h) {
            let e = old.remove(at: k)
            insertYoung(id, hash: h, !overwrite && e.expiresAt > now ? e : entry) // a live entry is kept (and promoted)
            return
        }
        if let k = young.find(id, hash: h) {
            if overwrite || young.entries[k].expiresAt <= now { young.set(k, entry) }
            return
        }
        insertYoung(id, hash: h, entry)
    }

    /// Makes room for `n` more entries up front, so a batch of fills does not rehash the young
    /// generation again and again while it grows.
    mutating func reserve(_ n: Int) {
        guard isEnabled else { return }
        // Grown geometrically: a lookup that fills a few entries must not copy the whole
        // generation into storage only that much larger (the content gate asks once per poll).
        let wanted = young.entries.count + n
        guard wanted > young.entries.capacity else { return }
        young.reserve(min(generationSize, max(wanted, 2 * young.entries.capacity)))
    }

    mutating func remove(_ id: String) {
        let h = Self.hash(id)
        if let k = young.find(id, hash: h) { _ = young.remove(at: k) }
        if let k = old.find(id, hash: h) { _ = old.remove(at: k) }
    }

    mutating func removeAll() {
        young = Generation<Value>()
        old = Generation<Value>()
    }

    /// Inserts an id that is in neither generation (callers check). A generation turns when it
    /// has taken half the capacity (removed entries included, so its storage stays bounded).
    private mutating func insertYoung(_ id: String, hash: UInt64, _ e: Entry) {
        if young.entries.count >= generationSize {
            old = young
            young = Generation<Value>()
            young.reserve(generationSize)
        }
        young.insert(id, hash: hash, e)
    }

    @inline(__always)
    private static func hash(_ id: String) -> UInt64 {
        var id = id
        return id.withUTF8 { ByteHash.hash(UnsafeRawBufferPointer($0)) }
    }
}

/// The reads of a hit in ``LocalTier``, in the order they depend on each other.
enum PrefetchStep { case index, entry, value, storage }

/// One generation: entries in insertion order and an open-addressing index of them (linear
/// probing, power-of-two size, at most half full; removed entries leave a tombstone).
///
/// The values of present entries sit in an array of their own, and a hit lends one by pointer:
/// a value read out of a slot (an enum's payload) was retained and released on every hit, for
/// each reference it holds. Each entry has at most one place there, reused when the entry is
/// replaced; a removed or negative entry's old value stays until the generation is dropped (a
/// promotion to the young generation holds another reference to the same storage).
private struct Generation<Value> {
    struct Slot {
        var hash: UInt64   // to place the entry again when the index grows
        var id: String
        /// The entry's place in `values` (-1: none yet); its value is the entry's when `present`.
        var value: Int
        var present: Bool
        var expiresAt: UInt64
        var removed: Bool
    }

    var entries: [Slot] = []
    private var values: [Value] = []
    /// The hash's high 32 bits | (entry index + 1); 0 = empty.
    private var index: [UInt64] = []
    private static var tagMask: UInt64 { 0xFFFF_FFFF_0000_0000 }
    private(set) var live = 0

    func find(_ id: String, hash: UInt64) -> Int? { find(hash: hash) { $0 == id } }

    /// ``find(_:hash:)`` for an id given by its bytes.
    func find(_ bytes: UnsafeRawBufferPointer, hash: UInt64) -> Int? { find(hash: hash) { Self.equal($0, bytes) } }

    /// Entries are read through the buffer's pointer: a slot is looked at where it is, not copied
    /// out of the array (a copy retained and released the value on every hit).
    @inline(__always)
    private func find(hash: UInt64, isId: (String) -> Bool) -> Int? {
        guard !index.isEmpty else { return nil }
        let mask = index.count - 1
        let tag = hash & Self.tagMask
        var i = Int(truncatingIfNeeded: hash) & mask
        return entries.withUnsafeBufferPointer { slots in
            while true {
                let s = index[i]
                if s == 0 { return nil }
                // The tag (the hash's high half) rules out nearly every other id without touching
                // its entry, which is a cache miss of its own in a large tier.
                if s & Self.tagMask == tag {
                    let k = Self.entryIndex(s)
                    if !slots[k].removed && isId(slots[k].id) { return k }
                }
                i = (i &+ 1) & mask
            }
        }
    }

    /// The entry an occupied index slot points to (`place` writes the slots).
    @inline(__always)
    private static func entryIndex(_ slot: UInt64) -> Int { Int(truncatingIfNeeded: slot & ~tagMask) - 1 }

    /// ``LocalTier/prefetch(_:hash:storage:)``: a hint, so only the first probe is followed (the
    /// index is at most half full: most ids are found there).
    @inline(__always)
    func prefetch(_ step: PrefetchStep, hash: UInt64, storage: (UnsafePointer<Value>) -> Void) {
        guard !index.isEmpty else { return }
        let home = Int(truncatingIfNeeded: hash) & (index.count - 1)
        let s = index.withUnsafeBufferPointer { p in
            if step == .index { strata_prefetch(p.baseAddress! + home) }
            return p[home]
        }
        guard step != .index, s != 0, s & Self.tagMask == hash & Self.tagMask else { return }
        let k = Self.entryIndex(s)
        let v = entries.withUnsafeBufferPointer { p in
            if step == .entry { strata_prefetch(p.baseAddress! + k) }
            return p[k].value
        }
        guard step != .entry, v >= 0 else { return }
        values.withUnsafeBufferPointer { p in
            if step == .value { strata_prefetch(p.baseAddress! + v) } else { storage(p.baseAddress! + v) }
        }
    }

    /// ``LocalTier/get(_:now:hit:)``'s answer from entry `k`, its value lent where it lies.
    @inline(__always)
    func answer(_ k: Int, now: UInt64, hit: (UnsafePointer<Value>) -> Void) -> LocalTier<Value>.Found {
        let (expiresAt, present, v) = entries.withUnsafeBufferPointer { ($0[k].expiresAt, $0[k].present, $0[k].value) }
        if expiresAt <= now { return .miss }
        if !present { return .negative }
        values.withUnsafeBufferPointer { hit($0.baseAddress! + v) }
        return .hit
    }

    /// Entry `k` as an `Entry` (its value copied).
    func entry(_ k: Int) -> LocalTier<Value>.Entry {
        let s = entries[k]
        return s.present ? .present(values[s.value], expiresAt: s.expiresAt) : .absent(expiresAt: s.expiresAt)
    }

    /// Replaces entry `k`'s value (in its place in `values`) and expiry.
    mutating func set(_ k: Int, _ e: LocalTier<Value>.Entry) {
        entries[k].expiresAt = e.expiresAt
        guard case .present(let v, _) = e else { entries[k].present = false; return }
        if entries[k].value >= 0 { values[entries[k].value] = v } else { entries[k].value = append(v) }
        entries[k].present = true
    }

    private mutating func append(_ v: Value) -> Int {
        values.append(v)
        return values.count - 1
    }

    @inline(__always)
    private static func equal(_ id: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        id.utf8.withContiguousStorageIfAvailable { $0.count == bytes.count && $0.elementsEqual(bytes) } ?? id.utf8.elementsEqual(bytes)
    }

    mutating func insert(_ id: String, hash: UInt64, _ e: LocalTier<Value>.Entry) {
        if (entries.count + 1) * 2 > index.count { reserve(entries.count + 1) }
        var slot = Slot(hash: hash, id: id, value: -1, present: false, expiresAt: e.expiresAt, removed: false)
        if case .present(let v, _) = e { slot.value = append(v); slot.present = true }
        entries.append(slot)
        place(entries.count - 1, hash: hash)
        live += 1
    }

    /// Marks entry `k` removed and returns it (its id is released now, its value with the
    /// generation).
    mutating func remove(at k: Int) -> LocalTier<Value>.Entry {
        let e = entry(k)
        entries[k].present = false
        entries[k].expiresAt = 0
        entries[k].id = ""
        entries[k].removed = true
        live -= 1
        return e
    }

    mutating func reserve(_ n: Int) {
        entries.reserveCapacity(n)
        values.reserveCapacity(n)
        var size = max(16, index.count)
        while size < 2 * n { size <<= 1 }
        guard size > index.count else { return }
        index = [UInt64](repeating: 0, count: size)
        for k in entries.indices { place(k, hash: entries[k].hash) }
    }

    private mutating func place(_ k: Int, hash: UInt64) {
        let mask = index.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while index[i] != 0 { i = (i &+ 1) & mask }
        index[i] = hash & Self.tagMask | UInt64(k + 1)
    }
}

extension LocalTier: Sendable where Value: Sendable {}
extension LocalTier.Entry: Sendable where Value: Sendable {}
extension Generation: Sendable where Value: Sendable {}
extension Generation.Slot: Sendable where Value: Sendable {}

/// Monotonic nanoseconds (never jumps with the wall clock).
@inline(__always)
func monotonicNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

extension Duration {
    var nanoseconds: UInt64 {
        let (s, atto) = components
        return UInt64(max(0, s)) &* 1_000_000_000 &+ UInt64(max(0, atto) / 1_000_000_000)
    }

    var wholeSeconds: Int { max(1, Int(components.seconds)) }
}
