public import StrataDWM
public import StrataDims

/// Enrichment of one emission: its distinct content and user ids are looked up once (one batched
/// call per kind through the dimension cache, never per event or per row), then every row is
/// encoded with the dimensions found. Used by the dwm job for each transaction and by
/// `strata bench enrich`, so the benchmark measures the job's own path.
public struct RowEnricher {
    private let cache: DimensionCache
    private var encoder: RowEncoder
    private let buffer = RowBuffer()
    /// Per row of the last looked-up emission: the position of its content and user among the
    /// emission's distinct ids, so encoding finds the dimensions without hashing an id again.
    private var dwmContent: [Int32] = [], dwmUser: [Int32] = [], dwsContent: [Int32] = []

    public init(cache: DimensionCache, actions: [String]) {
        self.cache = cache
        encoder = RowEncoder(actions: actions)
    }

    /// Looks up the dimensions of every id the emission's rows carry; returns how many distinct
    /// (content, user) ids were asked for.
    @discardableResult
    public mutating func lookUp(_ emission: Emission) throws -> (contents: Int, users: Int) {
        // Distinct ids are numbered by their bytes (one short hash and probe per row; String
        // dictionaries cost several times that). The cache answers by number.
        var contentTable = InternTable(), userTable = InternTable(expectedCount: emission.dwm.count)
        defer { contentTable.deallocate(); userTable.deallocate() }
        var contentIds: [String] = [], userIds: [String] = []
        userIds.reserveCapacity(emission.dwm.count)
        dwsContent.removeAll(keepingCapacity: true)
        dwmContent.removeAll(keepingCapacity: true)
        dwmUser.removeAll(keepingCapacity: true)
        dwsContent.reserveCapacity(emission.dws.count)
        dwmContent.reserveCapacity(emission.dwm.count)
        dwmUser.reserveCapacity(emission.dwm.count)
        for r in emission.dws { dwsContent.append(Self.number(r.contentId, in: &contentTable, ids: &contentIds)) }
        for r in emission.dwm {
            dwmContent.append(Self.number(r.contentId, in: &contentTable, ids: &contentIds))
            dwmUser.append(Self.number(r.userId, in: &userTable, ids: &userIds))
        }
        var contents = [ContentDim?](repeating: nil, count: contentIds.count)
        try contents.withUnsafeMutableBufferPointer { out in
            try cache.lookupContents(contentIds) { i, c in out[i] = c }
        }
        var users = [UserRowObject?](repeating: nil, count: userIds.count)
        try users.withUnsafeMutableBufferPointer { out in
            try cache.lookupUserRowObjects(userIds) { i, u in out[i] = u }
        }
        encoder.setDimensions(contents: contents, users: users)
        return (contentIds.count, userIds.count)
    }

    /// The number of `id` among the distinct ids so far (a new one is appended to `ids`).
    @inline(__always)
    private static func number(_ id: String, in table: inout InternTable, ids: inout [String]) -> Int32 {
        var s = id
        let before = table.count
        let n = s.withUTF8 { b in
            let key = UnsafeRawBufferPointer(b)
            return table.intern(key, hash: ByteHash.hash(key))
        }
        if table.count != before { ids.append(id) }
        return Int32(bitPattern: n)
    }

    /// Encodes the rows with the dimensions of the last ``lookUp(_:)``, which must have been given
    /// this emission. `dws` is also told whether the content's dimensions were found (rows of a
    /// valid-ID filter false positive are not).
    public mutating func encode(_ emission: Emission, emittedAt: Int64,
                                dwm: (DWMRow, UnsafeRawBufferPointer) throws -> Void,
                                dws: (DWSRow, UnsafeRawBufferPointer, _ hasContent: Bool) throws -> Void) rethrows {
        precondition(emission.dwm.count == dwmContent.count && emission.dws.count == dwsContent.count,
                     "encode(_:) needs the emission of the last lookUp(_:)")
        for (i, r) in emission.dwm.enumerated() {
            buffer.removeAll()
            encoder.encode(r, content: dwmContent[i], user: dwmUser[i], emittedAt: emittedAt, into: buffer)
            try dwm(r, buffer.bytes)
        }
        for (i, r) in emission.dws.enumerated() {
            buffer.removeAll()
            encoder.encode(r, content: dwsContent[i], emittedAt: emittedAt, into: buffer)
            try dws(r, buffer.bytes, encoder.hasContent(dwsContent[i]))
        }
    }
}
