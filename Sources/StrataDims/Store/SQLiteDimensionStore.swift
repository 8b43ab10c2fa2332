internal import CSQLite
import Synchronization

/// The embedded dimension store: one SQLite file in WAL mode.
///
/// Two connections: lookups and id scans use a reader, writes a writer, so a bulk load does not
/// stall the lookups of a running job (WAL readers see the last committed state). Each connection
/// is used under its own mutex, which makes the store safe to share between threads; other
/// processes (e.g. `strata dims load` while jobs run) wait on SQLite's busy timeout.
public final class SQLiteDimensionStore: DimensionStore {
    public let path: String
    /// Ids per lookup query.
    public let chunkSize: Int

    private final class Locked: Sendable {
        let connection: Mutex<SQLiteConnection>
        init(_ c: sending SQLiteConnection) { connection = Mutex(c) }
    }

    private let reader: Locked
    private let writer: Locked
    private let queries = Atomic<Int>(0)
    /// ``positionedValues(_:)`` of a full chunk, made once.
    private let fullChunkValues: String
    static let pageSize = 10_000

    /// Opens (creating when missing) the database at `path`; `:memory:` gives a private
    /// in-memory store with a single connection.
    public init(path: String, chunkSize: Int = 500, busyTimeoutMs: Int32 = 10_000) throws {
        precondition(chunkSize > 0 && chunkSize <= 30_000, "chunkSize must be in 1...30000 (SQLite's bound-parameter limit)")
        self.path = path
        self.chunkSize = chunkSize
        fullChunkValues = Self.positionedValues(chunkSize)
        let w = try SQLiteConnection(path: path)
        try Self.configure(w, busyTimeoutMs: busyTimeoutMs, writer: true, inMemory: path == ":memory:")
        writer = Locked(w)
        if path == ":memory:" {
            reader = writer
        } else {
            let r = try SQLiteConnection(path: path)
            try Self.configure(r, busyTimeoutMs: busyTimeoutMs, writer: false, inMemory: false)
            reader = Locked(r)
        }
    }

    private static func configure(_ c: SQLiteConnection, busyTimeoutMs: Int32, writer: Bool, inMemory: Bool) throws {
        try c.exec("PRAGMA busy_timeout = \(busyTimeoutMs)")
        if writer && !inMemory {
            // WAL: readers never block the writer and vice versa. synchronous=NORMAL is durable
            // against process crashes; dimensions can be reloaded after a power loss.
            try c.exec("PRAGMA journal_mode = WAL")
            try c.exec("PRAGMA synchronous = NORMAL")
        }
    }

    public var queryCount: Int { queries.load(ordering: .relaxed) }

    public func migrate() throws {
        try writer.connection.withLock { c in
            try c.transaction { try c.exec(DimensionSchema.sqlite) }
        }
    }

    // MARK: Lookups

    // Each chunk's ids are joined as a `VALUES` list of (position, id), so a row comes back with
    // the position of its id: no map by id is built on either side.

    public func contents(_ ids: [String], row: (Int, ContentDim) throws -> Void) throws {
        try lookup(ids, "SELECT v.column1, c.title, c.category, c.author_id, c.region, c.status, c.publish_ts FROM ",
                   " AS v JOIN content_dim c ON c.content_id = v.column2") { s, id in
            ContentDim(contentId: id, title: s.text(1), category: s.text(2), authorId: s.text(3), region: s.text(4),
                       status: s.text(5), publishTs: s.int64(6))
        } row: { try row($0, $1) }
    }

    public func users(_ ids: [String], row: (Int, UserDim) throws -> Void) throws {
        try lookup(ids, "SELECT v.column1, u.gender, u.age_band, u.province, u.city_tier FROM ",
                   " AS v JOIN user_dim u ON u.user_id = v.column2") { s, id in
            UserDim(userId: id, gender: s.text(1), ageBand: s.text(2), province: s.text(3), cityTier: Int(truncatingIfNeeded: s.int64(4)))
        } row: { try row($0, $1) }
    }

    /// One query per chunk of ids, `select` + `(VALUES (0,?),(1,?),…)` + `join`, every id a bound
    /// parameter; `make` reads a row (column 0 is the position). A chunk's rows are handed to
    /// `row` after the reader is let go.
    private func lookup<Row: Sendable>(_ ids: [String], _ select: String, _ join: String,
                                       make: @Sendable (SQLiteStatement, String) -> Row, row: (Int, Row) throws -> Void) throws {
        var start = 0
        while start < ids.count {
            let end = min(start + chunkSize, ids.count)
            let rows = try reader.connection.withLock { c in
                var chunk: [(Int, Row)] = []
                chunk.reserveCapacity(end - start)
                let values = end - start == chunkSize ? fullChunkValues : Self.positionedValues(end - start)
                try c.withStatement(select + values + join) { s in
                    for (i, id) in ids[start..<end].enumerated() { try s.bind(Int32(i + 1), id) }
                    queries.add(1, ordering: .relaxed)
                    while try s.step() {
                        let i = start + Int(s.int64(0))
                        chunk.append((i, make(s, ids[i])))
                    }
                }
                return chunk
            }
            for (i, r) in rows { try row(i, r) }
            start = end
        }
    }

