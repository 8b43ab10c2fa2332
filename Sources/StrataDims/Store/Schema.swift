/// The store's DDL, embedded so a binary needs no sql/ directory at run time. The text is the
/// single source of truth in `sql/<dialect>/001_dimensions.sql`; SchemaTests fails when a file and
/// its constant differ (paste the file between the delimiters to update).
public enum DimensionSchema {
    /// The schema version `migrate()` brings a store to (the row it inserts into `schema_version`).
    public static let version = 1

    /// `sql/sqlite/001_dimensions.sql`
    public static let sqlite = #"""
-- Strata dimension store, schema version 1 (SQLite).
-- Embedded verbatim in Sources/StrataDims/Schema.swift (a test checks they are equal) and applied
-- by DimensionStore.migrate(); every statement is idempotent, so migrate() may run on each start.
-- Ids are the Kafka keys of the topics (content_id 'c%08d', user_id 'u%09d' for generated data).

CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at BIGINT NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER) * 1000)
);

-- Content dimensions, joined into DWM/DWS rows as the `content` object.
CREATE TABLE IF NOT EXISTS content_dim (
    content_id TEXT PRIMARY KEY NOT NULL,
    title      TEXT NOT NULL,
    category   TEXT NOT NULL,
    author_id  TEXT NOT NULL,
    region     TEXT NOT NULL,
    status     TEXT NOT NULL,
    publish_ts BIGINT NOT NULL           -- epoch milliseconds
) WITHOUT ROWID;

-- User profiles, joined into DWM rows as the `user` object.
CREATE TABLE IF NOT EXISTS user_dim (
    user_id   TEXT PRIMARY KEY NOT NULL,
    gender    TEXT NOT NULL,
    age_band  TEXT NOT NULL,
    province  TEXT NOT NULL,
    city_tier INTEGER NOT NULL           -- 1 (largest cities) .. 5
) WITHOUT ROWID;

-- DWS rows as the sink job stores them: one row per (minute, content), the highest rev wins.
-- "like" is an SQL keyword and must stay quoted in every statement.
CREATE TABLE IF NOT EXISTS dws_minute (
    minute     BIGINT NOT NULL,          -- window start, epoch milliseconds
    content_id TEXT NOT NULL,
    expose     BIGINT NOT NULL DEFAULT 0,
    click      BIGINT NOT NULL DEFAULT 0,
    play       BIGINT NOT NULL DEFAULT 0,
    play_ms    BIGINT NOT NULL DEFAULT 0,
    "like"     BIGINT NOT NULL DEFAULT 0,
    share      BIGINT NOT NULL DEFAULT 0,
    comment    BIGINT NOT NULL DEFAULT 0,
    report     BIGINT NOT NULL DEFAULT 0,
    uv         BIGINT NOT NULL DEFAULT 0,
    rev        BIGINT NOT NULL,
    final      BOOLEAN NOT NULL DEFAULT 0,
    emitted_at BIGINT NOT NULL DEFAULT 0, -- epoch milliseconds of the revision
    PRIMARY KEY (minute, content_id)
) WITHOUT ROWID;

INSERT INTO schema_version (version) VALUES (1) ON CONFLICT (version) DO NOTHING;

"""#

    /// `sql/postgres/001_dimensions.sql`
    public static let postgres = #"""
-- Strata dimension store, schema version 1 (PostgreSQL).
-- Embedded verbatim in Sources/StrataDims/Schema.swift (a test checks they are equal) and applied
-- by DimensionStore.migrate() in one transaction under an advisory lock; every statement is
-- idempotent, so migrate() may run on each start and from several instances at once.
-- Ids are the Kafka keys of the topics (content_id 'c%08d', user_id 'u%09d' for generated data).

CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at BIGINT NOT NULL DEFAULT (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT
);

-- Content dimensions, joined into DWM/DWS rows as the `content` object.
CREATE TABLE IF NOT EXISTS content_dim (
    content_id TEXT PRIMARY KEY,
    title      TEXT NOT NULL,
    category   TEXT NOT NULL,
    author_id  TEXT NOT NULL,
    region     TEXT NOT NULL,
    status     TEXT NOT NULL,
    publish_ts BIGINT NOT NULL           -- epoch milliseconds
);

-- User profiles, joined into DWM rows as the `user` object.
CREATE TABLE IF NOT EXISTS user_dim (
    user_id   TEXT PRIMARY KEY,
    gender    TEXT NOT NULL,
    age_band  TEXT NOT NULL,
    province  TEXT NOT NULL,
    city_tier INTEGER NOT NULL           -- 1 (largest cities) .. 5
);

-- DWS rows as the sink job stores them: one row per (minute, content), the highest rev wins.
-- "like" is an SQL keyword and must stay quoted in every statement.
CREATE TABLE IF NOT EXISTS dws_minute (
    minute     BIGINT NOT NULL,          -- window start, epoch milliseconds
    content_id TEXT NOT NULL,
    expose     BIGINT NOT NULL DEFAULT 0,
    click      BIGINT NOT NULL DEFAULT 0,
    play       BIGINT NOT NULL DEFAULT 0,
    play_ms    BIGINT NOT NULL DEFAULT 0,
    "like"     BIGINT NOT NULL DEFAULT 0,
    share      BIGINT NOT NULL DEFAULT 0,
    comment    BIGINT NOT NULL DEFAULT 0,
    report     BIGINT NOT NULL DEFAULT 0,
    uv         BIGINT NOT NULL DEFAULT 0,
    rev        BIGINT NOT NULL,
    final      BOOLEAN NOT NULL DEFAULT false,
    emitted_at BIGINT NOT NULL DEFAULT 0, -- epoch milliseconds of the revision
    PRIMARY KEY (minute, content_id)
);

INSERT INTO schema_version (version) VALUES (1) ON CONFLICT (version) DO NOTHING;

"""#

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
