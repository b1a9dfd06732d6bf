#!/usr/bin/env python3
"""Prints compare.sh's table: per row, the median over rounds of brook through each door, the
plain-TCP baseline of the same runs, and Redis Streams, with brook-client's ratio to Redis.

Usage: table.py brook.jsonl redis.jsonl
       brook bench ... --json | table.py --tag ROW ROUND >> brook.jsonl
(the second form writes each report of one `brook bench --json`, an object or an array of
them, as one line tagged with the table row and the round)"""
import json
import statistics
import sys

ROWS = [
    # row, what, brook figure, redis test, redis figure, higher is better
    ("produce", "batched produce (records/s)", "records_per_sec", "produce", "msgs_per_s", True),
    ("consume", "consume (records/s)", "records_per_sec", "consume_xread", "msgs_per_s", True),
    ("ack", "one at a time, ack p50 (us)", "p50_us", "pub_ack_latency", "p50_us", False),
    ("ack", "one at a time, ack p99 (us)", "p99_us", "pub_ack_latency", "p99_us", False),
    ("e2e", "to receipt at 10 000/s, p50 (us)", "p50_us", "e2e_latency", "p50_us", False),
    ("e2e", "to receipt at 10 000/s, p99 (us)", "p99_us", "e2e_latency", "p99_us", False),
]


def median(values):
    return statistics.median(values) if values else None


def fmt(value, rate):
    if value is None:
        return "-"
    if rate:
        return f"{value / 1e6:.2f} M" if value >= 1e6 else f"{value / 1e3:.0f} k"
    return f"{value:.0f}"


def tag(row, round_):
    reports = json.load(sys.stdin)
    for report in reports if isinstance(reports, list) else [reports]:
        print(json.dumps({"row": row, "round": int(round_), **report}))


def main():
    if sys.argv[1] == "--tag":
        return tag(sys.argv[2], sys.argv[3])
    brook = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    redis = [json.loads(line) for line in open(sys.argv[2]) if '"kind":"run"' in line]
    doors = sorted({r["protocol"] for r in brook}, key=lambda d: (d != "grpc", d))
    size = brook[0]["record_bytes"] if brook else "?"
    print(f"records of {size} B, durability none, one producer, one consumer, one partition; "
          f"median of {len({r['round'] for r in brook})} round(s)\n")
    head = ["row"] + [f"brook {d}" for d in doors] + ["baseline (TCP)", "Redis", "brook grpc / Redis"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row, what, key, test, rkey, higher in ROWS:
        rate = higher
        cells = [what]
        for door in doors:
            cells.append(fmt(median([r[key] for r in brook if r["row"] == row and r["protocol"] == door]), rate))
        base = median([r["baseline"][key] for r in brook if r["row"] == row])
        cells.append(fmt(base, rate))
        peer = median([r[rkey] for r in redis if r["test"] == test])
        cells.append(fmt(peer, rate))
        ours = median([r[key] for r in brook if r["row"] == row and r["protocol"] == doors[0]]) if doors else None
        if ours and peer:
            ratio = ours / peer if higher else peer / ours
            cells.append(f"{ratio:.2f}x" + ("" if higher else " (Redis / brook)"))
        else:
            cells.append("-")
        print("| " + " | ".join(cells) + " |")


main()
