import StrataCore

// The DWM cells of one minute window, one per (content, user), found through a SlotIndex.
//
// A cell is one fixed-size header, laid out so that applying an event touches one or two cache
// lines: the user id and the strategy winner's event id are stored inline when ≤ 16 bytes (the
// common case; longer ones go to a per-window arena), the first 8 action counts are inline, the
// event-id hashes of the first 4 events are inline (then a spilled Set, kept by the window).
//
// Besides the metrics, a cell keeps what makes it exact and replayable: the dedupe hashes, the
// (ts, event_id) of the strategy winner (so the winner does not depend on arrival order), and what
// was last published (event count and final flag): the cell is dirty while they differ.

struct CellHeader {
    var user0: UInt64, user1: UInt64   // user id bytes zero-padded, or (arena offset | length << 32, hash)
    var winTs: Int64                   // ts of the strategy winner (Int64.min: none yet)
    var win0: UInt64, win1: UInt64     // winner event id bytes, or win0 = arena offset (flag winInArena)
    var playMs: Int64
    var d0: UInt64, d1: UInt64, d2: UInt64, d3: UInt64   // event-id hashes; d0 = spill index when n > 4
    var content: UInt32                // engine-wide content index
    var n: UInt32                      // distinct events applied
    var pubN: UInt32                   // events in the last published revision
    var strategy: UInt32               // 0 = none, else strategy id + 1
    var totals: UInt32                 // index of this cell's (minute, content) totals
    var counts: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)
    var userLen: UInt8                 // 1...16 inline, CellHeader.longUser: in the arena
    var winLen: UInt8                  // 1...64
    var flags: UInt8
    var reserved: UInt8

    static let pubFinal: UInt8 = 1
    static let listedDirty: UInt8 = 2
    static let winInArena: UInt8 = 4
    static let inlineHashes: UInt32 = 4
    static let inlineCounts = 8
    static let inlineBytes = 16
    static let longUser: UInt8 = 255
    // Byte offsets of the inline arrays (literals: a `static let` would cost a lazy-init check per
    // access on the hot path; `CellStore.init` verifies them).
    static var countsOffset: Int { 100 }
    static var win0Offset: Int { 24 }
}

/// A user id in the form the cells compare: short ids packed into two words.
struct UserKey {
    var w0: UInt64
    var w1: UInt64
    var len: UInt8          // CellHeader.longUser for ids longer than 16 bytes (w0, w1 = 0, hash)
    var hash: UInt64        // of (content, user): the cell's slot hash

    @inline(__always)
    init(_ b: UnsafeRawBufferPointer, content: UInt32) {
        let n = b.count
        let salt = UInt64(content) << 8
        if n <= CellHeader.inlineBytes, let p = b.baseAddress {
            (w0, w1) = Self.pack(p, n)
            len = UInt8(truncatingIfNeeded: n)
            hash = ByteHash.mum(ByteHash.mum(w0 ^ ByteHash.s0, w1 ^ ByteHash.s1) ^ salt ^ UInt64(n), ByteHash.s1)
        } else {
            w0 = 0
            w1 = ByteHash.hash(b)
            len = CellHeader.longUser
            hash = Self.longHash(w1, salt: salt)
        }
    }

    @inline(__always)
    static func longHash(_ bytesHash: UInt64, salt: UInt64) -> UInt64 {
        ByteHash.mum(bytesHash ^ ByteHash.s0, salt ^ 0xFF ^ ByteHash.s1)
    }

    /// Little-endian words of the first `n` ≤ 16 bytes, zero-padded, without reading past `n`.
    @inline(__always)
    static func pack(_ p: UnsafeRawPointer, _ n: Int) -> (UInt64, UInt64) {
        if n >= 8 {
            let lo = p.loadUnaligned(as: UInt64.self)
            let hi = n == 8 ? 0 : p.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) >> UInt64(8 * (16 - n))
            return (UInt64(littleEndian: lo), UInt64(littleEndian: hi))
        }
        if n >= 4 {
            let lo = UInt64(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
            let hi = UInt64(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self))) >> UInt64(8 * (8 - n))
            return (lo | hi << 32, 0)
        }
        var v: UInt64 = 0
        for i in 0..<n { v |= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << UInt64(8 * i) }
        return (v, 0)
    }
}

struct CellStore {
    let actionCount: Int
    private(set) var headers = ChunkedBuffer<CellHeader>()
    /// Counts of actions 8, 9, … (topologies with more than 8 actions).
    private var extraCounts = RawBuffer<UInt32>(capacity: 1)
    private var index = SlotIndex()
    /// Long user ids and long winner event ids.
    private var arena = RawBuffer<UInt8>(capacity: 64)
    /// Cells changed since they were last published, each listed once (flag `listedDirty`).
    private(set) var dirty = RawBuffer<UInt32>(capacity: 64)

