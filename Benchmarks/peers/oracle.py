#!/usr/bin/env python3
"""The exact DWS rows of an events file, computed from the file alone (plain Python, no engine).

For every (minute, content_id): the count of each action, play_ms (sum of duration_ms of plays)
and uv (distinct users), with the contract's rules (shared/DESIGN.md, "Record contracts" and
"Time and correctness semantics"):

  - a line counts when it is a JSON object with event_id (string of 1-64 UTF-8 bytes), ts
    (integer), action (one of the topology's actions), content_id and user_id (strings);
  - content_id must match ^c[0-9]{8}$ and be a known content (c00000000 ... c<contents-1>);
  - duplicates (same event_id in the same (minute, content, user) cell) count once;
  - lateness: line i is in ods.raw partition partition_of(i) (the loader's seeded choice, or
    with --keyed the content id's: keyed_partitions_of); an
    event is late, and not counted, when its partition's highest ts so far - out-of-orderness is
    past its minute's end + allowed lateness (Strata's rule, the one `strata bench catch-up`
    checks). With the peers' default workload (no very late events, out-of-order <= 4 s) no event
    is late under this rule, nor under any engine's watermark of >= 5 s: every system must count
    every valid event.

Writes one JSON row per (minute, content_id) to --out and a summary line to stdout.
"""
import argparse
import json
import random
import re
import sys

ACTIONS = ["expose", "click", "play", "like", "share", "comment", "report"]
CONTENT_ID = re.compile(r"c[0-9]{8}")


def partitions_of(n, partitions, seed):
    """The ods.raw partition of each line: the loader (peers.py load) uses exactly this."""
    rng = random.Random(seed)
    return bytes(rng.randrange(partitions) for _ in range(n))


def content_key(line):
    """A line's content_id as UTF-8 bytes (its key in a keyed ods.raw), or None."""
    try:
        o = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    c = o.get("content_id") if isinstance(o, dict) else None
    return c.encode("utf-8") if isinstance(c, str) else None


def keyed_partitions_of(lines, partitions, seed):
    """The ods.raw partition and key of each line when ods.raw is keyed by content_id, as the
    contract's producers write it and `strata bench catch-up --keyed` does: the id's bytes pick
    the partition (h = 17, h = h * 31 + byte, mod 2^32); a line without one stays where the
    seeded choice put it, unkeyed."""
    seeded = partitions_of(len(lines), partitions, seed)
    parts, keys = bytearray(seeded), []
    for i, line in enumerate(lines):
        k = content_key(line)
        keys.append(k)
        if k is not None:
            h = 17
            for b in k:
                h = (h * 31 + b) & 0xFFFFFFFF
            parts[i] = h % partitions
    return bytes(parts), keys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", required=True, help="NDJSON events file (strata gen events --out)")
    ap.add_argument("--out", required=True, help="where to write the expected rows (NDJSON)")
    ap.add_argument("--contents", type=int, default=10_000, help="known contents (default 10000)")
    ap.add_argument("--partitions", type=int, default=4, help="ods.raw partitions (default 4)")
    ap.add_argument("--seed", type=int, default=42, help="seed of the loader's partition choice (default 42)")
    ap.add_argument("--keyed", action="store_true", help="ods.raw keyed by content_id (peers.py load --keyed)")
    ap.add_argument("--out-of-orderness-ms", type=int, default=5_000)
    ap.add_argument("--allowed-lateness-ms", type=int, default=120_000)
    ap.add_argument("--actions", default=",".join(ACTIONS), help="comma-separated actions")
    a = ap.parse_args()
    actions = a.actions.split(",")
    aidx = {name: i for i, name in enumerate(actions)}
    play = aidx.get("play")

    with open(a.events, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    parts = (keyed_partitions_of(lines, a.partitions, a.seed)[0] if a.keyed
             else partitions_of(len(lines), a.partitions, a.seed))

    running = {}          # partition -> highest ts so far
    seen = set()          # (minute, content, user, event_id)
    cells = set()         # (minute, content, user)
    rows = {}             # (minute, content) -> [actions..., play_ms, uv]
    width = len(actions) + 2
    stats = dict(lines=len(lines), malformed=0, bad_content=0, unknown_content=0, late=0, duplicates=0, counted=0)
    for i, line in enumerate(lines):
        try:
            o = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            stats["malformed"] += 1
            continue
        if not isinstance(o, dict):
            stats["malformed"] += 1
            continue
        eid, ts, action, c, u = (o.get(k) for k in ("event_id", "ts", "action", "content_id", "user_id"))
        if not (isinstance(eid, str) and 1 <= len(eid.encode("utf-8")) <= 64 and type(ts) is int
                and isinstance(action, str) and action in aidx and isinstance(c, str) and isinstance(u, str)):
            stats["malformed"] += 1
            continue
        p = parts[i]
        running[p] = max(running.get(p, ts), ts)
        if not CONTENT_ID.fullmatch(c):
            stats["bad_content"] += 1
            continue
        if int(c[1:]) >= a.contents:
            stats["unknown_content"] += 1
            continue
        minute = ts - ts % 60_000
        if running[p] - a.out_of_orderness_ms > minute + 60_000 + a.allowed_lateness_ms:
            stats["late"] += 1
            continue
        key = (minute, c, u, eid)
        if key in seen:
            stats["duplicates"] += 1
            continue
        seen.add(key)
        stats["counted"] += 1
        row = rows.get((minute, c))
        if row is None:
            row = rows[(minute, c)] = [0] * width
        row[aidx[action]] += 1
        if aidx[action] == play:
            d = o.get("duration_ms")
            row[len(actions)] += d if type(d) is int else 0
        if (minute, c, u) not in cells:
            cells.add((minute, c, u))
            row[len(actions) + 1] += 1

    with open(a.out, "w") as out:
        for (minute, c), row in sorted(rows.items()):
            d = {"minute": minute, "content_id": c}
            d.update(zip(actions, row))
            d["play_ms"] = row[len(actions)]
            d["uv"] = row[len(actions) + 1]
            out.write(json.dumps(d, separators=(",", ":")) + "\n")
    stats["rows"] = len(rows)
    stats["cells"] = len(cells)
    print(json.dumps({"oracle": stats}))


if __name__ == "__main__":
    sys.exit(main())
