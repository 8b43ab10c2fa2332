-- Strata dimension store, schema version 1 (SQLite).
-- Embedded into the strata binary at build time (SwiftPM embedInCode, through the link in
-- Sources/StrataDims/Store/SQL) and applied by DimensionStore.migrate(); every statement is
-- idempotent, so migrate() may run on each start.
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
