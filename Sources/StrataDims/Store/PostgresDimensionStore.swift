import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The production dimension store: PostgreSQL through postgres-nio's pooled `PostgresClient`.
///
/// The protocol is synchronous, so every call blocks its thread until the async query finished
/// (see ``BlockingBridge``): call it from the job's own threads, never from an async task or actor.
/// Lookups bind each chunk of ids as one `text[]` parameter (`= ANY($1)`); chunks run a few at a
/// time on separate pooled connections.
///
/// Every call is bounded by `stallTimeout`: a call that gets no answer for that long (no chunk
/// answered, no statement finished) is abandoned and fails with `DimensionStoreError.timeout`, which
/// the cache's `StoreWait` retries. The bound exists because postgres-nio's pool can lose a request
/// that is waiting for a connection when the server cuts its connections (an immediate shutdown or
/// a crash): the request is then never answered, even after the server is back, and only a fresh
/// request gets through (`PostgresRestartTests` reproduces it).
public final class PostgresDimensionStore: DimensionStore {
    public let chunkSize: Int
    /// How long a blocking call may go without an answer before it is abandoned (see above).
    public let stallTimeout: Duration

    private let client: PostgresClient
    private let runTask: Task<Void, Never>
    private let logger: Logger
    private let queries = Atomic<Int>(0)
    private let parallelChunks: Int
    static let pageSize = 10_000
    static let upsertBatch = 2_000
    /// Key of the advisory lock that serialises concurrent `migrate()` calls.
    static let migrationLockKey: Int64 = 0x5354_5241_5441_0001

    /// `postgres://user:password@host:port/database[?sslmode=…]`; connects and runs `SELECT 1`
    /// (within `connectTimeout`) so a wrong address fails here.
    public init(url: String, chunkSize: Int = 500, maxConnections: Int = 8,
                connectTimeout: Duration = .seconds(10), stallTimeout: Duration = .seconds(15)) throws {
        precondition(chunkSize > 0, "chunkSize must be positive")
        var config = try Self.configuration(url)
        config.options.connectTimeout = connectTimeout
        config.options.maximumConnections = max(1, maxConnections)
        self.chunkSize = chunkSize
        self.stallTimeout = stallTimeout
        self.parallelChunks = max(1, min(4, maxConnections))
        let logger = Logger(label: "strata.dims.postgres")
        self.logger = logger
        let client = PostgresClient(configuration: config, backgroundLogger: logger)
        self.client = client
        self.runTask = Task.detached { await client.run() }
        do {
            try BlockingBridge.run(timeout: connectTimeout, what: "connecting to \(Self.redacted(url))") {
                _ = try await client.query("SELECT 1", logger: logger).collect()
                return ()
            }
        } catch {
            runTask.cancel()
            throw DimensionStoreError.database("cannot connect to \(Self.redacted(url)): \(Self.describe(error))")
        }
    }

    deinit { runTask.cancel() }

    /// Closes the pool; later calls fail.
    public func close() { runTask.cancel() }

    public var queryCount: Int { queries.load(ordering: .relaxed) }

    // MARK: Address

    /// Parses the URL into a pool configuration. `sslmode`: disable (default), prefer, require
    /// (encrypted, certificate not verified, as libpq) or verify-full.
    static func configuration(_ url: String) throws -> PostgresClient.Configuration {
        guard let c = URLComponents(string: url), c.scheme == "postgres" || c.scheme == "postgresql" else {
            throw DimensionStoreError.invalidAddress("'\(redacted(url))': expected postgres://user:password@host:port/database")
        }
        guard let host = c.host, !host.isEmpty else {
            throw DimensionStoreError.invalidAddress("'\(redacted(url))': missing host")
        }
        let user = c.user ?? "postgres"
        let database = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        var tls = PostgresClient.Configuration.TLS.disable
        for item in c.queryItems ?? [] {
            guard item.name == "sslmode" else {
                throw DimensionStoreError.invalidAddress("'\(redacted(url))': unsupported parameter \(item.name)")
            }
            switch item.value ?? "" {
            case "disable": tls = .disable
            case "prefer":
                var t = TLSConfiguration.makeClientConfiguration()
                t.certificateVerification = .none
                tls = .prefer(t)
            case "require":
                var t = TLSConfiguration.makeClientConfiguration()
                t.certificateVerification = .none
                tls = .require(t)
            case "verify-full": tls = .require(.makeClientConfiguration())
            case let other:
                throw DimensionStoreError.invalidAddress("'\(redacted(url))': unsupported sslmode \(other)")
            }
        }
        return PostgresClient.Configuration(host: host, port: c.port ?? 5432, username: user, password: c.password,
                                            database: database.isEmpty ? nil : database, tls: tls)
    }

