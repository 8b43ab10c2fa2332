public import StrataDWM
public import StrataDims

/// Enrichment of one emission: its distinct content and user ids are looked up once (one batched
/// call per kind through the dimension cache, never per event or per row), then every row is
/// encoded with the dimensions found. Used by the dwm job for each transaction and by
/// `strata bench enrich`, so the benchmark measures the job's own path.
public struct RowEnricher {
    private let cache: DimensionCache
    private var encoder: RowEncoder
    private var buffer: [UInt8] = []

    public init(cache: DimensionCache, actions: [String]) {
        self.cache = cache
        encoder = RowEncoder(actions: actions)
        buffer.reserveCapacity(512)
    }

    /// Looks up the dimensions of every id the emission's rows carry; returns how many distinct
    /// (content, user) ids were asked for.
    @discardableResult
    public mutating func lookUp(_ emission: Emission) throws -> (contents: Int, users: Int) {
        var contentIds = Set<String>(minimumCapacity: emission.dws.count)
        for r in emission.dws { contentIds.insert(r.contentId) }
        // Users by position: each distinct id gets a slot (one hash per row), the cache answers
        // by slot, and rows find their profile through the slot (no map of profiles is built).
        var slots = [String: Int32](minimumCapacity: emission.dwm.count)
        var userIds: [String] = []
        userIds.reserveCapacity(emission.dwm.count)
        for r in emission.dwm {
            contentIds.insert(r.contentId)
            if Self.claim(&slots[r.userId], Int32(truncatingIfNeeded: userIds.count)) { userIds.append(r.userId) }
        }
        let contents = try cache.lookupContents(Array(contentIds))
        var users = [UserDim?](repeating: nil, count: userIds.count)
        try users.withUnsafeMutableBufferPointer { out in
            try cache.lookupUsers(userIds) { i, u in out[i] = u }
        }
        encoder.setDimensions(contents: contents, userSlots: slots, users: users)
        return (contentIds.count, userIds.count)
    }

    /// Gives an id without a slot the slot `next`; true when it did.
    @inline(__always)
    private static func claim(_ slot: inout Int32?, _ next: Int32) -> Bool {
        if slot != nil { return false }
        slot = next
        return true
    }

    /// Encodes the rows with the dimensions of the last ``lookUp(_:)``. `dws` is also told whether
    /// the content's dimensions were found (rows of a valid-ID filter false positive are not).
    public mutating func encode(_ emission: Emission, emittedAt: Int64,
                                dwm: (DWMRow, UnsafeRawBufferPointer) throws -> Void,
                                dws: (DWSRow, UnsafeRawBufferPointer, _ hasContent: Bool) throws -> Void) rethrows {
        for r in emission.dwm {
            buffer.removeAll(keepingCapacity: true)
            encoder.encode(r, emittedAt: emittedAt, into: &buffer)
            try buffer.withUnsafeBytes { try dwm(r, $0) }
        }
        for r in emission.dws {
            buffer.removeAll(keepingCapacity: true)
            encoder.encode(r, emittedAt: emittedAt, into: &buffer)
            let known = encoder.hasContent(r.contentId)
            try buffer.withUnsafeBytes { try dws(r, $0, known) }
        }
    }
}
