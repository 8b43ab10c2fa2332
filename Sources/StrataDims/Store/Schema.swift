/// The store's DDL. `sql/<dialect>/001_dimensions.sql` is the only copy: SwiftPM embeds the files
/// in the binary at build time (`.embedInCode`, through the links in `Store/SQL/`), so a binary
/// needs no sql/ directory at run time.
public enum DimensionSchema {
    /// The schema version `migrate()` brings a store to (the row it inserts into `schema_version`).
    public static let version = 1

    /// `sql/sqlite/001_dimensions.sql`
    public static let sqlite = String(decoding: PackageResources.sqlite_001_dimensions_sql, as: UTF8.self)

    /// `sql/postgres/001_dimensions.sql`
    public static let postgres = String(decoding: PackageResources.postgres_001_dimensions_sql, as: UTF8.self)

    /// Splits a script into statements at top-level semicolons, skipping `--` and `/* */`
    /// comments and not splitting inside quoted text; empty statements are dropped.
    /// (PostgreSQL's extended protocol runs one statement per query.)
    public static func statements(_ script: String) -> [String] {
        var result: [String] = []
        var current: [UInt8] = []
        let s = Array(script.utf8)
        var i = 0
        func flush() {
            let text = String(decoding: current, as: UTF8.self).trimmingWhitespace()
            if !text.isEmpty { result.append(text) }
            current.removeAll(keepingCapacity: true)
        }
        while i < s.count {
            let c = s[i]
            if c == UInt8(ascii: "-"), i + 1 < s.count, s[i + 1] == UInt8(ascii: "-") {
                while i < s.count, s[i] != 0x0A { i += 1 }
                continue
            }
            if c == UInt8(ascii: "/"), i + 1 < s.count, s[i + 1] == UInt8(ascii: "*") {
                i += 2
                while i + 1 < s.count, !(s[i] == UInt8(ascii: "*") && s[i + 1] == UInt8(ascii: "/")) { i += 1 }
                i += 2
                continue
            }
            if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") {
                // A quoted run; a doubled quote inside is an escaped quote and is copied as is.
                current.append(c)
                i += 1
                while i < s.count {
                    current.append(s[i])
                    if s[i] == c { i += 1; break }
                    i += 1
                }
                continue
            }
            if c == UInt8(ascii: ";") { flush(); i += 1; continue }
            current.append(c)
            i += 1
        }
        flush()
        return result
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        let u = Array(utf8)
        var a = 0, b = u.count
        while a < b, u[a] == 0x20 || u[a] == 0x0A || u[a] == 0x0D || u[a] == 0x09 { a += 1 }
        while b > a, u[b - 1] == 0x20 || u[b - 1] == 0x0A || u[b - 1] == 0x0D || u[b - 1] == 0x09 { b -= 1 }
        return String(decoding: u[a..<b], as: UTF8.self)
    }
}

/// The warehouse DDL beyond 001: `002_warehouse.sql` (dws_minute's per-content index) and
/// `003_pricing.sql` (settlement prices), embedded like ``DimensionSchema``.
public enum WarehouseSchema {
    public static let sqliteWarehouse = String(decoding: PackageResources.sqlite_002_warehouse_sql, as: UTF8.self)
    public static let postgresWarehouse = String(decoding: PackageResources.postgres_002_warehouse_sql, as: UTF8.self)
    public static let sqlitePricing = String(decoding: PackageResources.sqlite_003_pricing_sql, as: UTF8.self)
    public static let postgresPricing = String(decoding: PackageResources.postgres_003_pricing_sql, as: UTF8.self)
    /// `004_dwm_minute.sql` (the DWM rows, for `strata olap` over users).
    public static let sqliteDWM = String(decoding: PackageResources.sqlite_004_dwm_minute_sql, as: UTF8.self)
    public static let postgresDWM = String(decoding: PackageResources.postgres_004_dwm_minute_sql, as: UTF8.self)
}
