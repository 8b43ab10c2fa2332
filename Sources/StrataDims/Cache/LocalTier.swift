import Dispatch

/// The in-process tier: a bounded map with two generations ("LRU-ish"). Entries live in `young`
/// until it holds half the capacity; then `young` becomes `old` and the previous `old` is dropped.
/// A hit in `old` is promoted back to `young`, so entries in use survive and idle ones age out
/// after two turns. O(1) per operation, at most `capacity` entries, no per-entry list.
///
/// Every entry expires (positive ones after the local TTL, negative ones after the negative TTL),
/// which bounds how stale a process is when it misses a changelog update.
/// Not thread-safe: the cache keeps one per kind behind a mutex.
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

    let capacity: Int
    private var young: [String: Entry] = [:]
    private var old: [String: Entry] = [:]

    init(capacity: Int) { self.capacity = max(0, capacity) }

    var isEnabled: Bool { capacity > 0 }
    var count: Int { young.count + old.count }

    mutating func get(_ id: String, now: UInt64) -> Lookup {
        guard isEnabled else { return .miss }
        if let e = young[id] { return answer(e, id: id, now: now, inYoung: true) }
        if !old.isEmpty, let e = old.removeValue(forKey: id) {
            if e.expiresAt > now { insertYoung(id, e) }
            return answer(e, id: id, now: now, inYoung: false)
        }
        return .miss
    }

    private mutating func answer(_ e: Entry, id: String, now: UInt64, inYoung: Bool) -> Lookup {
        if e.expiresAt <= now {
            if inYoung { young[id] = nil }
            return .miss
        }
        switch e {
        case .present(let v, _): return .hit(v)
        case .absent: return .negative
        }
    }

    /// `overwrite: false` keeps a live entry (a lookup's fill must not replace what a changelog
    /// update wrote in the meantime). An id is in at most one generation, so `old` can be
    /// asked first; a fill into `young` with room left then hashes the id once, not twice.
    mutating func put(_ id: String, _ entry: Entry, overwrite: Bool, now: UInt64) {
        guard isEnabled else { return }
        if !old.isEmpty, let e = old.removeValue(forKey: id) {
            insertYoung(id, !overwrite && e.expiresAt > now ? e : entry) // a live entry is kept (and promoted)
            return
        }
        if young.count < max(1, capacity / 2) {
            Self.store(&young[id], entry, overwrite: overwrite, now: now)
            return
        }
        if let index = young.index(forKey: id) {
            if overwrite || young.values[index].expiresAt <= now { young.values[index] = entry }
            return
        }
        insertYoung(id, entry)
    }

    private static func store(_ slot: inout Entry?, _ entry: Entry, overwrite: Bool, now: UInt64) {
        if let e = slot, !overwrite, e.expiresAt > now { return }
        slot = entry
    }

    /// Makes room for `n` more entries up front, so a batch of fills does not rehash the young
    /// generation again and again while it grows.
    mutating func reserve(_ n: Int) {
        guard isEnabled else { return }
        let target = min(max(1, capacity / 2), young.count + n)
        if target > young.capacity { young.reserveCapacity(target) }
    }

    mutating func remove(_ id: String) {
        young[id] = nil
        old[id] = nil
    }

    mutating func removeAll() {
        young = [:]
        old = [:]
    }

    /// Inserts an id that is in neither generation (callers check).
    private mutating func insertYoung(_ id: String, _ e: Entry) {
        if young.count >= max(1, capacity / 2) {
            old = young
            young = [:]
            young.reserveCapacity(max(1, capacity / 2))
        }
        young[id] = e
    }
}

extension LocalTier: Sendable where Value: Sendable {}
extension LocalTier.Entry: Sendable where Value: Sendable {}

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
