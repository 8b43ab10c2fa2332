import StrataCore

// The DWS side of one minute window: per content, the sums of its cells' metrics, the number of
// cells (uv) and the number of distinct events (for rev), updated with every applied event so a
// DWS row never needs a scan of the cells.

struct TotalsHeader {
    var content: UInt32        // engine-wide content index
    var uv: UInt32
    var n: UInt64              // distinct events applied over all cells of this content
    var pubN: UInt64
    var playMs: Int64
    var flags: UInt8           // CellHeader.pubFinal / .listedDirty
}

struct ContentTotals {
    let actionCount: Int
    private(set) var headers = RawBuffer<TotalsHeader>(capacity: 16)
    private(set) var counts: RawBuffer<UInt64>
    private var index = SlotIndex()
    private(set) var dirty = RawBuffer<UInt32>(capacity: 16)

    init(actionCount: Int) {
        self.actionCount = actionCount
        counts = RawBuffer(capacity: 16 * Swift.max(actionCount, 1))
    }

    var count: Int { headers.count }

    @inline(__always)
    func header(_ t: Int) -> UnsafeMutablePointer<TotalsHeader> { headers.pointer(t) }

    @inline(__always)
    func countsOf(_ t: Int) -> UnsafeMutablePointer<UInt64> { counts.pointer(t * actionCount) }

    mutating func findOrInsert(content: UInt32) -> Int {
        let hash = ByteHash.mix(UInt64(content))
        let hs = headers
        let r = index.find(hash) { hs[Int($0)].content == content }
        if r.id != SlotIndex.notFound { return Int(r.id) }
        let id = UInt32(headers.count)
        headers.append(TotalsHeader(content: content, uv: 0, n: 0, pubN: 0, playMs: 0, flags: 0))
        counts.append(repeating: 0, count: actionCount)
        let hs2 = headers
        index.insert(id, hash: hash, at: r.slot) { ByteHash.mix(UInt64(hs2[Int($0)].content)) }
        return Int(id)
    }

    @inline(__always)
    mutating func markDirty(_ t: Int) {
        let p = header(t)
        if p.pointee.flags & CellHeader.listedDirty == 0 {
            p.pointee.flags |= CellHeader.listedDirty
            dirty.append(UInt32(t))
        }
    }

    mutating func clearDirtyList() { dirty.removeAll() }

    func deallocate() {
        headers.deallocate()
        counts.deallocate()
        index.deallocate()
        dirty.deallocate()
    }

    var allocatedBytes: Int {
        headers.allocatedBytes + counts.allocatedBytes + index.allocatedBytes + dirty.allocatedBytes
    }
}
