import Foundation
import Logging
import PostgresNIO
import Synchronization

/// One row of `dws_minute`: a DWS revision as the sink stores it.
public struct DWSTableRow: Sendable, Hashable, CustomStringConvertible {
    /// Window start, epoch ms (a multiple of 60 000).
    public var minute: Int64
    public var contentId: String
    public var expose: Int64
    public var click: Int64
    public var play: Int64
    public var playMs: Int64
    public var like: Int64
    public var share: Int64
    public var comment: Int64
    public var report: Int64
    public var uv: Int64
    public var rev: Int64
    public var isFinal: Bool
    public var emittedAt: Int64

    public init(minute: Int64, contentId: String, expose: Int64 = 0, click: Int64 = 0, play: Int64 = 0, playMs: Int64 = 0,
                like: Int64 = 0, share: Int64 = 0, comment: Int64 = 0, report: Int64 = 0, uv: Int64 = 0,
                rev: Int64, isFinal: Bool = false, emittedAt: Int64 = 0) {
        self.minute = minute
        self.contentId = contentId
        self.expose = expose
        self.click = click
        self.play = play
        self.playMs = playMs
        self.like = like
        self.share = share
        self.comment = comment
        self.report = report
        self.uv = uv
        self.rev = rev
        self.isFinal = isFinal
        self.emittedAt = emittedAt
    }

    public var description: String {
        "(\(minute), \(contentId)) expose=\(expose) click=\(click) play=\(play) play_ms=\(playMs) like=\(like) share=\(share) comment=\(comment) report=\(report) uv=\(uv) rev=\(rev)\(isFinal ? " final" : "")"
    }
}

/// The OLAP table of DWS rows, `dws_minute` (sql/<dialect>/001_dimensions.sql + 002_warehouse.sql),
/// in the same store as the dimensions (`--store`).
///
/// Synchronous like ``DimensionStore``: call it from a job's or a command's own thread.
public protocol DWSTable: AnyObject, Sendable {
    /// Creates dws_minute and its indexes when absent (001 and 002; idempotent).
    func migrate() throws
    /// Writes `rows` in one transaction: a row replaces the stored one of its (minute, content_id)
    /// only when its `rev` is higher, so a replay or an older revision arriving late never replaces
    /// a newer one. Several rows for one identity in a batch: the highest rev wins (the first of
    /// equal revs). Returns how many stored rows were inserted or replaced (each identity once).
    @discardableResult
    func upsert(_ rows: [DWSTableRow]) throws -> Int
    /// Rows with `from ≤ minute < to`, ordered by (minute, content_id), read in pages (`body` runs
    /// outside any lock and may call the table).
    func rows(from: Int64, to: Int64, _ body: (DWSTableRow) throws -> Void) throws
}

extension DWSTable {
    /// Every row of [from, to) in an array (tests and small ranges).
    public func allRows(from: Int64 = .min, to: Int64 = .max) throws -> [DWSTableRow] {
        var out: [DWSTableRow] = []
        try rows(from: from, to: to) { out.append($0) }
        return out
    }
}

/// Opens the DWS table from a store address (`sqlite:PATH`, `postgres://…`), like
/// ``DimensionStoreFactory``. Does not migrate.
public enum DWSTableFactory {
    public static func open(_ address: String) throws -> any DWSTable {
        if address.hasPrefix("sqlite:") {
            let path = String(address.dropFirst("sqlite:".count))
            guard !path.isEmpty else {
                throw DimensionStoreError.invalidAddress("sqlite: needs a file path, e.g. sqlite:data/strata.db")
            }
            return try SQLiteDWSTable(path: path)
        }
        if address.hasPrefix("postgres://") || address.hasPrefix("postgresql://") {
            return try PostgresDWSTable(url: address)
        }
        throw DimensionStoreError.invalidAddress(
            "'\(address)': expected sqlite:PATH or postgres://user:password@host:port/database")
    }
}

/// Highest rev per identity, the first of equal revs, in first-seen order: what row-by-row
/// `ON CONFLICT … WHERE excluded.rev > rev` does, done up front for a single multi-row statement
/// (PostgreSQL refuses to touch one row twice in a statement).
func highestRevPerIdentity(_ rows: [DWSTableRow]) -> [DWSTableRow] {
    struct Key: Hashable { let minute: Int64; let contentId: String }
    return highestRev(rows, key: { Key(minute: $0.minute, contentId: $0.contentId) }, rev: \.rev)
}

