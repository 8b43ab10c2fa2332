/// Where dimensions live: SQLite (embedded default) or PostgreSQL.
///
/// Synchronous on purpose: jobs call it from their own threads, once per window close with the
/// distinct ids of the batch. Lookups are batched, one `SELECT` per chunk of ids, with
/// every id bound as a parameter (never spliced into SQL). Missing ids are simply absent from
/// the result.
public protocol DimensionStore: AnyObject, Sendable {
    /// Creates the tables of ``DimensionSchema`` when absent (idempotent).
    func migrate() throws
    /// Calls `row(i, dimensions)` for each `ids[i]` the store knows, in no particular order. The
    /// cache reads a cold minute's users this way: by position, so no map by id is built.
    func contents(_ ids: [String], row: (Int, ContentDim) throws -> Void) throws
    func users(_ ids: [String], row: (Int, UserDim) throws -> Void) throws
    /// Inserts or replaces, all rows in one transaction (all or nothing). With duplicate ids the
    /// last one wins.
    func upsert(contents: [ContentDim]) throws
    func upsert(users: [UserDim]) throws
    /// Deletes in one transaction; ids that do not exist are ignored.
    func deleteContents(_ ids: [String]) throws
    func deleteUsers(_ ids: [String]) throws
    /// Every id in ascending order, read in pages (the store is not locked while `body` runs, so
    /// `body` may call the store).
    func forEachContentId(_ body: (String) throws -> Void) throws
    func forEachUserId(_ body: (String) throws -> Void) throws
    func contentCount() throws -> Int
    func userCount() throws -> Int
    /// SELECT statements run so far: one per lookup chunk, per id page and per count.
    var queryCount: Int { get }
}

extension DimensionStore {
    /// The known ones of `ids`, by id.
    public func contents(_ ids: [String]) throws -> [String: ContentDim] {
        var found: [String: ContentDim] = [:]
        try contents(ids) { _, c in if found[c.contentId] == nil { found[c.contentId] = c } }
        return found
    }

    public func users(_ ids: [String]) throws -> [String: UserDim] {
        var found: [String: UserDim] = [:]
        try users(ids) { _, u in if found[u.userId] == nil { found[u.userId] = u } }
        return found
    }
}

public enum DimensionStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The `--store` address is not `sqlite:PATH` or `postgres://…`.
    case invalidAddress(String)
    /// The database reported an error (message includes the statement's purpose).
    case database(String)
    /// The database refused the statement itself (a missing table, a constraint, a type): asking
    /// again cannot help, so `StoreWait` does not.
    case rejected(String)
    /// A PostgreSQL call got no answer within its bound (its stall timeout, or the connect timeout).
    case timeout(String)
    /// The store was closed.
    case closed

    public var description: String {
        switch self {
        case .invalidAddress(let m): "invalid dimension store address: \(m)"
        case .database(let m): "dimension store error: \(m)"
        case .rejected(let m): "dimension store refused the statement: \(m)"
        case .timeout(let m): "dimension store timeout: \(m)"
        case .closed: "dimension store is closed"
        }
    }

    /// Whether waiting and asking again may help: not for a refused statement, a wrong address or
    /// a closed store.
    public var isTransient: Bool {
        switch self {
        case .database, .timeout: true
        case .rejected, .invalidAddress, .closed: false
        }
    }
}

/// Opens a store from its address, as given by `--store` / STRATA_STORE / the config file.
public enum DimensionStoreFactory {
    /// `sqlite:PATH` (a file path, created when missing; `sqlite::memory:` for a private
    /// in-memory store) or `postgres://user:pass@host:port/db[?sslmode=disable|prefer|require|verify-full]`
    /// (also `postgresql://`). Does not migrate: call ``DimensionStore/migrate()``.
    public static func open(_ address: String) throws -> any DimensionStore {
        if address.hasPrefix("sqlite:") {
            let path = String(address.dropFirst("sqlite:".count))
            guard !path.isEmpty else {
                throw DimensionStoreError.invalidAddress("sqlite: needs a file path, e.g. sqlite:data/strata.db")
            }
            return try SQLiteDimensionStore(path: path)
        }
        if address.hasPrefix("postgres://") || address.hasPrefix("postgresql://") {
            return try PostgresDimensionStore(url: address)
        }
        throw DimensionStoreError.invalidAddress(
            "'\(address)': expected sqlite:PATH or postgres://user:password@host:port/database")
    }
}