    init(actionCount: Int) {
        self.actionCount = actionCount
        precondition(MemoryLayout<CellHeader>.offset(of: \CellHeader.counts) == CellHeader.countsOffset
                     && MemoryLayout<CellHeader>.offset(of: \CellHeader.win0) == CellHeader.win0Offset)
    }

    var count: Int { headers.count }

    @inline(__always)
    func header(_ c: Int) -> UnsafeMutablePointer<CellHeader> { headers.pointer(c) }

    @inline(__always)
    func inlineCounts(_ c: Int) -> UnsafeMutablePointer<UInt32> {
        (UnsafeMutableRawPointer(headers.pointer(c)) + CellHeader.countsOffset).assumingMemoryBound(to: UInt32.self)
    }

    /// Counts of actions ≥ 8 of cell `c` (nil when there are at most 8 actions).
    @inline(__always)
    func extraCountsOf(_ c: Int) -> UnsafeMutablePointer<UInt32>? {
        actionCount > CellHeader.inlineCounts ? extraCounts.pointer(c * (actionCount - CellHeader.inlineCounts)) : nil
    }

    @inline(__always)
    func bump(_ c: Int, action a: Int) {
        if a < CellHeader.inlineCounts {
            inlineCounts(c)[a] &+= 1
        } else {
            extraCountsOf(c)![a - CellHeader.inlineCounts] &+= 1
        }
    }

    @inline(__always)
    func userId(_ c: Int) -> UnsafeRawBufferPointer {
        let p = header(c)
        if p.pointee.userLen == CellHeader.longUser {
            let u0 = p.pointee.user0
            return UnsafeRawBufferPointer(start: arena.base + Int(u0 & 0xFFFF_FFFF), count: Int(u0 >> 32))
        }
        return UnsafeRawBufferPointer(start: UnsafeRawPointer(p), count: Int(p.pointee.userLen))
    }

    /// The cell of (`content`, user), created empty when absent (`newTotals` gives its totals index).
    @inline(__always)
    mutating func findOrInsert(content: UInt32, user key: UserKey, bytes: UnsafeRawBufferPointer,
                               newTotals: () -> UInt32) -> (cell: Int, created: Bool) {
        let hs = headers
        let r: (id: UInt32, slot: Int)
        if key.len != CellHeader.longUser {
            r = index.find(key.hash) { id in
                let h = hs.pointer(Int(id))
                return h.pointee.user0 == key.w0 && h.pointee.user1 == key.w1 && h.pointee.content == content
                    && h.pointee.userLen == key.len
            }
        } else {
            let a = arena
            r = index.find(key.hash) { id in
                let h = hs.pointer(Int(id))
                guard h.pointee.content == content, h.pointee.userLen == CellHeader.longUser,
                      h.pointee.user1 == key.w1, Int(h.pointee.user0 >> 32) == bytes.count else { return false }
                let stored = UnsafeRawBufferPointer(start: a.base + Int(h.pointee.user0 & 0xFFFF_FFFF), count: bytes.count)
                return InternTable.equal(stored, bytes)
            }
        }
        if r.id != SlotIndex.notFound { return (Int(r.id), false) }

        var u0 = key.w0
        if key.len == CellHeader.longUser {
            u0 = UInt64(arena.count) | UInt64(bytes.count) << 32
            arena.append(bytes: bytes)
        }
        let id = UInt32(headers.count)
        headers.append(CellHeader(user0: u0, user1: key.w1, winTs: .min, win0: 0, win1: 0, playMs: 0,
                                  d0: 0, d1: 0, d2: 0, d3: 0, content: content, n: 0, pubN: 0, strategy: 0,
                                  totals: newTotals(), counts: (0, 0, 0, 0, 0, 0, 0, 0), userLen: key.len,
                                  winLen: 0, flags: 0, reserved: 0))
        if actionCount > CellHeader.inlineCounts {
            extraCounts.append(repeating: 0, count: actionCount - CellHeader.inlineCounts)
        }
        let hs2 = headers
        index.insert(id, hash: key.hash, at: r.slot) { Self.slotHash(hs2.pointer(Int($0))) }
        return (Int(id), true)
    }

