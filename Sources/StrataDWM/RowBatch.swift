import StrataCore

// The rows of one collect, held by columns for the dwm job: ids interned once per batch (the
// enricher looks up each distinct id by its number and the encoder reads the bytes back), counts
// in one flat buffer. Filling it allocates nothing per row, and one batch is reused for every
// transaction, where an `Emission` builds two or three Strings and a counts array per row and
// frees them all after the commit.

public final class RowBatch: RowSink {
    public let actionCount: Int
    // Unchecked exclusivity: the batch is filled and read by one thread, and a class's checked
    // stored properties cost a dynamic access check on every append.
    /// The distinct content ids of the batch's DWM and DWS rows, numbered from 0.
    @exclusivity(unchecked) public private(set) var contents = InternTable()
    /// The distinct user ids of the batch's DWM rows, numbered from 0.
    @exclusivity(unchecked) public private(set) var users = InternTable()
    @exclusivity(unchecked) private var strategies = InternTable()

    @exclusivity(unchecked) private var dwmMinute = RawBuffer<Int64>(), dwmPlayMs = RawBuffer<Int64>(), dwmRev = RawBuffer<Int64>()
    @exclusivity(unchecked) private var dwmContent = RawBuffer<UInt32>(), dwmUser = RawBuffer<UInt32>(), dwmStrategy = RawBuffer<UInt32>()
    @exclusivity(unchecked) private var dwmFinal = RawBuffer<Bool>()
    @exclusivity(unchecked) private var dwmCounts = RawBuffer<Int64>()
    @exclusivity(unchecked) private var dwsMinute = RawBuffer<Int64>(), dwsPlayMs = RawBuffer<Int64>(), dwsRev = RawBuffer<Int64>(), dwsUv = RawBuffer<Int64>()
    @exclusivity(unchecked) private var dwsContent = RawBuffer<UInt32>()
    @exclusivity(unchecked) private var dwsFinal = RawBuffer<Bool>()
    @exclusivity(unchecked) private var dwsCounts = RawBuffer<Int64>()

    private static let noStrategy = UInt32.max
    /// A batch that held more rows than this gives its memory back when emptied (a catch-up's or
    /// a restart's big final transaction must not stay resident); smaller ones keep it for reuse.
    private static let keptRows = 1 << 18

    public init(actionCount: Int) { self.actionCount = actionCount }

    deinit { freeStorage() }

    public var dwmCount: Int { dwmMinute.count }
    public var dwsCount: Int { dwsMinute.count }
    public var isEmpty: Bool { dwmCount == 0 && dwsCount == 0 }

    /// Empties the batch for the next collect.
    public func removeAll() {
        if dwmCount + dwsCount > Self.keptRows {
            freeStorage()
            contents = InternTable(); users = InternTable(); strategies = InternTable()
            dwmMinute = RawBuffer(); dwmPlayMs = RawBuffer(); dwmRev = RawBuffer()
            dwmContent = RawBuffer(); dwmUser = RawBuffer(); dwmStrategy = RawBuffer()
            dwmFinal = RawBuffer(); dwmCounts = RawBuffer()
            dwsMinute = RawBuffer(); dwsPlayMs = RawBuffer(); dwsRev = RawBuffer(); dwsUv = RawBuffer()
            dwsContent = RawBuffer(); dwsFinal = RawBuffer(); dwsCounts = RawBuffer()
            return
        }
        contents.removeAll(); users.removeAll(); strategies.removeAll()
        dwmMinute.removeAll(); dwmPlayMs.removeAll(); dwmRev.removeAll()
        dwmContent.removeAll(); dwmUser.removeAll(); dwmStrategy.removeAll()
        dwmFinal.removeAll(); dwmCounts.removeAll()
        dwsMinute.removeAll(); dwsPlayMs.removeAll(); dwsRev.removeAll(); dwsUv.removeAll()
        dwsContent.removeAll(); dwsFinal.removeAll(); dwsCounts.removeAll()
    }

    private func freeStorage() {
        contents.deallocate(); users.deallocate(); strategies.deallocate()
        dwmMinute.deallocate(); dwmPlayMs.deallocate(); dwmRev.deallocate()
        dwmContent.deallocate(); dwmUser.deallocate(); dwmStrategy.deallocate()
        dwmFinal.deallocate(); dwmCounts.deallocate()
        dwsMinute.deallocate(); dwsPlayMs.deallocate(); dwsRev.deallocate(); dwsUv.deallocate()
        dwsContent.deallocate(); dwsFinal.deallocate(); dwsCounts.deallocate()
    }

    // MARK: Filling (the engine's sink)

    public func dwm(_ row: DWMRowView) {
        dwmMinute.append(row.minute)
        dwmContent.append(contents.intern(row.contentId, hash: ByteHash.hash(row.contentId)))
        dwmUser.append(users.intern(row.userId, hash: ByteHash.hash(row.userId)))
        dwmStrategy.append(row.strategy.map { strategies.intern($0, hash: ByteHash.hash($0)) } ?? Self.noStrategy)
        dwmPlayMs.append(row.playMs)
        dwmFinal.append(row.isFinal)
        dwmRev.append(row.rev)
        for a in 0..<actionCount { dwmCounts.append(row.count(a)) }
    }

