-- Strata warehouse, schema version 4: dwm_minute, the DWM rows as the sink job stores them with
-- --dwm (one row per minute, content and user; the highest rev wins). Embedded like 001
-- (Sources/StrataDims/Store/SQL) and applied by DWMTable.migrate(); idempotent.
-- strata olap answers the seed questions that need users (crowds, provinces, active users) from
-- it, joining content_dim and user_dim. "like" is an SQL keyword and must stay quoted.
CREATE TABLE IF NOT EXISTS dwm_minute (
    minute     BIGINT NOT NULL,          -- window start, epoch milliseconds
    content_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    expose     BIGINT NOT NULL DEFAULT 0,
    click      BIGINT NOT NULL DEFAULT 0,
    play       BIGINT NOT NULL DEFAULT 0,
    play_ms    BIGINT NOT NULL DEFAULT 0,
    "like"     BIGINT NOT NULL DEFAULT 0,
    share      BIGINT NOT NULL DEFAULT 0,
    comment    BIGINT NOT NULL DEFAULT 0,
    report     BIGINT NOT NULL DEFAULT 0,
    strategy   TEXT,                     -- the recommendation bucket of the cell's latest event
    rev        BIGINT NOT NULL,
    final      BOOLEAN NOT NULL DEFAULT 0,
    emitted_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, content_id, user_id)
) WITHOUT ROWID;

INSERT INTO schema_version (version) VALUES (4) ON CONFLICT (version) DO NOTHING;