    /// The slot hash of an existing cell, from its header alone (for rehashing).
    private static func slotHash(_ h: UnsafeMutablePointer<CellHeader>) -> UInt64 {
        let salt = UInt64(h.pointee.content) << 8
        if h.pointee.userLen == CellHeader.longUser { return UserKey.longHash(h.pointee.user1, salt: salt) }
        return ByteHash.mum(ByteHash.mum(h.pointee.user0 ^ ByteHash.s0, h.pointee.user1 ^ ByteHash.s1)
                            ^ salt ^ UInt64(h.pointee.userLen), ByteHash.s1)
    }

    /// Records an event-id hash in cell `c` (whose `n` hashes are stored); false if already there.
    /// Does not change `n`: the caller counts the event. Past 4 events the hashes move to a Set in
    /// `spills` (kept outside this struct so that it stays trivially copyable: no ARC per event).
    @inline(__always)
    func insertEventHash(_ c: Int, _ h: UInt64, spills: inout [Set<UInt64>]) -> Bool {
        let p = header(c)
        switch p.pointee.n {
        case 0: p.pointee.d0 = h
        case 1:
            if p.pointee.d0 == h { return false }
            p.pointee.d1 = h
        case 2:
            if p.pointee.d0 == h || p.pointee.d1 == h { return false }
            p.pointee.d2 = h
        case 3:
            if p.pointee.d0 == h || p.pointee.d1 == h || p.pointee.d2 == h { return false }
            p.pointee.d3 = h
        case CellHeader.inlineHashes:
            let d = p.pointee
            if d.d0 == h || d.d1 == h || d.d2 == h || d.d3 == h { return false }
            p.pointee.d0 = UInt64(spills.count)
            spills.append([d.d0, d.d1, d.d2, d.d3, h])
        default:
            if !spills[Int(p.pointee.d0)].insert(h).inserted { return false }
        }
        return true
    }

    @inline(__always)
    func winnerId(_ c: Int) -> UnsafeRawBufferPointer {
        let p = header(c)
        let start = p.pointee.flags & CellHeader.winInArena != 0
            ? UnsafeRawPointer(arena.base + Int(p.pointee.win0))
            : (UnsafeRawPointer(p) + CellHeader.win0Offset)
        return UnsafeRawBufferPointer(start: start, count: Int(p.pointee.winLen))
    }

    /// True when (ts, eventId) orders after the cell's current strategy winner.
    @inline(__always)
    func beatsWinner(_ c: Int, ts: Int64, eventId: UnsafeRawBufferPointer) -> Bool {
        let w = header(c).pointee.winTs
        if ts != w { return ts > w }
        return Self.lexicographicallyGreater(eventId, winnerId(c))
    }

    @inline(__always)
    mutating func setWinner(_ c: Int, ts: Int64, eventId: UnsafeRawBufferPointer, strategy: UInt32) {
        let len = eventId.count   // 1...64 (the scanner's event_id contract)
        let p = header(c)
        if len > CellHeader.inlineBytes && p.pointee.flags & CellHeader.winInArena == 0 {
            p.pointee.win0 = UInt64(arena.count)
            p.pointee.flags |= CellHeader.winInArena
            arena.append(repeating: 0, count: EventScanner.maxEventIdBytes)
        }
        let dst = p.pointee.flags & CellHeader.winInArena != 0
            ? UnsafeMutableRawPointer(arena.base + Int(p.pointee.win0))
            : (UnsafeMutableRawPointer(p) + CellHeader.win0Offset)
        if let src = eventId.baseAddress { dst.copyMemory(from: src, byteCount: Swift.min(len, EventScanner.maxEventIdBytes)) }
        p.pointee.winLen = UInt8(truncatingIfNeeded: len)
        p.pointee.winTs = ts
        p.pointee.strategy = strategy
    }

    /// Unsigned byte order; a proper prefix orders first.
    static func lexicographicallyGreater(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        let n = Swift.min(a.count, b.count)
        var i = 0
        while i < n {
            let x = a[i], y = b[i]
            if x != y { return x > y }
            i += 1
        }
        return a.count > b.count
    }

    @inline(__always)
    mutating func markDirty(_ c: Int) {
        let p = header(c)
        if p.pointee.flags & CellHeader.listedDirty == 0 {
            p.pointee.flags |= CellHeader.listedDirty
            dirty.append(UInt32(c))
        }
    }

    /// Forgets the dirty list (after its cells were visited); flags are cleared by the visitor.
    mutating func clearDirtyList() { dirty.removeAll() }

    func deallocate() {
        headers.deallocate()
        extraCounts.deallocate()
        index.deallocate()
        arena.deallocate()
        dirty.deallocate()
    }

    var allocatedBytes: Int {
        headers.allocatedBytes + extraCounts.allocatedBytes + index.allocatedBytes + arena.allocatedBytes + dirty.allocatedBytes
    }
}