    public func dws(_ row: DWSRowView) {
        dwsMinute.append(row.minute)
        dwsContent.append(contents.intern(row.contentId, hash: ByteHash.hash(row.contentId)))
        dwsPlayMs.append(row.playMs)
        dwsUv.append(row.uv)
        dwsFinal.append(row.isFinal)
        dwsRev.append(row.rev)
        for a in 0..<actionCount { dwsCounts.append(row.count(a)) }
    }

    /// Appends materialized rows (tests and `strata bench enrich` build batches this way).
    public func append(_ emission: Emission) {
        for r in emission.dwm {
            precondition(r.counts.count == actionCount, "a DWM row with \(r.counts.count) counts in a batch of \(actionCount) actions")
            dwmMinute.append(r.minute)
            dwmContent.append(Self.intern(r.contentId, in: &contents))
            dwmUser.append(Self.intern(r.userId, in: &users))
            dwmStrategy.append(r.strategy.map { Self.intern($0, in: &strategies) } ?? Self.noStrategy)
            dwmPlayMs.append(r.playMs)
            dwmFinal.append(r.isFinal)
            dwmRev.append(r.rev)
            for c in r.counts { dwmCounts.append(c) }
        }
        for r in emission.dws {
            precondition(r.counts.count == actionCount, "a DWS row with \(r.counts.count) counts in a batch of \(actionCount) actions")
            dwsMinute.append(r.minute)
            dwsContent.append(Self.intern(r.contentId, in: &contents))
            dwsPlayMs.append(r.playMs)
            dwsUv.append(r.uv)
            dwsFinal.append(r.isFinal)
            dwsRev.append(r.rev)
            for c in r.counts { dwsCounts.append(c) }
        }
    }

    private static func intern(_ s: String, in table: inout InternTable) -> UInt32 {
        var s = s
        return s.withUTF8 { u in
            let b = UnsafeRawBufferPointer(u)
            return table.intern(b, hash: ByteHash.hash(b))
        }
    }

    // MARK: Reading

    /// DWM row `i`; its buffers are valid until the batch is emptied or filled again.
    @inline(__always)
    public func dwmRow(_ i: Int) -> BatchDWMRow {
        let s = dwmStrategy[i]
        return BatchDWMRow(minute: dwmMinute[i], content: dwmContent[i], user: dwmUser[i],
                           contentId: contents.bytes(dwmContent[i]), userId: users.bytes(dwmUser[i]),
                           strategy: s == Self.noStrategy ? nil : strategies.bytes(s),
                           counts: UnsafeBufferPointer(start: dwmCounts.pointer(i * actionCount), count: actionCount),
                           playMs: dwmPlayMs[i], isFinal: dwmFinal[i], rev: dwmRev[i])
    }

    /// DWS row `i`, as ``dwmRow(_:)``.
    @inline(__always)
    public func dwsRow(_ i: Int) -> BatchDWSRow {
        BatchDWSRow(minute: dwsMinute[i], content: dwsContent[i], contentId: contents.bytes(dwsContent[i]),
                    counts: UnsafeBufferPointer(start: dwsCounts.pointer(i * actionCount), count: actionCount),
                    playMs: dwsPlayMs[i], uv: dwsUv[i], isFinal: dwsFinal[i], rev: dwsRev[i])
    }

    /// The rows as `Emission` values, in order (for tests and for comparing with ``WindowEngine/collect(nowMs:earlyRevisions:dwmFinalsBudget:)``).
    public var emission: Emission {
        var e = Emission()
        e.dwm = (0..<dwmCount).map { i in
            let r = dwmRow(i)
            return DWMRow(minute: r.minute, contentId: String(decoding: r.contentId, as: UTF8.self),
                          userId: String(decoding: r.userId, as: UTF8.self), counts: Array(r.counts), playMs: r.playMs,
                          strategy: r.strategy.map { String(decoding: $0, as: UTF8.self) }, isFinal: r.isFinal, rev: r.rev)
        }
        e.dws = (0..<dwsCount).map { i in
            let r = dwsRow(i)
            return DWSRow(minute: r.minute, contentId: String(decoding: r.contentId, as: UTF8.self), counts: Array(r.counts),
                          playMs: r.playMs, uv: r.uv, isFinal: r.isFinal, rev: r.rev)
        }
        return e
    }
}

/// One DWM row of a ``RowBatch``: `content` and `user` number the ids among the batch's distinct ones.
public struct BatchDWMRow {
    public let minute: Int64
    public let content: UInt32, user: UInt32
    public let contentId: UnsafeRawBufferPointer, userId: UnsafeRawBufferPointer
    public let strategy: UnsafeRawBufferPointer?
    /// By `WindowConfig.actions`.
    public let counts: UnsafeBufferPointer<Int64>
    public let playMs: Int64
    public let isFinal: Bool
    public let rev: Int64
}

/// One DWS row of a ``RowBatch``.
public struct BatchDWSRow {
    public let minute: Int64
    public let content: UInt32
    public let contentId: UnsafeRawBufferPointer
    public let counts: UnsafeBufferPointer<Int64>
    public let playMs: Int64
    public let uv: Int64
    public let isFinal: Bool
    public let rev: Int64
}