    /// The URL without its password, for messages.
    static func redacted(_ url: String) -> String {
        guard var c = URLComponents(string: url), c.password != nil else { return url }
        c.password = "***"
        return c.string ?? url
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? PSQLError { return String(reflecting: e) }
        return "\(error)"
    }

    /// A failed call as the store's error: `.rejected` when the server answered with an error a
    /// retry cannot outlive, `.database` otherwise (a cut connection, a server shutting down or
    /// starting, a deadlock), which `StoreWait` waits out.
    static func storeError(_ what: String, _ error: any Error) -> DimensionStoreError {
        let message = "\(what): \(describe(error))"
        guard let state = sqlState(error) else { return .database(message) }
        // SQLSTATE classes a later try can outlive: 08 connection exception, 40 transaction
        // rollback (serialization failure, deadlock), 53 insufficient resources, 57 operator
        // intervention (admin or crash shutdown, cannot connect now), 58 system error; and 55P03
        // lock not available, 25006 read-only transaction (a standby not yet promoted, in a failover).
        let transient = ["08", "40", "53", "57", "58"].contains(String(state.prefix(2))) || state == "55P03" || state == "25006"
        return transient ? .database(message) : .rejected(message)
    }

    /// The SQLSTATE of the server's answer inside `error`, if the server answered.
    private static func sqlState(_ error: any Error) -> String? {
        if let e = error as? PSQLError { return e.code == .server ? e.serverInfo?[.sqlState] : nil }
        if let t = error as? PostgresTransactionError {
            for inner in [t.beginError, t.closureError, t.commitError, t.rollbackError] {
                if let inner, let state = sqlState(inner) { return state }
            }
        }
        return nil
    }

    // MARK: Calls

    /// Runs `work` on the pool; it may `tick()` its progress after each step so a long call is not
    /// taken for a stalled one. `stall` replaces `stallTimeout` for a statement that answers in
    /// one piece however long it runs.
    private func call<T: Sendable>(_ what: String, stall: Duration? = nil,
                                   _ work: @escaping @Sendable (BlockingBridge.Progress) async throws -> T) throws -> T {
        try Self.blocking(what, stall: stall ?? stallTimeout, work)
    }

    /// A call on a postgres-nio pool from a job's thread, bounded by `stall` without progress
    /// (``BlockingBridge``), its failure as the store's error (``storeError(_:_:)``). The
    /// warehouse tables' client calls through it too.
    static func blocking<T: Sendable>(_ what: String, stall: Duration,
                                      _ work: @escaping @Sendable (BlockingBridge.Progress) async throws -> T) throws -> T {
        do {
            return try BlockingBridge.run(stall: stall, what: what, work)
        } catch let e as DimensionStoreError {
            throw e
        } catch {
            throw storeError(what, error)
        }
    }

    public func migrate() throws {
        let logger = self.logger
        try call("migrate") { [client] progress in
            try await client.withTransaction(logger: logger) { conn in
                _ = try await conn.query("SELECT pg_advisory_xact_lock(\(Self.migrationLockKey))", logger: logger).collect()
                for statement in DimensionSchema.statements(DimensionSchema.postgres) {
                    _ = try await conn.query(PostgresQuery(unsafeSQL: statement), logger: logger).collect()
                    progress.tick()
                }
            }
        }
    }

    // MARK: Lookups

    // Each chunk is joined with its ids' positions (`WITH ORDINALITY`), so a row comes back with
    // the position of its id and no map by id is built on either side.

