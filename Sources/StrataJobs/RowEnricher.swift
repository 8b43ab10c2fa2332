public import StrataDWM
public import StrataDims

/// Enrichment of one collect's rows: their distinct content and user ids are looked up once (one
/// batched call per kind through the dimension cache, never per event or per row), then every row
/// is encoded with the dimensions found. Used by the dwm job for each transaction and by
/// `strata bench enrich`, so the benchmark measures the job's own path.
public struct RowEnricher {
    private let cache: DimensionCache
    private var encoder: RowEncoder
    private let buffer = RowBuffer()

    public init(cache: DimensionCache, actions: [String]) {
        self.cache = cache
        encoder = RowEncoder(actions: actions)
    }

    /// Looks up the dimensions of every id the batch's rows carry; returns how many distinct
    /// (content, user) ids were asked for.
    @discardableResult
    public mutating func lookUp(_ batch: RowBatch) throws -> (contents: Int, users: Int) {
        // The batch numbers its distinct ids; the cache answers by the same numbers.
        let contentIds = Self.strings(batch.contents), userIds = Self.strings(batch.users)
        var contents = [ContentDim?](repeating: nil, count: contentIds.count)
        try contents.withUnsafeMutableBufferPointer { out in
            try cache.lookupContents(contentIds) { i, c in out[i] = c }
        }
        encoder.setContents(contents)
        encoder.beginUsers(count: userIds.count)
        try cache.lookupUserRowObjects(userIds) { i, u in encoder.setUser(i, u) }
        return (contentIds.count, userIds.count)
    }

    private static func strings(_ table: InternTable) -> [String] {
        (0..<UInt32(table.count)).map { String(decoding: table.bytes($0), as: UTF8.self) }
    }

    /// Encodes the rows with the dimensions of the last ``lookUp(_:)``, which must have been given
    /// this batch, unchanged since. `dws` is also told whether the content's dimensions were found
    /// (rows of a valid-ID filter false positive are not).
    public mutating func encode(_ batch: RowBatch, emittedAt: Int64,
                                dwm: (BatchDWMRow, UnsafeRawBufferPointer) throws -> Void,
                                dws: (BatchDWSRow, UnsafeRawBufferPointer, _ hasContent: Bool) throws -> Void) rethrows {
        precondition(encoder.matches(contents: batch.contents.count, users: batch.users.count),
                     "encode(_:) needs the batch of the last lookUp(_:)")
        for i in 0..<batch.dwmCount {
            let r = batch.dwmRow(i)
            buffer.removeAll()
            encoder.encode(r, emittedAt: emittedAt, into: buffer)
            try dwm(r, buffer.bytes)
        }
        for i in 0..<batch.dwsCount {
            let r = batch.dwsRow(i)
            buffer.removeAll()
            encoder.encode(r, emittedAt: emittedAt, into: buffer)
            try dws(r, buffer.bytes, encoder.hasContent(r.content))
        }
    }
}
