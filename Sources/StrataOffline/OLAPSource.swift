public import StrataDims
public import StrataQuery

/// The warehouse tables as the query language sees them: each `dws_minute` row in the shape of a
/// `dws.content` record and each `dwm_minute` row in the shape of a `dwm.content_user` record, their
/// `content` and `user` objects joined from the dimension store (as they are now: a content's title
/// or category changed since the minute shows the new value).
public struct OLAPSource {
    private let table: any DWSTable
    private let dwm: (any DWMTable)?
    private let dims: any DimensionStore
    private var contentCache: [String: Value] = [:]
    private var userCache: [String: Value] = [:]

    public init(table: any DWSTable, dwm: (any DWMTable)? = nil, dims: any DimensionStore) {
        self.table = table
        self.dwm = dwm
        self.dims = dims
    }

    /// `dwm_minute` rows with `from ≤ minute < to` in (minute, content_id, user_id) order, in batches.
    public mutating func dwmRows(from: Int64, to: Int64, batch: Int = 20_000, _ body: ([[String: Value]]) throws -> Void) throws {
        guard let dwm else { return }
        var pending: [DWMTableRow] = []
        pending.reserveCapacity(batch)
        func flush() throws {
            let contents = Set(pending.map(\.contentId)).filter { contentCache[$0] == nil }
            if !contents.isEmpty {
                let found = try dims.contents(Array(contents))
                for id in contents { contentCache[id] = found[id].map(Self.contentObject) ?? .null }
            }
            let users = Set(pending.map(\.userId)).filter { userCache[$0] == nil }
            if !users.isEmpty {
                let found = try dims.users(Array(users))
                for id in users { userCache[id] = found[id].map(Self.userObject) ?? .null }
            }
            try body(pending.map { Self.row($0, content: contentCache[$0.contentId] ?? .null, user: userCache[$0.userId] ?? .null) })
            pending.removeAll(keepingCapacity: true)
            // Users are many: keep the cache to one batch's worth.
            if userCache.count > 4 * batch { userCache.removeAll(keepingCapacity: true) }
        }
        try dwm.rows(from: from, to: to) { row in
            pending.append(row)
            if pending.count >= batch { try flush() }
        }
        if !pending.isEmpty { try flush() }
    }

    static func userObject(_ u: UserDim) -> Value {
        .object(["gender": .string(u.gender), "age_band": .string(u.ageBand), "province": .string(u.province),
                 "city_tier": .int(Int64(u.cityTier))])
    }

    static func row(_ r: DWMTableRow, content: Value, user: Value) -> [String: Value] {
        ["minute": .int(r.minute), "content_id": .string(r.contentId), "user_id": .string(r.userId),
         "expose": .int(r.expose), "click": .int(r.click), "play": .int(r.play), "play_ms": .int(r.playMs),
         "like": .int(r.like), "share": .int(r.share), "comment": .int(r.comment), "report": .int(r.report),
         "strategy": r.strategy.map { .string($0) } ?? .null,
         "content": content, "user": user, "final": .bool(r.isFinal), "rev": .int(r.rev), "emitted_at": .int(r.emittedAt)]
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