    public func contents(_ ids: [String], row: (Int, ContentDim) throws -> Void) throws {
        let rows = try lookup(ids) { client, chunk, logger in
            var out: [(Int, ContentDim)] = []
            let rows = try await client.query("""
                SELECT v.k, c.title, c.category, c.author_id, c.region, c.status, c.publish_ts
                FROM unnest(\(chunk)::text[]) WITH ORDINALITY AS v(id, k) JOIN content_dim c ON c.content_id = v.id
                """, logger: logger)
            for try await (k, title, category, author, region, status, ts) in
                rows.decode((Int64, String, String, String, String, String, Int64).self) {
                let i = Int(k) - 1
                out.append((i, ContentDim(contentId: chunk[i], title: title, category: category, authorId: author,
                                          region: region, status: status, publishTs: ts)))
            }
            return out
        }
        for (i, r) in rows { try row(i, r) }
    }

    public func users(_ ids: [String], row: (Int, UserDim) throws -> Void) throws {
        let rows = try lookup(ids) { client, chunk, logger in
            var out: [(Int, UserDim)] = []
            let rows = try await client.query("""
                SELECT v.k, u.gender, u.age_band, u.province, u.city_tier
                FROM unnest(\(chunk)::text[]) WITH ORDINALITY AS v(id, k) JOIN user_dim u ON u.user_id = v.id
                """, logger: logger)
            for try await (k, gender, age, province, tier) in rows.decode((Int64, String, String, String, Int32).self) {
                let i = Int(k) - 1
                out.append((i, UserDim(userId: chunk[i], gender: gender, ageBand: age, province: province, cityTier: Int(tier))))
            }
            return out
        }
        for (i, r) in rows { try row(i, r) }
    }

    /// Runs `query` once per chunk, at most `parallelChunks` at a time; it returns rows by their
    /// position in the chunk, and they are returned by their position in `ids`.
    private func lookup<Row: Sendable>(
        _ ids: [String],
        _ query: @escaping @Sendable (PostgresClient, [String], Logger) async throws -> [(Int, Row)]
    ) throws -> [(Int, Row)] {
        if ids.isEmpty { return [] }
        let starts = Array(stride(from: 0, to: ids.count, by: chunkSize))
        queries.add(starts.count, ordering: .relaxed)
        let parallel = parallelChunks, logger = self.logger, chunkSize = self.chunkSize
        return try call("lookup of \(ids.count) ids") { [client] progress in
            try await withThrowingTaskGroup(of: [(Int, Row)].self) { group in
                var next = 0, out: [(Int, Row)] = []
                out.reserveCapacity(ids.count)
                func start(_ n: Int) {
                    let first = starts[n], chunk = Array(ids[first..<min(first + chunkSize, ids.count)])
                    group.addTask { try await query(client, chunk, logger).map { (first + $0.0, $0.1) } }
                }
                while next < min(parallel, starts.count) {
                    start(next)
                    next += 1
                }
                while let rows = try await group.next() {
                    progress.tick()
                    out += rows
                    if next < starts.count {
                        start(next)
                        next += 1
                    }
                }
                return out
            }
        }
    }

    // MARK: Writes

    /// Last occurrence of each id wins (a single INSERT … ON CONFLICT may not touch a row twice).
    private static func lastWins<T>(_ rows: [T], id: (T) -> String) -> [T] {
        var seen = Set<String>()
        var out: [T] = []
        for r in rows.reversed() where seen.insert(id(r)).inserted { out.append(r) }
        return out.reversed()
    }

    public func upsert(contents: [ContentDim]) throws {
        let rows = Self.lastWins(contents, id: \.contentId)
        if rows.isEmpty { return }
        let logger = self.logger
        try call("upsert of \(rows.count) contents") { [client] progress in
            try await client.withTransaction(logger: logger) { conn in
                for start in stride(from: 0, to: rows.count, by: Self.upsertBatch) {
                    let b = rows[start..<min(start + Self.upsertBatch, rows.count)]
                    // One statement per batch: the columns travel as arrays and are unnested.
                    _ = try await conn.query("""
                        INSERT INTO content_dim (content_id, title, category, author_id, region, status, publish_ts)
                        SELECT * FROM unnest(\(b.map(\.contentId))::text[], \(b.map(\.title))::text[],
                          \(b.map(\.category))::text[], \(b.map(\.authorId))::text[], \(b.map(\.region))::text[],
                          \(b.map(\.status))::text[], \(b.map(\.publishTs))::int8[])
                        ON CONFLICT (content_id) DO UPDATE SET title = excluded.title, category = excluded.category,
                          author_id = excluded.author_id, region = excluded.region, status = excluded.status,
                          publish_ts = excluded.publish_ts
                        """, logger: logger).collect()
                    progress.tick()
                }
            }
        }
    }

