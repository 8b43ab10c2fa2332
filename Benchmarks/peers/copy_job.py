#!/usr/bin/env python3
"""The transport floor: the reference job's broker hops with no work in between.

Hop 1 reads ods.raw and writes every record, unchanged, to the same partition of a middle topic
(as the split writes the micro-queues), in Kafka transactions of up to --txn-records records with
the consumed offsets inside (as the split does). Hop 2 reads the middle topic read_committed (as
the dwm job reads the micro-queues) and drops the records. The two hops run at the same time, as
two processes. librdkafka (confluent-kafka), so the client costs are Strata's own library's; the
Python loop adds about a microsecond per record, so this floor is, if anything, too high.

With --hops 1, hop 1 alone: the floor of a job that reads ods.raw once and writes one output topic
in transactions (the dwm job reading ods.raw directly); its end is when its last commit returned.

With --fanout A,B,...: hop 1 writes each record to the middle topic of its action (<mid>.<action>,
found in the record's bytes; a record without one of these actions goes to the first), as the
split fans ods.raw out into one micro-queue per action, and hop 2 reads all of them: the floor of
the micro-queue path's shape (seven topics of four partitions each between the hops, not one).

Prints one JSON line per hop: records copied and read, and the moment the last one was readable.
Run with the peers venv's python (Benchmarks/peers/install).
"""
import argparse
import json
import subprocess
import sys
import time


def consumer(a, group, topics, isolation):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    # fetch.queue.backoff.ms as Strata's consumers set it (KafkaConfig.consumer): librdkafka's 1 s
    # default stalls a partition whose queue passed queued.min.messages (docs/performance.md).
    c = Consumer({"bootstrap.servers": a.brokers, "group.id": group, "enable.auto.commit": False,
                  "isolation.level": isolation, "auto.offset.reset": "earliest", "fetch.max.bytes": 52_428_800,
                  "fetch.queue.backoff.ms": 10})
    parts = []
    for topic in topics:
        md = c.list_topics(topic, timeout=30).topics.get(topic)
        if md is None or md.error is not None:
            sys.exit(f"no topic {topic}")
        parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions]
    c.assign(parts)
    return c


def middle_topics(a):
    return [f"{a.mid}.{x}" for x in a.fanout] if a.fanout else [a.mid]


def router(a):
    """The middle topic of a record: its action's (a byte search, not a JSON parse), or the one."""
    if not a.fanout:
        return lambda value: a.mid
    by_action = {f'"action":"{x}"'.encode(): f"{a.mid}.{x}" for x in a.fanout}
    first = f"{a.mid}.{a.fanout[0]}"

    def route(value):
        i = value.find(b'"action":"')
        if i >= 0:
            j = value.find(b'"', i + 10)
            return by_action.get(value[i:j + 1], first)
        return first
    return route


def hop1(a):
    from confluent_kafka import Producer, TopicPartition
    c = consumer(a, "strata-peers-copy-1", [a.source], "read_committed")
    p = Producer({"bootstrap.servers": a.brokers, "transactional.id": f"strata-peers-copy-{a.mid}",
                  "linger.ms": 5, "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000})
    p.init_transactions(30)
    n, last, open_txn, in_txn = 0, time.monotonic(), False, 0
    offsets = {}
    produce, route = p.produce, router(a)
    while n < a.expect and time.monotonic() - last < a.idle:
        msgs = c.consume(num_messages=10_000, timeout=0.2)
        if not msgs:
            continue
        last = time.monotonic()
        if not open_txn:
            p.begin_transaction()
            open_txn = True
        for m in msgs:
            if m.error() is not None:
                continue
            while True:
                try:
                    value = m.value()
                    produce(route(value), value, partition=m.partition())
                    break
                except BufferError:
                    p.poll(0.05)
            offsets[m.partition()] = m.offset() + 1
        n += len(msgs)
        in_txn += len(msgs)
        if in_txn >= a.txn_records or n >= a.expect:
            tps = [TopicPartition(a.source, part, off) for part, off in offsets.items()]
            p.send_offsets_to_transaction(tps, c.consumer_group_metadata(), 30)
            p.commit_transaction(60)
            open_txn, in_txn = False, 0
    if open_txn:
        p.commit_transaction(60)
    last_ms = int(time.time() * 1000)
    c.close()
    print(json.dumps({"hop": 1, "copied": n, "last_commit_ms": last_ms}))


def hop2(a):
    c = consumer(a, "strata-peers-copy-2", middle_topics(a), "read_committed")
    n, last, last_ms = 0, time.monotonic(), 0
    while n < a.expect and time.monotonic() - last < a.idle:
        msgs = c.consume(num_messages=10_000, timeout=0.2)
        if not msgs:
            continue
        last = time.monotonic()
        last_ms = int(time.time() * 1000)
        n += sum(1 for m in msgs if m.error() is None)
    c.close()
    print(json.dumps({"hop": 2, "read": n, "last_record_ms": last_ms}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--source", required=True, help="the loaded ods.raw topic")
    ap.add_argument("--mid", required=True, help="the middle topic (created beforehand, as many partitions)")
    ap.add_argument("--expect", type=int, required=True, help="records in the source (events + end markers)")
    ap.add_argument("--txn-records", type=int, default=20_000)
    ap.add_argument("--idle", type=float, default=30.0, help="give up after this long without a record")
    ap.add_argument("--hops", type=int, choices=[1, 2], default=2, help="1: hop 1 alone (one transactional hop)")
    ap.add_argument("--fanout", type=lambda v: [x for x in v.split(",") if x], default=[],
                    help="actions: one middle topic <mid>.<action> each, created beforehand")
    ap.add_argument("--hop", type=int, choices=[1, 2], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.hop == 1:
        return hop1(a)
    if a.hop == 2:
        return hop2(a)
    if a.hops == 1:
        return hop1(a)
    procs = [subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--hop", str(h)]) for h in (1, 2)]
    codes = [p.wait() for p in procs]
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
