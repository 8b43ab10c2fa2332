#!/usr/bin/env python3
"""Helpers of Benchmarks/peers/run (each a subcommand; run with the peers venv's python):

  topics   create topics (name:partitions ...) on the broker
  load     write an events file into <prefix>ods.raw: line i to the oracle's seeded partition,
           unkeyed, in file order (--keyed: keyed by content_id, its partition from the id); then
           one end marker per partition in a batch of its own
  read     read a topic from the beginning until it is idle; values to an NDJSON file, and the
           newest record timestamp
  measure  run a command and sample it: wall time, CPU-seconds of its process tree and of the
           broker (/proc/PID/stat), peak RSS of the tree (sum of VmRSS, sampled every 0.2 s)
  compare  compare a system's output rows with the oracle's
  result   one result line (JSON) from a measurement and a comparison
  table    print the results (JSONL) as one table, with ratios against each Strata path that ran
"""
import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time

from oracle import ACTIONS, keyed_partitions_of, partitions_of

END_MARKER = b'{"peers_end_marker":true}'
TICK = os.sysconf("SC_CLK_TCK")


def kafka_conf(brokers):
    return {"bootstrap.servers": brokers, "client.id": "strata-peers"}


# ---- topics -------------------------------------------------------------------------------------

def cmd_topics(a):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient(kafka_conf(a.brokers))
    new = []
    for spec in a.topics:
        name, _, parts = spec.partition(":")
        new.append(NewTopic(name, num_partitions=int(parts or 4), replication_factor=1))
    for name, fut in admin.create_topics(new, operation_timeout=30).items():
        try:
            fut.result()
        except Exception as e:  # noqa: BLE001 - report which topic failed
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                sys.exit(f"cannot create {name}: {e}")


# ---- load ---------------------------------------------------------------------------------------

