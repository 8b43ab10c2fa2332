import Foundation
import Logging
import PostgresNIO
import Synchronization

/// One row of `dwm_minute`: a DWM revision (minute × content × user) as the sink stores it.
public struct DWMTableRow: Sendable, Hashable {
    public var minute: Int64
    public var contentId: String
    public var userId: String
    public var expose: Int64, click: Int64, play: Int64, playMs: Int64
    public var like: Int64, share: Int64, comment: Int64, report: Int64
    /// nil when the events carried none (PostgreSQL stores an empty strategy as NULL too).
    public var strategy: String?
    public var rev: Int64
    public var isFinal: Bool
    public var emittedAt: Int64

    public init(minute: Int64, contentId: String, userId: String, expose: Int64 = 0, click: Int64 = 0, play: Int64 = 0,
                playMs: Int64 = 0, like: Int64 = 0, share: Int64 = 0, comment: Int64 = 0, report: Int64 = 0,
                strategy: String? = nil, rev: Int64, isFinal: Bool = false, emittedAt: Int64 = 0) {
        self.minute = minute; self.contentId = contentId; self.userId = userId
        self.expose = expose; self.click = click; self.play = play; self.playMs = playMs
        self.like = like; self.share = share; self.comment = comment; self.report = report
        self.strategy = strategy; self.rev = rev; self.isFinal = isFinal; self.emittedAt = emittedAt
    }
}

/// The DWM rows in the store (`dwm_minute`, sql/<dialect>/004_dwm_minute.sql): what `strata olap`
/// reads for questions about users. The same contract as ``DWSTable``: upserts keep the highest
/// rev per (minute, content_id, user_id); range scans come in (minute, content_id, user_id) order.
public protocol DWMTable: AnyObject, Sendable {
    func migrate() throws
    @discardableResult
    func upsert(_ rows: [DWMTableRow]) throws -> Int
    func rows(from: Int64, to: Int64, _ body: (DWMTableRow) throws -> Void) throws
}

extension DWMTable {
    public func allRows(from: Int64 = .min, to: Int64 = .max) throws -> [DWMTableRow] {
        var out: [DWMTableRow] = []
        try rows(from: from, to: to) { out.append($0) }
        return out
    }
}

public enum DWMTableFactory {
    public static func open(_ address: String) throws -> any DWMTable {
        if address.hasPrefix("sqlite:") {
            let path = String(address.dropFirst("sqlite:".count))
            guard !path.isEmpty else { throw DimensionStoreError.invalidAddress("sqlite: needs a file path, e.g. sqlite:data/strata.db") }
            return try SQLiteDWMTable(path: path)
        }
        if address.hasPrefix("postgres://") || address.hasPrefix("postgresql://") {
            return try PostgresDWMTable(url: address)
        }
        throw DimensionStoreError.invalidAddress("'\(address)': expected sqlite:PATH or postgres://user:password@host:port/database")
    }
}

/// Highest rev per (minute, content, user), the first of equal revs.
func highestRevPerIdentity(_ rows: [DWMTableRow]) -> [DWMTableRow] {
    struct Key: Hashable { let minute: Int64; let contentId: String; let userId: String }
    return highestRev(rows, key: { Key(minute: $0.minute, contentId: $0.contentId, userId: $0.userId) }, rev: \.rev)
}

