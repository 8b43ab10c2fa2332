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
    /// The rows of the last ``encodeAll(_:emittedAt:)``: the DWM rows', then the DWS rows'.
    private let arena = RowArena()
    private var values: [UnsafeRawBufferPointer] = []
    private var dwmRows = 0

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

    /// Encodes every row of `batch`, with the dimensions of the last ``lookUp(_:)``, into memory
    /// kept until the next call: ``dwmValue(_:)`` and ``dwsValue(_:)`` lend the bytes, so the
    /// rows can be produced without librdkafka's copy (their messages must be delivered, or their
    /// transaction ended, before the next call). Returns how many DWS rows have no content
    /// dimensions (a valid-ID filter false positive).
    public mutating func encodeAll(_ batch: RowBatch, emittedAt: Int64) -> (dwsWithoutContent: Int, bytes: Int) {
        precondition(encoder.matches(contents: batch.contents.count, users: batch.users.count),
                     "encodeAll(_:) needs the batch of the last lookUp(_:)")
        arena.reset()
        values.removeAll(keepingCapacity: true)
        values.reserveCapacity(batch.dwmCount + batch.dwsCount)
        dwmRows = batch.dwmCount
        var bytes = 0
        for i in 0..<batch.dwmCount {
            buffer.removeAll()
            encoder.encode(batch.dwmRow(i), emittedAt: emittedAt, into: buffer)
            values.append(arena.append(buffer.bytes))
            bytes += buffer.count
        }
        var withoutContent = 0
        for i in 0..<batch.dwsCount {
            let r = batch.dwsRow(i)
            buffer.removeAll()
            encoder.encode(r, emittedAt: emittedAt, into: buffer)
            values.append(arena.append(buffer.bytes))
            bytes += buffer.count
            if !encoder.hasContent(r.content) { withoutContent += 1 }
        }
        return (withoutContent, bytes)
    }

    /// DWM row `i` of the last ``encodeAll(_:emittedAt:)``.
    @inline(__always)
    public func dwmValue(_ i: Int) -> UnsafeRawBufferPointer { values[i] }

    /// DWS row `i` of the last ``encodeAll(_:emittedAt:)``.
    @inline(__always)
    public func dwsValue(_ i: Int) -> UnsafeRawBufferPointer { values[dwmRows + i] }

    /// Whether a DWS row's content had dimensions in the last ``lookUp(_:)`` (a row without is a
    /// valid-ID filter false positive).
    public func hasContent(_ row: BatchDWSRow) -> Bool { encoder.hasContent(row.content) }
}
