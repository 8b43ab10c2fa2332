-- Strata warehouse, schema version 2: what the DWS table store (StrataDims.DWSTable) adds to
-- dws_minute of 001. Embedded like 001 (Sources/StrataDims/Store/SQL) and applied by
-- DWSTable.migrate(); idempotent.
--
-- The primary key (minute, content_id) serves time-range scans (strata olap, strata reconcile:
-- minute in [from, to) ordered by minute, content_id). This index serves per-content questions
-- ("this content over the day": content_id = ? AND minute BETWEEN …), which the primary key can
-- only answer by scanning every minute.
CREATE INDEX IF NOT EXISTS dws_minute_content_minute ON dws_minute (content_id, minute);

INSERT INTO schema_version (version) VALUES (2) ON CONFLICT (version) DO NOTHING;
