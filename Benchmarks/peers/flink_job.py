#!/usr/bin/env python3
"""The reference job in Apache Flink SQL (PyFlink Table API, streaming mode, local mini-cluster).

Kafka ods.raw (JSON, bounded at the end offsets seen when it starts: a catch-up over a backlog)
  -> valid events (required fields, declared action, content id pattern)
  -> 1-minute event-time tumbling windows, watermark = ts - out-of-orderness per Kafka partition
  -> per (minute, content, user, event_id): one row (duplicates counted once)
  -> per (minute, content): the count of each action, play_ms, uv (cascaded window)
  -> inner join with the content dimension (a CSV table: the same rows Strata's store holds;
     unknown contents drop out as Strata's valid-ID filter drops them)
  -> Kafka topic (JSON rows, one per (minute, content)).

Run with the peers venv's python (Benchmarks/peers/install). Prints the job's wall time.
"""
import argparse
import os
import sys
import tempfile
import time

ACTIONS = ["expose", "click", "play", "like", "share", "comment", "report"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--source", required=True, help="the ods.raw topic")
    ap.add_argument("--sink", required=True, help="the output topic")
    ap.add_argument("--content-csv", required=True, help="content dimension, CSV with a header row")
    ap.add_argument("--jars", required=True, help="folder with flink-connector-kafka.jar and kafka-clients.jar")
    ap.add_argument("--parallelism", type=int, default=2)
    ap.add_argument("--out-of-orderness-ms", type=int, default=5000)
    ap.add_argument("--checkpoint-ms", type=int, default=0, help="checkpoint interval (0: none, the default)")
    ap.add_argument("--explain", action="store_true", help="print the plan and stop")
    a = ap.parse_args()

    jars = [os.path.join(a.jars, j) for j in ("flink-connector-kafka.jar", "kafka-clients.jar")]
    for j in jars:
        if not os.path.isfile(j):
            sys.exit(f"missing {j}: run Benchmarks/peers/install")

    # Flink's CSV format has no header option: give it the rows without the header line.
    tmp = tempfile.mkdtemp(prefix="strata-peers-flink-")
    with open(a.content_csv) as src, open(os.path.join(tmp, "content.csv"), "w") as dst:
        header = src.readline().strip().split(",")
        dst.write(src.read())
    want = ["content_id", "title", "category", "author_id", "region"]
    if header[:5] != want:
        sys.exit(f"unexpected content CSV header {header}")

    from pyflink.table import EnvironmentSettings, TableEnvironment
    t0 = time.monotonic()
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = env.get_config()
    conf.set("parallelism.default", str(a.parallelism))
    conf.set("pipeline.jars", ";".join("file://" + j for j in jars))
    conf.set("pipeline.name", "strata-peers-reference-job")
    conf.set("table.local-time-zone", "UTC")
    if a.checkpoint_ms:
        conf.set("execution.checkpointing.interval", f"{a.checkpoint_ms} ms")

    ddl_cols = ", ".join(f"`{c}` STRING" for c in header)
    env.execute_sql(f"""
        CREATE TABLE content ({ddl_cols}) WITH (
          'connector' = 'filesystem', 'path' = 'file://{tmp}/content.csv', 'format' = 'csv')""")
    env.execute_sql(f"""
        CREATE TABLE ods_raw (
          event_id STRING, ts BIGINT, action STRING, content_id STRING, user_id STRING, duration_ms BIGINT,
          rt AS TO_TIMESTAMP_LTZ(COALESCE(ts, 0), 3),
          WATERMARK FOR rt AS rt - INTERVAL '{a.out_of_orderness_ms / 1000:g}' SECOND
        ) WITH (
          'connector' = 'kafka', 'topic' = '{a.source}',
          'properties.bootstrap.servers' = '{a.brokers}', 'properties.group.id' = 'strata-peers-flink',
          'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset',
          'format' = 'json', 'json.ignore-parse-errors' = 'true', 'json.fail-on-missing-field' = 'false')""")
    actions = ", ".join(f"'{x}'" for x in ACTIONS)
    env.execute_sql(f"""
        CREATE TEMPORARY VIEW ev AS SELECT * FROM ods_raw
        WHERE event_id IS NOT NULL AND CHAR_LENGTH(event_id) BETWEEN 1 AND 64 AND ts IS NOT NULL
          AND action IN ({actions}) AND user_id IS NOT NULL AND REGEXP(content_id, '^c[0-9]{{8}}$')""")
    # Duplicates (same event_id in a cell) once: one row per (minute, content, user, event_id).
    env.execute_sql("""
        CREATE TEMPORARY VIEW events_once AS
        SELECT window_time AS rt, content_id, user_id, event_id,
               MIN(action) AS action, MAX(COALESCE(duration_ms, 0)) AS duration_ms, MIN(ts) AS ts
        FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(rt), INTERVAL '1' MINUTE))
        GROUP BY window_start, window_end, window_time, content_id, user_id, event_id""")
    counts = ",\n".join(f"COUNT(*) FILTER (WHERE action = '{x}') AS `{x}`" for x in ACTIONS)
    env.execute_sql(f"""
        CREATE TEMPORARY VIEW per_content AS
        SELECT MIN(ts - MOD(ts, 60000)) AS `minute`, content_id, {counts},
               SUM(CASE WHEN action = 'play' THEN duration_ms ELSE 0 END) AS play_ms,
               COUNT(DISTINCT user_id) AS uv
        FROM TABLE(TUMBLE(TABLE events_once, DESCRIPTOR(rt), INTERVAL '1' MINUTE))
        GROUP BY window_start, window_end, content_id""")
    cols = ", ".join(f"`{x}` BIGINT" for x in ACTIONS)
    env.execute_sql(f"""
        CREATE TABLE out_rows (`minute` BIGINT, content_id STRING, {cols}, play_ms BIGINT, uv BIGINT,
                               title STRING, category STRING, author_id STRING, region STRING) WITH (
          'connector' = 'kafka', 'topic' = '{a.sink}', 'properties.bootstrap.servers' = '{a.brokers}',
          'format' = 'json', 'sink.delivery-guarantee' = 'at-least-once')""")
    picked = ", ".join(f"p.`{x}`" for x in ACTIONS)
    insert = f"""
        INSERT INTO out_rows
        SELECT p.`minute`, p.content_id, {picked}, p.play_ms, p.uv, c.title, c.category, c.author_id, c.region
        FROM per_content AS p JOIN content AS c ON p.content_id = c.content_id"""
    if a.explain:
        print(env.explain_sql(insert))
        return 0
    result = env.execute_sql(insert)
    result.wait()
    print(f"[peers/flink] job finished in {time.monotonic() - t0:.1f} s (JVM start included)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
