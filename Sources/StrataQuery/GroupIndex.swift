/// Group numbers shared by the queries of a set that have the same window and the same GROUP BY
/// list: a row's group is looked up once per window for all of them, not once per query.
///
/// Per window (`Window`), each distinct key gets a number while some query holds a group for it;
/// each query keeps its own groups (its accumulators) by that number in its `WindowState`, and
/// a group's key is stored once, here. A number is given back when the last query holding a
/// group for it drops that group (its rows were all retracted), but only when the next batch
/// starts (`recycle`): within a batch a key keeps its number, so a remembered number (below)
/// always names the row's key.
///
/// Per row of the batch being applied, the number found for it in a window is remembered, so the
/// other queries that take the row find their group with one array read. The memo is cleared
/// per row as the terms are computed (`RowTerms.compute`), and only a lookup in the same
/// `Window` object answers from it.
///
/// Lifetime: a query's `WindowState` holds its `Window`. A window is taken out of the map by the
/// first query that closes it: every query of the set closes it in the same batch (one
/// watermark, one grace), and no row reaches a closed window. Correctness never depends on the
/// map: a query that got another `Window` object for the same start (after a reset) keeps its
/// numbers in that object.
final class GroupIndex {
    final class Window {
        private var ids: [GroupKey: Int32] = [:]
        /// By number: the key ([] when the number is free), its hash, and how many queries hold a
        /// group for it (-1: the number is free).
        private(set) var keys: [[Value]] = []
        private(set) var hashes: [Int] = []
        private var holders: [Int32] = []
        private var free: [Int32] = []
        /// Numbers no query held at some point of this batch: freed by `recycle` if still unheld.
        private var unheld: [Int32] = []

        /// Numbers handed out so far (a query's groups array is at most this long).
        var capacity: Int { keys.count }

        /// The number of `key` (whose hash is `hash`), given one if it has none.
        func id(_ key: [Value], hash: Int) -> Int32 {
            let k = GroupKey(key, hash: hash)
            if let id = ids[k] { return id }
            let id: Int32
            if let reused = free.popLast() {
                id = reused
                keys[Int(id)] = key
                hashes[Int(id)] = hash
                holders[Int(id)] = 0
            } else {
                id = Int32(keys.count)
                keys.append(key)
                hashes.append(hash)
                holders.append(0)
            }
            ids[k] = id
            return id
        }

        /// A query now holds a group numbered `id`.
        @inline(__always) func hold(_ id: Int32) { holders[Int(id)] += 1 }

        /// A query dropped its group numbered `id`.
        func release(_ id: Int32) {
            holders[Int(id)] -= 1
            if holders[Int(id)] == 0 { unheld.append(id) }
        }

        /// Between batches: frees the numbers no query holds.
        func recycle() {
            // (A number can be listed twice: held again, then dropped again.)
            for id in unheld where holders[Int(id)] == 0 {
                holders[Int(id)] = -1
                ids[GroupKey(keys[Int(id)], hash: hashes[Int(id)])] = nil
                keys[Int(id)] = []
                free.append(id)
            }
            unheld.removeAll(keepingCapacity: true)
        }
    }

    /// Whether rows may share numbers through the memo: not for projections, whose group key
    /// carries a per-query row number.
    let sharesRows: Bool
    private var windows: [Int64: Window] = [:]
    // Per row of the batch: the window a number was found in, and the number.
    @exclusivity(unchecked) private var memoWindow: [ObjectIdentifier?] = []
    @exclusivity(unchecked) private var memoId: [Int32] = []

    init(sharesRows: Bool) { self.sharesRows = sharesRows }

    /// The window starting at `start` (`Int64.min`: a query without WINDOW), created if new.
    func window(_ start: Int64) -> Window {
        if let w = windows[start] { return w }
        let w = Window()
        windows[start] = w
        return w
    }

    /// A query closed the window starting at `start`: no row reaches it any more.
    func drop(_ start: Int64) { windows[start] = nil }

    /// Forgets every window (the set finished).
    func reset() { windows = [:] }

    /// Readies the memo for a batch of `count` rows, and frees the numbers no query holds.
    func prepare(count: Int) {
        for w in windows.values { w.recycle() }
        if memoId.count < count {
            memoId.append(contentsOf: repeatElement(-1, count: count - memoId.count))
            memoWindow.append(contentsOf: repeatElement(nil, count: count - memoWindow.count))
        }
    }

    /// Clears row `r`'s memo (a new row in that place).
    @inline(__always) func clear(row r: Int) { memoWindow[r] = nil }

    /// The number row `r` was given in `window`, if a query already looked it up.
    @inline(__always) func remembered(row r: Int, in window: Window) -> Int32? {
        guard sharesRows, memoWindow[r] == ObjectIdentifier(window) else { return nil }
        return memoId[r]
    }

    /// Remembers that row `r` has number `id` in `window`.
    @inline(__always) func remember(row r: Int, in window: Window, _ id: Int32) {
        guard sharesRows else { return }
        memoWindow[r] = ObjectIdentifier(window)
        memoId[r] = id
    }
}
