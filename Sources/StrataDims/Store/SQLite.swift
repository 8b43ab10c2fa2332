internal import CSQLite

/// A thin layer over one sqlite3 connection with a statement cache. Not thread-safe:
/// ``SQLiteDimensionStore`` only touches it under its mutex.
final class SQLiteConnection {
    private let db: OpaquePointer
    private var cache: [String: SQLiteStatement] = [:]
    private static let maxCachedStatements = 64

    init(path: String) throws {
        var handle: OpaquePointer?
        // NOMUTEX: the store serialises access itself; sqlite's own mutex would be redundant.
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard let handle else { throw DimensionStoreError.database("cannot open sqlite database \(path): out of memory") }
        guard rc == SQLITE_OK else {
            let message = String(cString: sqlite3_errmsg(handle))
            sqlite3_close_v2(handle)
            throw DimensionStoreError.database("cannot open sqlite database \(path): \(message)")
        }
        db = handle
        sqlite3_extended_result_codes(db, 1)
    }

    deinit {
        cache.removeAll() // statements finalize before the connection closes
        sqlite3_close_v2(db)
    }

    /// Runs one or more statements that return nothing of interest (DDL, PRAGMA, BEGIN…).
    func exec(_ sql: String) throws {
        var errmsg: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &errmsg) != SQLITE_OK {
            let message = errmsg.map { String(cString: $0) } ?? lastError
            sqlite3_free(errmsg)
            throw DimensionStoreError.database("\(message) [in: \(sql.prefix(80))]")
        }
    }

    /// A prepared statement, reset and with cleared bindings. Cached by its SQL text.
    /// Prefer ``withStatement(_:_:)``, which also resets it after use.
    private func statement(_ sql: String) throws -> SQLiteStatement {
        if let s = cache[sql] {
            s.reset()
            return s
        }
        var raw: OpaquePointer?
        guard sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &raw, nil) == SQLITE_OK, let raw else {
            throw DimensionStoreError.database("\(lastError) [preparing: \(sql.prefix(80))]")
        }
        let s = SQLiteStatement(raw, connection: self)
        if cache.count >= Self.maxCachedStatements { cache.removeAll() }
        cache[sql] = s
        return s
    }

    /// Runs `body` with the cached statement for `sql` and resets it afterwards, so a statement
    /// never stays active: an active statement keeps its read transaction (and its old WAL
    /// snapshot) open, and the connection would stop seeing new commits.
    func withStatement<T>(_ sql: String, _ body: (SQLiteStatement) throws -> T) throws -> T {
        let s = try statement(sql)
        defer { s.reset() }
        return try body(s)
    }

    /// BEGIN IMMEDIATE (take the write lock up front, waiting up to the busy timeout) … COMMIT;
    /// ROLLBACK when `body` throws.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try exec("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try exec("COMMIT")
            return result
        } catch {
            try? exec("ROLLBACK")
            throw error
        }
    }

    var lastError: String { String(cString: sqlite3_errmsg(db)) }

    /// Rows inserted, updated or deleted by the last finished statement (0 for an upsert whose
    /// DO UPDATE … WHERE did not match).
    var changes: Int { Int(sqlite3_changes(db)) }
}

final class SQLiteStatement {
    private let raw: OpaquePointer
    private unowned let connection: SQLiteConnection

    init(_ raw: OpaquePointer, connection: SQLiteConnection) {
        self.raw = raw
        self.connection = connection
    }

    deinit { sqlite3_finalize(raw) }

    func reset() {
        sqlite3_reset(raw)
        sqlite3_clear_bindings(raw)
    }

    /// Binds a text parameter (1-based), copying the bytes (embedded NULs included).
    func bind(_ index: Int32, _ value: String) throws {
        var value = value
        // SQLITE_TRANSIENT: sqlite copies the bytes before returning.
        let transient = unsafeBitCast(Int(-1), to: sqlite3_destructor_type.self)
        let rc: Int32 = value.withUTF8 { buf in
            guard let base = buf.baseAddress, buf.count > 0 else { return sqlite3_bind_text(raw, index, "", 0, transient) }
            return base.withMemoryRebound(to: CChar.self, capacity: buf.count) {
                sqlite3_bind_text(raw, index, $0, Int32(buf.count), transient)
            }
        }
        guard rc == SQLITE_OK else { throw DimensionStoreError.database("bind: \(connection.lastError)") }
    }

    func bind(_ index: Int32, _ value: Int64) throws {
        guard sqlite3_bind_int64(raw, index, value) == SQLITE_OK else {
            throw DimensionStoreError.database("bind: \(connection.lastError)")
        }
    }

    func bindNull(_ index: Int32) throws {
        guard sqlite3_bind_null(raw, index) == SQLITE_OK else {
            throw DimensionStoreError.database("bind: \(connection.lastError)")
        }
    }

    /// True when a row is available, false when done.
    func step() throws -> Bool {
        switch sqlite3_step(raw) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw DimensionStoreError.database(connection.lastError)
        }
    }

    /// Steps to the end (for writes).
    func run() throws {
        while try step() {}
    }

    func text(_ column: Int32) -> String {
        guard let p = sqlite3_column_text(raw, column) else { return "" }
        let n = Int(sqlite3_column_bytes(raw, column))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(raw, column) }

    /// True for SQL NULL.
    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(raw, column) == SQLITE_NULL }
}
