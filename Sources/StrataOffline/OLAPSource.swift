public import StrataDims
public import StrataQuery

/// `dws_minute` as the query language sees it: each stored row in the shape of a `dws.content`
/// record, its `content` object joined from the dimension store (as it is now: a content's title or
/// category changed since the minute shows the new value).
public struct OLAPSource {
    private let table: any DWSTable
    private let dims: any DimensionStore
    private var contentCache: [String: Value] = [:]

    public init(table: any DWSTable, dims: any DimensionStore) {
        self.table = table
        self.dims = dims
    }

    /// Rows with `from ≤ minute < to` in (minute, content_id) order, handed over in batches.
    public mutating func rows(from: Int64, to: Int64, batch: Int = 20_000, _ body: ([[String: Value]]) throws -> Void) throws {
        var pending: [DWSTableRow] = []
        pending.reserveCapacity(batch)
        func flush() throws {
            let missing = Set(pending.map(\.contentId)).filter { contentCache[$0] == nil }
            if !missing.isEmpty {
                let found = try dims.contents(Array(missing))
                for id in missing { contentCache[id] = found[id].map(Self.contentObject) ?? .null }
            }
            try body(pending.map { Self.row($0, content: contentCache[$0.contentId] ?? .null) })
            pending.removeAll(keepingCapacity: true)
        }
        try table.rows(from: from, to: to) { row in
            pending.append(row)
            if pending.count >= batch { try flush() }
        }
        if !pending.isEmpty { try flush() }
    }

    static func contentObject(_ c: ContentDim) -> Value {
        .object(["title": .string(c.title), "category": .string(c.category), "author_id": .string(c.authorId),
                 "region": .string(c.region)])
    }

    static func row(_ r: DWSTableRow, content: Value) -> [String: Value] {
        ["minute": .int(r.minute), "content_id": .string(r.contentId),
         "expose": .int(r.expose), "click": .int(r.click), "play": .int(r.play), "play_ms": .int(r.playMs),
         "like": .int(r.like), "share": .int(r.share), "comment": .int(r.comment), "report": .int(r.report),
         "uv": .int(r.uv), "content": content, "final": .bool(r.isFinal), "rev": .int(r.rev), "emitted_at": .int(r.emittedAt)]
    }
}
