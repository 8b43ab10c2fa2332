#!/usr/bin/env python3
"""Reads DWS rows (NDJSON) on stdin, keeps the highest rev per (minute, content_id) as an upsert
subscriber does, and prints a summary and the top final rows."""
import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.strip()]
best = {}
for r in rows:
    k = (r["minute"], r["content_id"])
    if k not in best or r["rev"] > best[k]["rev"]:
        best[k] = r
final = [r for r in best.values() if r["final"]]
print("%d revisions, %d (minute, content) rows, %d final" % (len(rows), len(best), len(final)))
for r in sorted(final, key=lambda r: -r["expose"])[:5]:
    category = r["content"]["category"] if r["content"] else "-"
    print("  minute=%d %s expose=%d click=%d play=%d uv=%d rev=%d %s"
          % (r["minute"], r["content_id"], r["expose"], r["click"], r["play"], r["uv"], r["rev"], category))