def cmd_load(a):
    from confluent_kafka import Producer
    with open(a.events, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if a.keyed:
        parts, keys = keyed_partitions_of(lines, a.partitions, a.seed)
    else:
        parts, keys = partitions_of(len(lines), a.partitions, a.seed), None
    conf = kafka_conf(a.brokers)
    conf.update({"linger.ms": 20, "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000,
                 "queue.buffering.max.kbytes": 1_048_576, "enable.idempotence": True})
    p = Producer(conf)
    errors = []
    def on_error(err, _msg):
        if err is not None:
            errors.append(str(err))
    produce = p.produce
    started = time.monotonic()
    for i, line in enumerate(lines):
        while True:
            try:
                produce(a.topic, line, key=keys[i] if keys else None, partition=parts[i], on_delivery=on_error)
                break
            except BufferError:
                p.poll(0.05)
        if i % 50_000 == 0:
            p.poll(0)
            if errors:
                sys.exit(f"produce failed: {errors[0]}")
            print(f"\r[peers] loading {a.topic}: {i}/{len(lines)}", end="", file=sys.stderr, flush=True)
    if p.flush(300) != 0 or errors:
        sys.exit(f"produce failed: {errors[:1] or 'flush timed out'}")
    # Some brokers (Tansu 0.6) report a partition's end offset short by its last batch: an end
    # marker in a batch of its own per partition keeps every event before a bounded reader's end.
    for part in range(a.partitions):
        produce(a.topic, END_MARKER, partition=part, on_delivery=on_error)
        p.flush(60)
    if errors:
        sys.exit(f"produce failed: {errors[0]}")
    print(f"\r[peers] loaded {len(lines)} events into {a.topic} in {time.monotonic() - started:.1f} s",
          file=sys.stderr)


# ---- read ---------------------------------------------------------------------------------------

def cmd_read(a):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    conf = kafka_conf(a.brokers)
    conf.update({"group.id": f"strata-peers-read-{os.getpid()}", "enable.auto.commit": False,
                 "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                 "fetch.max.bytes": 52_428_800})
    c = Consumer(conf)
    md = c.list_topics(a.topic, timeout=30).topics.get(a.topic)
    if md is None or md.error is not None:
        sys.exit(f"no topic {a.topic}: {md.error if md else 'unknown'}")
    c.assign([TopicPartition(a.topic, p, OFFSET_BEGINNING) for p in md.partitions])
    n, newest, last = 0, 0, time.monotonic()
    with open(a.out, "wb") as out, open(a.out + ".ts", "w") as tsout:
        while time.monotonic() - last < a.idle:
            msgs = c.consume(num_messages=10_000, timeout=0.5)
            if not msgs:
                continue
            last = time.monotonic()
            for m in msgs:
                if m.error() is not None:
                    continue
                v = m.value()
                if v is None:
                    continue
                out.write(v)
                out.write(b"\n")
                n += 1
                ts = m.timestamp()[1]
                tsout.write(f"{ts}\n")
                if ts > newest:
                    newest = ts
    c.close()
    print(json.dumps({"topic": a.topic, "records": n, "newest_timestamp_ms": newest}))


# ---- measure ------------------------------------------------------------------------------------

def proc_stat(pid):
    """(ppid, utime+stime ticks) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(b")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(root):
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st:
                children.setdefault(st[0], []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cmd_measure(a):
    cmd = a.command[1:] if a.command and a.command[0] == "--" else a.command
    if not cmd:
        sys.exit("measure: no command")
    broker0 = proc_stat(a.broker_pid)[1] if a.broker_pid else 0
    load0 = os.getloadavg()
    start_ms = int(time.time() * 1000)
    t0 = time.monotonic()
    child = subprocess.Popen(cmd, start_new_session=True)
    def forward(sig, _frame):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            pass
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    ticks = {}            # pid -> last seen CPU ticks
    peak_rss = 0
    deadline = t0 + a.timeout if a.timeout else None
    timed_out = False
    while child.poll() is None:
        total = 0
        for pid in descendants(child.pid):
            st = proc_stat(pid)
            if st:
                ticks[pid] = st[1]
                total += rss_kib(pid)
        peak_rss = max(peak_rss, total)
        if deadline and time.monotonic() > deadline and not timed_out:
            timed_out = True
            print(f"[peers] {cmd[0]} ran past {a.timeout} s: stopping it", file=sys.stderr)
            forward(signal.SIGTERM, None)
        time.sleep(0.2)
    wall = time.monotonic() - t0
    end_ms = int(time.time() * 1000)
    # Whatever is left of the process group (a JVM the driver did not stop) is ended here.
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)   # the child, reaped by poll(), and what it reaped
    reaped = usage.ru_utime + usage.ru_stime
    sampled = sum(ticks.values()) / TICK
    broker1 = proc_stat(a.broker_pid)[1] if a.broker_pid else 0
    res = {"command": " ".join(cmd[:3]), "exit_code": child.returncode, "timed_out": timed_out,
           "start_ms": start_ms, "end_ms": end_ms, "wall_s": round(wall, 2),
           "job_cpu_s": round(max(reaped, sampled), 2), "job_cpu_sampled_s": round(sampled, 2),
           "broker_cpu_s": round((broker1 - broker0) / TICK, 2) if a.broker_pid else None,
           "peak_rss_mb": round(peak_rss / 1024), "processes": len(ticks),
           "load_avg_before": [round(x, 2) for x in load0], "load_avg_after": [round(x, 2) for x in os.getloadavg()]}
    with open(a.out, "w") as f:
        json.dump(res, f)
    print(json.dumps(res), file=sys.stderr)
    return child.returncode


# ---- compare ------------------------------------------------------------------------------------

METRICS = ACTIONS + ["play_ms", "uv"]


def rows_of(path, kind):
    """(minute, content_id) -> (metrics tuple, category) from a system's output; and the moment
    the output was complete: when, for every identity, a record carrying its final numbers had
    been written (the Kafka timestamps `read` saved beside the rows), or 0 when unknown."""
    best = {}
    history = {}          # identity -> [(timestamp, metrics)] in publication order
    stamps = None
    if os.path.exists(path + ".ts"):
        with open(path + ".ts") as f:
            stamps = [int(x) for x in f]
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            line = line.strip()
            if not line:
                continue
            o = json.loads(line)
            if "minute" not in o or "content_id" not in o:
                continue
            key = (int(o["minute"]), o["content_id"])
            cat = (o.get("content") or {}).get("category") if kind == "strata" else o.get("category")
            row = (tuple(int(o.get(m) if o.get(m) is not None else -1) for m in METRICS), cat)
            if stamps is not None and i < len(stamps):
                history.setdefault(key, []).append((stamps[i], row[0]))
            if kind == "strata":   # an upsert stream: the highest rev of each identity wins
                rev = int(o.get("rev", 0))
                if key in best and best[key][0] >= rev:
                    continue
                best[key] = (rev, row)
            else:                  # append-only results: one row per identity expected
                if key in best:
                    best[key] = (best[key][0] + 1, row)
                else:
                    best[key] = (1, row)
    dup = sum(1 for v in best.values() if v[0] > 1) if kind != "strata" else 0
    complete = 0
    for key, h in history.items():
        final = best[key][1][0]
        complete = max(complete, min(ts for ts, metrics in h if metrics == final))
    return {k: v[1] for k, v in best.items()}, dup, complete


def cmd_compare(a):
    expected = {}
    with open(a.oracle) as f:
        for line in f:
            o = json.loads(line)
            expected[(o["minute"], o["content_id"])] = tuple(o[m] for m in METRICS)
    categories = {}
    with open(a.dims) as f:
        header = f.readline().rstrip("\n").split(",")
        ci, ki = header.index("content_id"), header.index("category")
        for line in f:
            # the category column never holds a comma or quote (DimensionGenerator's vocabulary)
            cols = line.rstrip("\n").split(",")
            if len(cols) == len(header):
                categories[cols[ci]] = cols[ki]
    got, repeated, complete_ms = rows_of(a.output, a.kind)
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    differing = [k for k in expected if k in got and got[k][0] != expected[k]]
    bad_dims = [k for k in got if k in expected and categories.get(k[1]) is not None and got[k][1] != categories.get(k[1])]
    counted_exp = sum(sum(v[:len(ACTIONS)]) for v in expected.values())
    counted_got = sum(sum(v[0][:len(ACTIONS)]) for v in got.values())
    res = {"rows_expected": len(expected), "rows_published": len(got), "missing": len(missing),
           "extra": len(extra), "differing": len(differing), "enrichment_wrong": len(bad_dims),
           "repeated_identities": repeated, "events_expected": counted_exp, "events_counted": counted_got,
           "exact": not (missing or extra or differing or bad_dims or repeated), "complete_ms": complete_ms}
    if differing:
        k = differing[0]
        res["example"] = {"key": list(k), "expected": list(expected[k]), "got": list(got[k][0])}
    elif missing:
        res["example"] = {"missing": list(missing[0])}
    elif extra:
        res["example"] = {"extra": list(extra[0])}
    with open(a.out, "w") as f:
        json.dump(res, f)
    print(json.dumps(res), file=sys.stderr)


# ---- result -------------------------------------------------------------------------------------

def cmd_result(a):
    m = json.load(open(a.measure))
    c = json.load(open(a.compare)) if a.compare and os.path.exists(a.compare) else None
    if a.work_s is not None:
        work = a.work_s
    elif c and c.get("complete_ms", 0) > m["start_ms"]:
        work = (c["complete_ms"] - m["start_ms"]) / 1000
    elif a.done_ms and a.done_ms > m["start_ms"]:
        work = (a.done_ms - m["start_ms"]) / 1000
    else:
        work = m["wall_s"]
    ok = m["exit_code"] == 0 and not m["timed_out"] and work > 0
    cpu = m["job_cpu_s"] + (m["broker_cpu_s"] or 0)
    r = {"round": a.round, "system": a.system, "events": a.events, "ok": ok, "work_s": round(work, 2),
         "wall_s": m["wall_s"], "events_per_s": round(a.events / work) if ok else None,
         "job_cpu_s": m["job_cpu_s"], "broker_cpu_s": m["broker_cpu_s"],
         "cpu_us_per_event": round(cpu * 1e6 / a.events, 2), "peak_rss_mb": m["peak_rss_mb"],
         "load_avg_before": m["load_avg_before"], "load_avg_after": m["load_avg_after"],
         "exact": c["exact"] if c else (False if a.compare else None)}
    if a.compare and not c:
        r["exact_note"] = "no output to check"
    if c:
        r["check"] = c
        if not c["exact"]:
            r["exact_note"] = ", ".join(f"{c[k]} rows {k}" for k in ("missing", "extra", "differing", "enrichment_wrong")
                                        if c.get(k)) + f"; events {c['events_counted']} of {c['events_expected']}"
    if a.note:
        r["note"] = a.note
    with open(a.results, "a") as f:
        f.write(json.dumps(r) + "\n")
    print(json.dumps(r))


# ---- table --------------------------------------------------------------------------------------

def cmd_table(a):
    results = []
    with open(a.results) as f:
        for line in f:
            if line.strip():
                results.append(json.loads(line))
    # Ratios against each Strata path that ran: the micro-queue path (`strata`, unkeyed ods.raw)
    # and the direct path (`strata-direct`, ods.raw keyed by content_id), the same round's run.
    bases = [b for b in ("strata", "strata-direct") if any(r["system"] == b and r.get("events_per_s") for r in results)]
    def base_of(name, rnd):
        runs = [r for r in results if r["system"] == name and r.get("events_per_s")]
        return next((r for r in runs if r["round"] == rnd), runs[0] if runs else None)
    def fmt(x, digits=1):
        if x is None:
            return "—"
        if isinstance(x, float):
            return f"{x:,.{digits}f}"
        return f"{x:,}"
    head = ["round", "system", "events/s", "s to complete (process)", "CPU-s job + broker", "CPU-µs per event", "peak RSS", "exact"]
    for b in bases:
        label = "Strata" if b == "strata" else "Strata direct"
        head += [f"events/s vs {label}", f"CPU per event vs {label}"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        eps, us = r.get("events_per_s"), r.get("cpu_us_per_event")
        ratios = []
        for b in bases:
            base = base_of(b, r["round"])
            ratios.append(f"{eps / base['events_per_s']:.2f}×" if base and eps else "—")
            ratios.append(f"{us / base['cpu_us_per_event']:.2f}×" if base and us and base.get("cpu_us_per_event") else "—")
        broker = r.get("broker_cpu_s")
        cpu = f"{r['job_cpu_s']:.1f} + {broker:.1f}" if broker is not None else f"{r['job_cpu_s']:.1f} + —"
        ex = r.get("exact")
        exact = "n/a" if ex is None else ("exact" if ex else f"**no** ({r.get('exact_note', '')})")
        print(f"| {r['round']} | {r['system']} | {fmt(int(eps)) if eps else 'failed'} | "
              f"{r['work_s']:.1f} ({r['wall_s']:.1f}) | {cpu} | {fmt(us, 2)} | "
              f"{fmt(r.get('peak_rss_mb'))} MB | {exact} | " + " | ".join(ratios) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("topics"); s.add_argument("--brokers", required=True); s.add_argument("topics", nargs="+")
    s = sub.add_parser("load")
    s.add_argument("--brokers", required=True); s.add_argument("--topic", required=True)
    s.add_argument("--events", required=True); s.add_argument("--partitions", type=int, default=4)
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--keyed", action="store_true", help="key each line by its content_id (oracle.keyed_partitions_of)")
    s = sub.add_parser("read")
    s.add_argument("--brokers", required=True); s.add_argument("--topic", required=True)
    s.add_argument("--out", required=True); s.add_argument("--idle", type=float, default=5.0)
    s = sub.add_parser("measure")
    s.add_argument("--out", required=True); s.add_argument("--broker-pid", type=int)
    s.add_argument("--timeout", type=float, default=0, help="stop the command after this many seconds")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s = sub.add_parser("compare")
    s.add_argument("--oracle", required=True); s.add_argument("--dims", required=True)
    s.add_argument("--output", required=True); s.add_argument("--kind", required=True, choices=["strata", "rows"])
    s.add_argument("--out", required=True)
    s = sub.add_parser("result")
    s.add_argument("--results", required=True); s.add_argument("--system", required=True)
    s.add_argument("--round", type=int, required=True); s.add_argument("--events", type=int, required=True)
    s.add_argument("--measure", required=True); s.add_argument("--compare")
    s.add_argument("--done-ms", type=int, help="when the last output record was written (epoch ms)")
    s.add_argument("--work-s", type=float, help="the job's own time (s)")
    s.add_argument("--note")
    s = sub.add_parser("table"); s.add_argument("--results", required=True)
    a = ap.parse_args()
    return {"topics": cmd_topics, "load": cmd_load, "read": cmd_read, "measure": cmd_measure,
            "compare": cmd_compare, "result": cmd_result, "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main() or 0)
