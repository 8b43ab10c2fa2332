import Foundation
import Logging
import PostgresNIO
import Synchronization

// The plumbing the warehouse tables (dws_minute, dwm_minute, pricing) share: each table is a
// thin layer of SQL over one of these two.

/// A SQLite writer connection in WAL mode and a reader connection: the sink writes while
/// `strata olap` and `strata reconcile` read. NORMAL synchronous is durable against process
/// crashes; the tables can be rebuilt from their topics after a power loss.
final class SQLiteWarehouseConnections: Sendable {
    final class Locked: Sendable {
        let connection: Mutex<SQLiteConnection>
        init(_ c: sending SQLiteConnection) { connection = Mutex(c) }
    }
    let reader: Locked
    let writer: Locked

    init(path: String, busyTimeoutMs: Int32) throws {
        let w = try SQLiteConnection(path: path)
        try w.exec("PRAGMA busy_timeout = \(busyTimeoutMs)")
        if path != ":memory:" {
            try w.exec("PRAGMA journal_mode = WAL")
            try w.exec("PRAGMA synchronous = NORMAL")
        }
        writer = Locked(w)
        if path == ":memory:" {
            reader = writer
        } else {
            let r = try SQLiteConnection(path: path)
            try r.exec("PRAGMA busy_timeout = \(busyTimeoutMs)")
            reader = Locked(r)
        }
    }

    /// Runs the dimension schema (001) and `scripts` in one transaction: idempotent.
    func migrate(_ scripts: [String]) throws {
        try writer.connection.withLock { c in
            try c.transaction {
                try c.exec(DimensionSchema.sqlite)
                for script in scripts { try c.exec(script) }
            }
        }
    }
}

/// A postgres-nio pool run on its own task, called synchronously from a job's or a command's
/// thread; errors become `DimensionStoreError`. A call that gets no answer for `stallTimeout` (no
/// statement of it finished, no page read) is abandoned and fails with `.timeout`, as the dimension
/// store's are (`PostgresDimensionStore`: the pool can lose a request waiting for a connection
/// when the server cuts them), so a caller that waits the server out asks again.
final class PostgresWarehouseClient: Sendable {
    let client: PostgresClient
    let logger: Logger
    let stallTimeout: Duration
    private let runTask: Task<Void, Never>

    init(url: String, label: String, maxConnections: Int, connectTimeout: Duration, stallTimeout: Duration) throws {
        var config = try PostgresDimensionStore.configuration(url)
        config.options.connectTimeout = connectTimeout
        config.options.maximumConnections = max(1, maxConnections)
        self.stallTimeout = stallTimeout
        let logger = Logger(label: label)
        self.logger = logger
        let client = PostgresClient(configuration: config, backgroundLogger: logger)
        self.client = client
        self.runTask = Task.detached { await client.run() }
        do {
            try BlockingBridge.run(timeout: connectTimeout, what: "connecting to \(PostgresDimensionStore.redacted(url))") {
                _ = try await client.query("SELECT 1", logger: logger).collect()
                return ()
            }
        } catch {
            runTask.cancel()
            throw DimensionStoreError.database("cannot connect to \(PostgresDimensionStore.redacted(url)): \(PostgresDimensionStore.describe(error))")
        }
    }

    deinit { runTask.cancel() }

    func close() { runTask.cancel() }

    /// `work` may `tick()` after each statement, so a long write that keeps moving is not cut.
    func call<T: Sendable>(_ what: String, _ work: @escaping @Sendable (BlockingBridge.Progress) async throws -> T) throws -> T {
        try PostgresDimensionStore.blocking(what, stall: stallTimeout, work)
    }

    /// The dimension schema (001) and `scripts`, statement by statement in one transaction, under
    /// the advisory lock every Strata migration takes (concurrent starts do not race).
    func migrate(_ what: String, _ scripts: [String]) throws {
        let logger = self.logger
        try call("migrate \(what)") { [client] progress in
            try await client.withTransaction(logger: logger) { conn in
                _ = try await conn.query("SELECT pg_advisory_xact_lock(\(PostgresDimensionStore.migrationLockKey))", logger: logger).collect()
                for script in [DimensionSchema.postgres] + scripts {
                    for statement in DimensionSchema.statements(script) {
                        _ = try await conn.query(PostgresQuery(unsafeSQL: statement), logger: logger).collect()
                        progress.tick()
                    }
                }
            }
        }
    }
}

/// Keyset pagination: `fetch(after)` returns the page after `after` (nil: the first page), under
/// whatever lock or connection it needs; `body` runs on each row outside it. A page shorter than
/// `pageSize` is the last.
func forEachPage<Row, Cursor>(pageSize: Int, cursor: (Row) -> Cursor, _ body: (Row) throws -> Void,
                              fetch: (Cursor?) throws -> [Row]) throws {
    var after: Cursor? = nil
    while true {
        let page = try fetch(after)
        for r in page { try body(r) }
        guard page.count == pageSize, let last = page.last else { return }
        after = cursor(last)
    }
}