    public func upsert(users: [UserDim]) throws {
        let rows = Self.lastWins(users, id: \.userId)
        if rows.isEmpty { return }
        let logger = self.logger
        try call("upsert of \(rows.count) users") { [client] progress in
            try await client.withTransaction(logger: logger) { conn in
                for start in stride(from: 0, to: rows.count, by: Self.upsertBatch) {
                    let b = rows[start..<min(start + Self.upsertBatch, rows.count)]
                    _ = try await conn.query("""
                        INSERT INTO user_dim (user_id, gender, age_band, province, city_tier)
                        SELECT * FROM unnest(\(b.map(\.userId))::text[], \(b.map(\.gender))::text[],
                          \(b.map(\.ageBand))::text[], \(b.map(\.province))::text[], \(b.map { Int32(clamping: $0.cityTier) })::int4[])
                        ON CONFLICT (user_id) DO UPDATE SET gender = excluded.gender, age_band = excluded.age_band,
                          province = excluded.province, city_tier = excluded.city_tier
                        """, logger: logger).collect()
                    progress.tick()
                }
            }
        }
    }

    public func deleteContents(_ ids: [String]) throws {
        if ids.isEmpty { return }
        let logger = self.logger
        try call("delete of \(ids.count) contents") { [client] _ in
            _ = try await client.query("DELETE FROM content_dim WHERE content_id = ANY(\(ids))", logger: logger).collect()
            return ()
        }
    }

    public func deleteUsers(_ ids: [String]) throws {
        if ids.isEmpty { return }
        let logger = self.logger
        try call("delete of \(ids.count) users") { [client] _ in
            _ = try await client.query("DELETE FROM user_dim WHERE user_id = ANY(\(ids))", logger: logger).collect()
            return ()
        }
    }

    // MARK: Scans

    public func forEachContentId(_ body: (String) throws -> Void) throws {
        try forEachId(table: "content_dim", column: "content_id", body)
    }

    public func forEachUserId(_ body: (String) throws -> Void) throws {
        try forEachId(table: "user_dim", column: "user_id", body)
    }

    /// Keyset pagination: the first page without a lower bound, then `> last id of the page`.
    private func forEachId(table: String, column: String, _ body: (String) throws -> Void) throws {
        var last: String? = nil
        let logger = self.logger
        let first = "SELECT \(column) FROM \(table) ORDER BY \(column) LIMIT \(Self.pageSize)"
        let next = "SELECT \(column) FROM \(table) WHERE \(column) > $1 ORDER BY \(column) LIMIT \(Self.pageSize)"
        while true {
            let after = last
            let ids = try call("scan of \(table)") { [client] _ in
                var query = PostgresQuery(unsafeSQL: after == nil ? first : next)
                if let after { query.binds.append(after) }
                var ids: [String] = []
                for try await id in try await client.query(query, logger: logger).decode(String.self) { ids.append(id) }
                return ids
            }
            queries.add(1, ordering: .relaxed)
            for id in ids { try body(id) }
            if ids.count < Self.pageSize { return }
            last = ids[ids.count - 1]
        }
    }

    public func contentCount() throws -> Int { try count("content_dim") }
    public func userCount() throws -> Int { try count("user_dim") }

    private func count(_ table: String) throws -> Int {
        let logger = self.logger
        queries.add(1, ordering: .relaxed)
        // A count of a table of a hundred million ids takes seconds and reports nothing before its end.
        return try call("count of \(table)", stall: max(stallTimeout, .seconds(120))) { [client] _ in
            let rows = try await client.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(table)"), logger: logger)
            for try await n in rows.decode(Int64.self) { return Int(n) }
            return 0
        }
    }
}
