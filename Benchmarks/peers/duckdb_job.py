#!/usr/bin/env python3
"""The reference job as one DuckDB batch query over the events file: the compute floor.

The same rules as the stream jobs (valid events, declared actions, content id pattern,
duplicates once per (minute, content, user, event_id), per (minute, content) counts per action,
play_ms, uv, inner join with the content dimension), with no broker and no event-time
bookkeeping: a batch sees the whole file, so nothing is late. Writes NDJSON rows.
Run with the peers venv's python (Benchmarks/peers/install).
"""
import argparse
import json
import sys
import time

ACTIONS = ["expose", "click", "play", "like", "share", "comment", "report"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", required=True, help="NDJSON events file")
    ap.add_argument("--content-csv", required=True, help="content dimension, CSV with a header row")
    ap.add_argument("--out", required=True, help="output rows (NDJSON)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", default="4GB")
    a = ap.parse_args()

    import duckdb
    t0 = time.monotonic()
    db = duckdb.connect()
    db.execute(f"SET threads = {a.threads}")
    db.execute(f"SET memory_limit = '{a.memory_limit}'")
    db.execute("SET preserve_insertion_order = false")
    actions = ", ".join(f"'{x}'" for x in ACTIONS)
    counts = ",\n".join(f"count(*) FILTER (WHERE action = '{x}') AS \"{x}\"" for x in ACTIONS)
    out = a.out.replace("'", "''")
    db.execute(f"""
        COPY (
          WITH raw AS (
            SELECT * FROM read_json('{a.events}', format = 'newline_delimited', ignore_errors = true,
              columns = {{event_id: 'VARCHAR', ts: 'BIGINT', action: 'VARCHAR', content_id: 'VARCHAR',
                          user_id: 'VARCHAR', duration_ms: 'BIGINT'}})
          ), ev AS (
            SELECT * FROM raw
            WHERE event_id IS NOT NULL AND strlen(event_id) BETWEEN 1 AND 64 AND ts IS NOT NULL
              AND action IN ({actions}) AND user_id IS NOT NULL AND regexp_full_match(content_id, 'c[0-9]{{8}}')
          ), once AS (
            SELECT ts - ts % 60000 AS minute, content_id, user_id, event_id,
                   min(action) AS action, max(coalesce(duration_ms, 0)) AS duration_ms
            FROM ev GROUP BY ALL
          ), per_content AS (
            SELECT minute, content_id, {counts},
                   sum(CASE WHEN action = 'play' THEN duration_ms ELSE 0 END)::BIGINT AS play_ms,
                   count(DISTINCT user_id) AS uv
            FROM once GROUP BY minute, content_id
          )
          SELECT p.*, c.title, c.category, c.author_id, c.region
          FROM per_content p JOIN read_csv('{a.content_csv}', header = true, all_varchar = true) c
            ON p.content_id = c.content_id
        ) TO '{out}' (FORMAT json)""")
    took = time.monotonic() - t0
    with open(a.out, "rb") as f:
        rows = sum(1 for _ in f)
    print(json.dumps({"duckdb_query_s": round(took, 3), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