    /// `(VALUES (0,?),(1,?),…)` for `n` ids: positions are literals of the statement's text (the
    /// same text for every chunk of a size, so it is prepared once), ids are parameters.
    static func positionedValues(_ n: Int) -> String {
        var s = "(VALUES "
        s.reserveCapacity(8 * n + 10)
        for i in 0..<n { s += i == 0 ? "(0,?)" : ",(\(i),?)" }
        return s + ")"
    }

    // MARK: Writes

    public func upsert(contents: [ContentDim]) throws {
        if contents.isEmpty { return }
        try writer.connection.withLock { c in
            try c.transaction {
                try c.withStatement("""
                    INSERT INTO content_dim (content_id, title, category, author_id, region, status, publish_ts)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (content_id) DO UPDATE SET title = excluded.title, category = excluded.category,
                      author_id = excluded.author_id, region = excluded.region, status = excluded.status,
                      publish_ts = excluded.publish_ts
                    """) { s in
                    for d in contents {
                        s.reset()
                        try s.bind(1, d.contentId); try s.bind(2, d.title); try s.bind(3, d.category)
                        try s.bind(4, d.authorId); try s.bind(5, d.region); try s.bind(6, d.status)
                        try s.bind(7, d.publishTs)
                        try s.run()
                    }
                }
            }
        }
    }

    public func upsert(users: [UserDim]) throws {
        if users.isEmpty { return }
        try writer.connection.withLock { c in
            try c.transaction {
                try c.withStatement("""
                    INSERT INTO user_dim (user_id, gender, age_band, province, city_tier) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (user_id) DO UPDATE SET gender = excluded.gender, age_band = excluded.age_band,
                      province = excluded.province, city_tier = excluded.city_tier
                    """) { s in
                    for u in users {
                        s.reset()
                        try s.bind(1, u.userId); try s.bind(2, u.gender); try s.bind(3, u.ageBand)
                        try s.bind(4, u.province); try s.bind(5, Int64(u.cityTier))
                        try s.run()
                    }
                }
            }
        }
    }

    public func deleteContents(_ ids: [String]) throws {
        try delete(ids, sql: "DELETE FROM content_dim WHERE content_id = ?")
    }

    public func deleteUsers(_ ids: [String]) throws {
        try delete(ids, sql: "DELETE FROM user_dim WHERE user_id = ?")
    }

    private func delete(_ ids: [String], sql: String) throws {
        if ids.isEmpty { return }
        try writer.connection.withLock { c in
            try c.transaction {
                try c.withStatement(sql) { s in
                    for id in ids {
                        s.reset()
                        try s.bind(1, id)
                        try s.run()
                    }
                }
            }
        }
    }

    // MARK: Scans

    public func forEachContentId(_ body: (String) throws -> Void) throws {
        try forEachId(table: "content_dim", column: "content_id", body)
    }

    public func forEachUserId(_ body: (String) throws -> Void) throws {
        try forEachId(table: "user_dim", column: "user_id", body)
    }

    /// Keyset pagination: each page is read under the lock, `body` runs without it.
    private func forEachId(table: String, column: String, _ body: (String) throws -> Void) throws {
        var last: String? = nil
        while true {
            let sql = last == nil
                ? "SELECT \(column) FROM \(table) ORDER BY \(column) LIMIT \(Self.pageSize)"
                : "SELECT \(column) FROM \(table) WHERE \(column) > ? ORDER BY \(column) LIMIT \(Self.pageSize)"
            let page: [String] = try reader.connection.withLock { c in
                try c.withStatement(sql) { s in
                    if let last { try s.bind(1, last) }
                    queries.add(1, ordering: .relaxed)
                    var ids: [String] = []
                    ids.reserveCapacity(Self.pageSize)
                    while try s.step() { ids.append(s.text(0)) }
                    return ids
                }
            }
            for id in page { try body(id) }
            if page.count < Self.pageSize { return }
            last = page.last
        }
    }

    public func contentCount() throws -> Int { try count("content_dim") }
    public func userCount() throws -> Int { try count("user_dim") }

    private func count(_ table: String) throws -> Int {
        try reader.connection.withLock { c in
            try c.withStatement("SELECT count(*) FROM \(table)") { s in
                queries.add(1, ordering: .relaxed)
                guard try s.step() else { return 0 }
                return Int(s.int64(0))
            }
        }
    }
}
