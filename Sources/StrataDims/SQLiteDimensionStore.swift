import CSQLite
import Synchronization

/// The embedded dimension store: one SQLite file in WAL mode.
///
/// Two connections: lookups and id scans use a reader, writes a writer, so a bulk load does not
/// stall the lookups of a running job (WAL readers see the last committed state). Each connection
/// is used under its own mutex, which makes the store safe to share between threads; other
/// processes (e.g. `strata dims load` while jobs run) wait on SQLite's busy timeout.
public final class SQLiteDimensionStore: DimensionStore {
    public let path: String
    /// Ids per `IN (…)` query.
    public let chunkSize: Int

    private final class Locked: Sendable {
        let connection: Mutex<SQLiteConnection>
        init(_ c: sending SQLiteConnection) { connection = Mutex(c) }
    }

    private let reader: Locked
    private let writer: Locked
    private let queries = Atomic<Int>(0)
    static let pageSize = 10_000

    /// Opens (creating when missing) the database at `path`; `:memory:` gives a private
    /// in-memory store with a single connection.
    public init(path: String, chunkSize: Int = 500, busyTimeoutMs: Int32 = 10_000) throws {
        precondition(chunkSize > 0 && chunkSize <= 30_000, "chunkSize must be in 1...30000 (SQLite's bound-parameter limit)")
        self.path = path
        self.chunkSize = chunkSize
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

    public func contents(_ ids: [String]) throws -> [String: ContentDim] {
        var result: [String: ContentDim] = [:]
        result.reserveCapacity(ids.count)
        try lookup(ids, select: "SELECT content_id, title, category, author_id, region, status, publish_ts FROM content_dim WHERE content_id IN ") { s in
            let c = ContentDim(contentId: s.text(0), title: s.text(1), category: s.text(2), authorId: s.text(3),
                               region: s.text(4), status: s.text(5), publishTs: s.int64(6))
            result[c.contentId] = c
        }
        return result
    }

    public func users(_ ids: [String]) throws -> [String: UserDim] {
        var result: [String: UserDim] = [:]
        result.reserveCapacity(ids.count)
        try lookup(ids, select: "SELECT user_id, gender, age_band, province, city_tier FROM user_dim WHERE user_id IN ") { s in
            let u = UserDim(userId: s.text(0), gender: s.text(1), ageBand: s.text(2), province: s.text(3),
                            cityTier: Int(truncatingIfNeeded: s.int64(4)))
            result[u.userId] = u
        }
        return result
    }

    /// One `select (?,?,…)` per chunk of ids, every id a bound parameter.
    private func lookup(_ ids: [String], select: String, row: (SQLiteStatement) -> Void) throws {
        if ids.isEmpty { return }
        try reader.connection.withLock { c in
            var start = 0
            while start < ids.count {
                let end = min(start + chunkSize, ids.count)
                let s = try c.statement(select + Self.placeholders(end - start))
                for (i, id) in ids[start..<end].enumerated() { try s.bind(Int32(i + 1), id) }
                queries.add(1, ordering: .relaxed)
                while try s.step() { row(s) }
                start = end
            }
        }
    }

    static func placeholders(_ n: Int) -> String {
        var s = "("
        s.reserveCapacity(2 * n + 1)
        for i in 0..<n { s += i == 0 ? "?" : ",?" }
        return s + ")"
    }

    // MARK: Writes

    public func upsert(contents: [ContentDim]) throws {
        if contents.isEmpty { return }
        try writer.connection.withLock { c in
            try c.transaction {
                let s = try c.statement("""
                    INSERT INTO content_dim (content_id, title, category, author_id, region, status, publish_ts)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (content_id) DO UPDATE SET title = excluded.title, category = excluded.category,
                      author_id = excluded.author_id, region = excluded.region, status = excluded.status,
                      publish_ts = excluded.publish_ts
                    """)
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

    public func upsert(users: [UserDim]) throws {
        if users.isEmpty { return }
        try writer.connection.withLock { c in
            try c.transaction {
                let s = try c.statement("""
                    INSERT INTO user_dim (user_id, gender, age_band, province, city_tier) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (user_id) DO UPDATE SET gender = excluded.gender, age_band = excluded.age_band,
                      province = excluded.province, city_tier = excluded.city_tier
                    """)
                for u in users {
                    s.reset()
                    try s.bind(1, u.userId); try s.bind(2, u.gender); try s.bind(3, u.ageBand)
                    try s.bind(4, u.province); try s.bind(5, Int64(u.cityTier))
                    try s.run()
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
                let s = try c.statement(sql)
                for id in ids {
                    s.reset()
                    try s.bind(1, id)
                    try s.run()
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
            let page: [String] = try reader.connection.withLock { c in
                let s: SQLiteStatement
                if let last {
                    s = try c.statement("SELECT \(column) FROM \(table) WHERE \(column) > ? ORDER BY \(column) LIMIT \(Self.pageSize)")
                    try s.bind(1, last)
                } else {
                    s = try c.statement("SELECT \(column) FROM \(table) ORDER BY \(column) LIMIT \(Self.pageSize)")
                }
                queries.add(1, ordering: .relaxed)
                var ids: [String] = []
                ids.reserveCapacity(Self.pageSize)
                while try s.step() { ids.append(s.text(0)) }
                return ids
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
            let s = try c.statement("SELECT count(*) FROM \(table)")
            queries.add(1, ordering: .relaxed)
            guard try s.step() else { return 0 }
            return Int(s.int64(0))
        }
    }
}
