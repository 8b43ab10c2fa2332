-- Strata settlement prices, schema version 3 (SQLite). Embedded like 001 and applied by
-- PricingTable.migrate(); idempotent. Loaded from CSV by `strata settle --load-pricing FILE`.
--
-- One row per content category (content_dim.category); the row with category '*' prices every
-- category that has no row of its own. Prices are integers in micro-units of the currency
-- (1 = 0.000001), so fees add up exactly: fee = clicks × price_per_click
-- + exposures × price_per_mille / 1000 (rounded half up to a micro-unit per content and day).
CREATE TABLE IF NOT EXISTS pricing (
    category              TEXT PRIMARY KEY NOT NULL,
    price_per_click_micro BIGINT NOT NULL CHECK (price_per_click_micro >= 0),
    price_per_mille_micro BIGINT NOT NULL CHECK (price_per_mille_micro >= 0), -- per 1 000 exposures
    currency              TEXT NOT NULL DEFAULT 'CNY'
) WITHOUT ROWID;

INSERT INTO schema_version (version) VALUES (3) ON CONFLICT (version) DO NOTHING;
