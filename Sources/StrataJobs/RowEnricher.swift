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
    /// The rows of the last pass, and where each one is.
    private let arena: RowArena
    private var values: [UnsafeRawBufferPointer] = []
    private var passStart = 0, passDWMCount = 0
    private let passBytes: Int

    /// `passBytes`: how many bytes of encoded rows one pass of ``encode(_:from:emittedAt:)`` holds
    /// at most (plus one row).
    public init(cache: DimensionCache, actions: [String], passBytes: Int = 32 << 20) {
        self.cache = cache
        encoder = RowEncoder(actions: actions)
        self.passBytes = max(1, passBytes)
        arena = RowArena(retainedBytes: self.passBytes)
    }

    /// Looks up the dimensions of every id the batch's rows carry; returns how many distinct
    /// (content, user) ids were asked for.
    @discardableResult
    public mutating func lookUp(_ batch: RowBatch) throws -> (contents: Int, users: Int) {
        // The batch numbers its distinct ids, with their bytes and hashes; the cache answers by
        // the same numbers.
        let contentIds = batch.contents, userIds = batch.users
        var contents = [ContentDim?](repeating: nil, count: contentIds.count)
        try contents.withUnsafeMutableBufferPointer { out in
            try cache.lookupContents(count: contentIds.count, bytes: { contentIds.bytes(UInt32($0)) },
                                     hash: { contentIds.hash(UInt32($0)) }) { i, c in out[i] = c }
        }
        encoder.setContents(contents)
        encoder.beginUsers(count: userIds.count)
        try cache.lookupUserRowObjectMembers(count: userIds.count, bytes: { userIds.bytes(UInt32($0)) },
                                             hash: { userIds.hash(UInt32($0)) }) { i, members in encoder.setUser(i, members: members) }
        return (contentIds.count, userIds.count)
    }

    /// Encodes the rows of `batch` from row `start` on (DWM rows are numbered first, then DWS
    /// rows), with the dimensions of the last ``lookUp(_:)``, until they are all encoded or the
    /// pass holds `passBytes`. The bytes are kept until the next pass: ``dwmValue(_:)`` and
    /// ``dwsValue(_:)`` lend them, so the rows can be produced without librdkafka's copy (they
    /// must be delivered, or their transaction ended, before the next pass). A transaction with
    /// more rows than one pass holds waits for the delivery of each pass before the next: its
    /// rows' memory stays bounded.
    public mutating func encode(_ batch: RowBatch, from start: Int, emittedAt: Int64) -> EncodedRows {
        precondition(encoder.matches(contents: batch.contents.count, users: batch.users.count),
                     "encode(_:from:emittedAt:) needs the batch of the last lookUp(_:)")
        let dwmCount = batch.dwmCount, total = dwmCount + batch.dwsCount
        precondition(start >= 0 && start <= total, "row \(start) is outside the batch")
        arena.reset()
        values.removeAll(keepingCapacity: true)
        passStart = start
        passDWMCount = dwmCount
        var row = start, withoutContent = 0
        while row < total && arena.heldBytes < passBytes {
            buffer.removeAll()
            if row < dwmCount {
                encoder.encode(batch.dwmRow(row), emittedAt: emittedAt, into: buffer)
            } else {
                let r = batch.dwsRow(row - dwmCount)
                encoder.encode(r, emittedAt: emittedAt, into: buffer)
                if !encoder.hasContent(r.content) { withoutContent += 1 }
            }
            values.append(arena.append(buffer.bytes))
            row += 1
        }
        return EncodedRows(rows: start..<row, dwmCount: dwmCount, dwsWithoutContent: withoutContent, bytes: arena.heldBytes)
    }

    /// DWM row `i` of the last pass (in its ``EncodedRows/dwmRows``).
    @inline(__always)
    public func dwmValue(_ i: Int) -> UnsafeRawBufferPointer { values[i - passStart] }

    /// DWS row `i` of the last pass (in its ``EncodedRows/dwsRows``).
    @inline(__always)
    public func dwsValue(_ i: Int) -> UnsafeRawBufferPointer { values[passDWMCount + i - passStart] }

    /// Whether a DWS row's content had dimensions in the last ``lookUp(_:)`` (a row without is a
    /// valid-ID filter false positive).
    public func hasContent(_ row: BatchDWSRow) -> Bool { encoder.hasContent(row.content) }
}

/// One pass of ``RowEnricher/encode(_:from:emittedAt:)``.
public struct EncodedRows: Sendable {
    /// The rows encoded: DWM rows are `0..<dwmCount`, DWS row `i` is `dwmCount + i`.
    public let rows: Range<Int>
    public let dwmCount: Int
    /// DWS rows of the pass whose content has no dimensions (valid-ID filter false positives).
    public let dwsWithoutContent: Int
    public let bytes: Int

    /// The pass's DWM rows, by DWM row number.
    public var dwmRows: Range<Int> { rows.clamped(to: 0..<dwmCount) }
    /// The pass's DWS rows, by DWS row number.
    public var dwsRows: Range<Int> {
        let r = rows.clamped(to: dwmCount..<max(dwmCount, rows.upperBound))
        return (r.lowerBound - dwmCount)..<(r.upperBound - dwmCount)
    }
}