let dwmColumns = #"minute, content_id, user_id, expose, click, play, play_ms, "like", share, comment, report, strategy, rev, final, emitted_at"#
let dwmUpdate = #"""
    expose = excluded.expose, click = excluded.click, play = excluded.play, play_ms = excluded.play_ms,
    "like" = excluded."like", share = excluded.share, comment = excluded.comment, report = excluded.report,
    strategy = excluded.strategy, rev = excluded.rev, final = excluded.final, emitted_at = excluded.emitted_at
    WHERE excluded.rev > dwm_minute.rev
    """#

// MARK: - SQLite

public final class SQLiteDWMTable: DWMTable {
    public let path: String
    private let connections: SQLiteWarehouseConnections
    private var reader: SQLiteWarehouseConnections.Locked { connections.reader }
    private var writer: SQLiteWarehouseConnections.Locked { connections.writer }
    static let pageSize = 10_000

    public init(path: String, busyTimeoutMs: Int32 = 10_000) throws {
        self.path = path
        connections = try SQLiteWarehouseConnections(path: path, busyTimeoutMs: busyTimeoutMs)
    }

    public func migrate() throws { try connections.migrate([WarehouseSchema.sqliteDWM]) }

    public func upsert(_ rows: [DWMTableRow]) throws -> Int {
        let rows = highestRevPerIdentity(rows)
        if rows.isEmpty { return 0 }
        return try writer.connection.withLock { c in
            try c.transaction {
                try c.withStatement("""
                    INSERT INTO dwm_minute (\(dwmColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (minute, content_id, user_id) DO UPDATE SET \(dwmUpdate)
                    """) { s in
                    var changed = 0
                    for r in rows {
                        s.reset()
                        try s.bind(1, r.minute); try s.bind(2, r.contentId); try s.bind(3, r.userId)
                        try s.bind(4, r.expose); try s.bind(5, r.click); try s.bind(6, r.play); try s.bind(7, r.playMs)
                        try s.bind(8, r.like); try s.bind(9, r.share); try s.bind(10, r.comment); try s.bind(11, r.report)
                        if let strategy = r.strategy { try s.bind(12, strategy) } else { try s.bindNull(12) }
                        try s.bind(13, r.rev); try s.bind(14, Int64(r.isFinal ? 1 : 0)); try s.bind(15, r.emittedAt)
                        try s.run()
                        changed += c.changes
                    }
                    return changed
                }
            }
        }
    }

    public func rows(from: Int64, to: Int64, _ body: (DWMTableRow) throws -> Void) throws {
        try forEachPage(pageSize: Self.pageSize, cursor: { ($0.minute, $0.contentId, $0.userId) }, body) { (after: (Int64, String, String)?) -> [DWMTableRow] in
            let sql = after == nil
                ? "SELECT \(dwmColumns) FROM dwm_minute WHERE minute >= ?1 AND minute < ?2 ORDER BY minute, content_id, user_id LIMIT \(Self.pageSize)"
                : "SELECT \(dwmColumns) FROM dwm_minute WHERE (minute, content_id, user_id) > (?3, ?4, ?5) AND minute < ?2 ORDER BY minute, content_id, user_id LIMIT \(Self.pageSize)"
            return try reader.connection.withLock { c in
                try c.withStatement(sql) { s in
                    try s.bind(1, from)
                    try s.bind(2, to)
                    if let (m, cid, uid) = after { try s.bind(3, m); try s.bind(4, cid); try s.bind(5, uid) }
                    var out: [DWMTableRow] = []
                    while try s.step() {
                        out.append(DWMTableRow(minute: s.int64(0), contentId: s.text(1), userId: s.text(2), expose: s.int64(3),
                                               click: s.int64(4), play: s.int64(5), playMs: s.int64(6), like: s.int64(7),
                                               share: s.int64(8), comment: s.int64(9), report: s.int64(10),
                                               strategy: s.isNull(11) ? nil : s.text(11), rev: s.int64(12),
                                               isFinal: s.int64(13) != 0, emittedAt: s.int64(14)))
                    }
                    return out
                }
            }
        }
    }
}

// MARK: - PostgreSQL

public final class PostgresDWMTable: DWMTable {
    private let pg: PostgresWarehouseClient
    private var client: PostgresClient { pg.client }
    private var logger: Logger { pg.logger }
    static let pageSize = 10_000
    static let upsertBatch = 2_000

    public init(url: String, maxConnections: Int = 4, connectTimeout: Duration = .seconds(10),
                stallTimeout: Duration = .seconds(60)) throws {
        pg = try PostgresWarehouseClient(url: url, label: "strata.dwm.postgres", maxConnections: maxConnections,
                                         connectTimeout: connectTimeout, stallTimeout: stallTimeout)
    }

    private func call<T: Sendable>(_ what: String, _ work: @escaping @Sendable (BlockingBridge.Progress) async throws -> T) throws -> T {
        try pg.call(what, work)
    }

    public func migrate() throws { try pg.migrate("dwm_minute", [WarehouseSchema.postgresDWM]) }

    public func upsert(_ rows: [DWMTableRow]) throws -> Int {
        let rows = highestRevPerIdentity(rows)
        if rows.isEmpty { return 0 }
        let logger = self.logger
        return try call("upsert of \(rows.count) dwm rows") { [client] progress in
            try await client.withTransaction(logger: logger) { conn in
                var changed = 0
                for start in stride(from: 0, to: rows.count, by: Self.upsertBatch) {
                    let b = rows[start..<min(start + Self.upsertBatch, rows.count)]
                    let result = try await conn.query("""
                        INSERT INTO dwm_minute (minute, content_id, user_id, expose, click, play, play_ms, "like", share, comment, report, strategy, rev, final, emitted_at)
                        SELECT m, c, u, e, cl, p, pm, l, sh, co, r, NULLIF(s, ''), rv, f, ea
                        FROM unnest(\(b.map(\.minute))::int8[], \(b.map(\.contentId))::text[], \(b.map(\.userId))::text[],
                          \(b.map(\.expose))::int8[], \(b.map(\.click))::int8[], \(b.map(\.play))::int8[],
                          \(b.map(\.playMs))::int8[], \(b.map(\.like))::int8[], \(b.map(\.share))::int8[],
                          \(b.map(\.comment))::int8[], \(b.map(\.report))::int8[], \(b.map { $0.strategy ?? "" })::text[],
                          \(b.map(\.rev))::int8[], \(b.map(\.isFinal))::bool[], \(b.map(\.emittedAt))::int8[])
                          AS t(m, c, u, e, cl, p, pm, l, sh, co, r, s, rv, f, ea)
                        ON CONFLICT (minute, content_id, user_id) DO UPDATE SET
                          expose = excluded.expose, click = excluded.click, play = excluded.play, play_ms = excluded.play_ms,
                          "like" = excluded."like", share = excluded.share, comment = excluded.comment, report = excluded.report,
                          strategy = excluded.strategy, rev = excluded.rev, final = excluded.final, emitted_at = excluded.emitted_at
                          WHERE excluded.rev > dwm_minute.rev
                        RETURNING 1
                        """, logger: logger)
                    for try await _ in result { changed += 1 }
                    progress.tick()
                }
                return changed
            }
        }
    }

    public func rows(from: Int64, to: Int64, _ body: (DWMTableRow) throws -> Void) throws {
        let logger = self.logger
        try forEachPage(pageSize: Self.pageSize, cursor: { ($0.minute, $0.contentId, $0.userId) }, body) { (after: (Int64, String, String)?) -> [DWMTableRow] in
            return try call("scan of dwm_minute") { [client] _ in
                let rows: PostgresRowSequence
                if let (m, cid, uid) = after {
                    rows = try await client.query("""
                        SELECT minute, content_id, user_id, expose, click, play, play_ms, "like", share, comment, report, strategy, rev, final, emitted_at
                        FROM dwm_minute WHERE (minute, content_id, user_id) > (\(m), \(cid), \(uid)) AND minute < \(to)
                        ORDER BY minute, content_id, user_id LIMIT \(Self.pageSize)
                        """, logger: logger)
                } else {
                    rows = try await client.query("""
                        SELECT minute, content_id, user_id, expose, click, play, play_ms, "like", share, comment, report, strategy, rev, final, emitted_at
                        FROM dwm_minute WHERE minute >= \(from) AND minute < \(to)
                        ORDER BY minute, content_id, user_id LIMIT \(Self.pageSize)
                        """, logger: logger)
                }
                var out: [DWMTableRow] = []
                for try await (minute, cid, uid, expose, click, play, playMs, like, share, comment, report, strategy, rev, fin, emitted) in
                    rows.decode((Int64, String, String, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, String?, Int64, Bool, Int64).self) {
                    out.append(DWMTableRow(minute: minute, contentId: cid, userId: uid, expose: expose, click: click, play: play,
                                           playMs: playMs, like: like, share: share, comment: comment, report: report,
                                           strategy: strategy, rev: rev, isFinal: fin, emittedAt: emitted))
                }
                return out
            }
        }
    }
}