/// Highest rev per key, the first of equal revs, in first-seen order (dws_minute, dwm_minute).
func highestRev<Row, Key: Hashable>(_ rows: [Row], key: (Row) -> Key, rev: (Row) -> Int64) -> [Row] {
    var index: [Key: Int] = [:]
    var out: [Row] = []
    out.reserveCapacity(rows.count)
    for r in rows {
        let k = key(r)
        if let i = index[k] {
            if rev(r) > rev(out[i]) { out[i] = r }
        } else {
            index[k] = out.count
            out.append(r)
        }
    }
    return out
}

let dwsColumns = #"minute, content_id, expose, click, play, play_ms, "like", share, comment, report, uv, rev, final, emitted_at"#
let dwsUpdate = #"""
    expose = excluded.expose, click = excluded.click, play = excluded.play, play_ms = excluded.play_ms,
    "like" = excluded."like", share = excluded.share, comment = excluded.comment, report = excluded.report,
    uv = excluded.uv, rev = excluded.rev, final = excluded.final, emitted_at = excluded.emitted_at
    WHERE excluded.rev > dws_minute.rev
    """#

// MARK: - SQLite

/// dws_minute in the SQLite store: its own writer connection in WAL mode (the sink writes while
/// `strata olap` and `strata reconcile` read) and a reader connection.
public final class SQLiteDWSTable: DWSTable {
    public let path: String
    private let connections: SQLiteWarehouseConnections
    private var reader: SQLiteWarehouseConnections.Locked { connections.reader }
    private var writer: SQLiteWarehouseConnections.Locked { connections.writer }
    static let pageSize = 10_000

    public init(path: String, busyTimeoutMs: Int32 = 10_000) throws {
        self.path = path
        connections = try SQLiteWarehouseConnections(path: path, busyTimeoutMs: busyTimeoutMs)
    }

    public func migrate() throws { try connections.migrate([WarehouseSchema.sqliteWarehouse]) }

    public func upsert(_ rows: [DWSTableRow]) throws -> Int {
        // Reduced first, as PostgreSQL's must be: both count each identity at most once.
        let rows = highestRevPerIdentity(rows)
        if rows.isEmpty { return 0 }
        return try writer.connection.withLock { c in
            try c.transaction {
                try c.withStatement("""
                    INSERT INTO dws_minute (\(dwsColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (minute, content_id) DO UPDATE SET \(dwsUpdate)
                    """) { s in
                    var changed = 0
                    for r in rows {
                        s.reset()
                        try s.bind(1, r.minute); try s.bind(2, r.contentId); try s.bind(3, r.expose)
                        try s.bind(4, r.click); try s.bind(5, r.play); try s.bind(6, r.playMs); try s.bind(7, r.like)
                        try s.bind(8, r.share); try s.bind(9, r.comment); try s.bind(10, r.report); try s.bind(11, r.uv)
                        try s.bind(12, r.rev); try s.bind(13, Int64(r.isFinal ? 1 : 0)); try s.bind(14, r.emittedAt)
                        try s.run()
                        changed += c.changes
                    }
                    return changed
                }
            }
        }
    }

    public func rows(from: Int64, to: Int64, _ body: (DWSTableRow) throws -> Void) throws {
        // Keyset pagination on the primary key: each page under the lock, `body` without it.
        try forEachPage(pageSize: Self.pageSize, cursor: { ($0.minute, $0.contentId) }, body) { (after: (Int64, String)?) -> [DWSTableRow] in
            let sql = after == nil
                ? "SELECT \(dwsColumns) FROM dws_minute WHERE minute >= ?1 AND minute < ?2 ORDER BY minute, content_id LIMIT \(Self.pageSize)"
                : "SELECT \(dwsColumns) FROM dws_minute WHERE (minute, content_id) > (?3, ?4) AND minute < ?2 ORDER BY minute, content_id LIMIT \(Self.pageSize)"
            return try reader.connection.withLock { c in
                try c.withStatement(sql) { s in
                    try s.bind(1, from)
                    try s.bind(2, to)
                    if let (m, id) = after { try s.bind(3, m); try s.bind(4, id) }
                    var out: [DWSTableRow] = []
                    while try s.step() {
                        out.append(DWSTableRow(minute: s.int64(0), contentId: s.text(1), expose: s.int64(2), click: s.int64(3),
                                               play: s.int64(4), playMs: s.int64(5), like: s.int64(6), share: s.int64(7),
                                               comment: s.int64(8), report: s.int64(9), uv: s.int64(10), rev: s.int64(11),
                                               isFinal: s.int64(12) != 0, emittedAt: s.int64(13)))
                    }
                    return out
                }
            }
        }
    }
}

// MARK: - PostgreSQL

/// dws_minute in the PostgreSQL store, through a postgres-nio pool. Upserts send each batch of
/// rows as column arrays (`unnest`), one statement per batch, all in one transaction.
public final class PostgresDWSTable: DWSTable {
    private let pg: PostgresWarehouseClient
    private var client: PostgresClient { pg.client }
    private var logger: Logger { pg.logger }
    public var stallTimeout: Duration { pg.stallTimeout }
    static let pageSize = 10_000
    static let upsertBatch = 2_000

    public init(url: String, maxConnections: Int = 4, connectTimeout: Duration = .seconds(10),
                stallTimeout: Duration = .seconds(60)) throws {
        pg = try PostgresWarehouseClient(url: url, label: "strata.dws.postgres", maxConnections: maxConnections,
                                         connectTimeout: connectTimeout, stallTimeout: stallTimeout)
    }

    public func close() { pg.close() }

    private func call<T: Sendable>(_ what: String, _ work: @escaping @Sendable (BlockingBridge.Progress) async throws -> T) throws -> T {
        try pg.call(what, work)
    }

    public func migrate() throws { try pg.migrate("dws_minute", [WarehouseSchema.postgresWarehouse]) }

    public func upsert(_ rows: [DWSTableRow]) throws -> Int {
        let rows = highestRevPerIdentity(rows)
        if rows.isEmpty { return 0 }
        let logger = self.logger
        return try call("upsert of \(rows.count) dws rows") { [client] progress in
            try await client.withTransaction(logger: logger) { conn in
                var changed = 0
                for start in stride(from: 0, to: rows.count, by: Self.upsertBatch) {
                    let b = rows[start..<min(start + Self.upsertBatch, rows.count)]
                    // RETURNING lists the rows actually inserted or updated (not those the WHERE kept).
                    let result = try await conn.query("""
                        INSERT INTO dws_minute (minute, content_id, expose, click, play, play_ms, "like", share, comment, report, uv, rev, final, emitted_at)
                        SELECT * FROM unnest(\(b.map(\.minute))::int8[], \(b.map(\.contentId))::text[],
                          \(b.map(\.expose))::int8[], \(b.map(\.click))::int8[], \(b.map(\.play))::int8[],
                          \(b.map(\.playMs))::int8[], \(b.map(\.like))::int8[], \(b.map(\.share))::int8[],
                          \(b.map(\.comment))::int8[], \(b.map(\.report))::int8[], \(b.map(\.uv))::int8[],
                          \(b.map(\.rev))::int8[], \(b.map(\.isFinal))::bool[], \(b.map(\.emittedAt))::int8[])
                        ON CONFLICT (minute, content_id) DO UPDATE SET
                          expose = excluded.expose, click = excluded.click, play = excluded.play, play_ms = excluded.play_ms,
                          "like" = excluded."like", share = excluded.share, comment = excluded.comment, report = excluded.report,
                          uv = excluded.uv, rev = excluded.rev, final = excluded.final, emitted_at = excluded.emitted_at
                          WHERE excluded.rev > dws_minute.rev
                        RETURNING 1
                        """, logger: logger)
                    for try await _ in result { changed += 1 }
                    progress.tick()
                }
                return changed
            }
        }
    }

    public func rows(from: Int64, to: Int64, _ body: (DWSTableRow) throws -> Void) throws {
        let logger = self.logger
        try forEachPage(pageSize: Self.pageSize, cursor: { ($0.minute, $0.contentId) }, body) { (after: (Int64, String)?) -> [DWSTableRow] in
            return try call("scan of dws_minute") { [client] _ in
                let rows: PostgresRowSequence
                if let (m, id) = after {
                    rows = try await client.query("""
                        SELECT minute, content_id, expose, click, play, play_ms, "like", share, comment, report, uv, rev, final, emitted_at
                        FROM dws_minute WHERE (minute, content_id) > (\(m), \(id)) AND minute < \(to)
                        ORDER BY minute, content_id LIMIT \(Self.pageSize)
                        """, logger: logger)
                } else {
                    rows = try await client.query("""
                        SELECT minute, content_id, expose, click, play, play_ms, "like", share, comment, report, uv, rev, final, emitted_at
                        FROM dws_minute WHERE minute >= \(from) AND minute < \(to)
                        ORDER BY minute, content_id LIMIT \(Self.pageSize)
                        """, logger: logger)
                }
                var out: [DWSTableRow] = []
                for try await (minute, id, expose, click, play, playMs, like, share, comment, report, uv, rev, fin, emitted) in
                    rows.decode((Int64, String, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Bool, Int64).self) {
                    out.append(DWSTableRow(minute: minute, contentId: id, expose: expose, click: click, play: play, playMs: playMs,
                                           like: like, share: share, comment: comment, report: report, uv: uv, rev: rev,
                                           isFinal: fin, emittedAt: emitted))
                }
                return out
            }
        }
    }
}
