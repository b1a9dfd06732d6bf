#!/usr/bin/env python3
"""Prints compare.sh's table: per row, the median over rounds of brook through each door, the
plain-TCP baseline of the same runs (and, for the produce rows, the same baseline with its server
apart from the bench's clients, as `brook bench` reports it against a separate server), and each
peer (Redis Streams, NATS JetStream), with
brook-client's ratio to each peer.

Usage: table.py brook.jsonl PEER.jsonl... [chart.svg]
       (each PEER.jsonl is what the harness wrote for one system: redis.jsonl, nats.jsonl)
       (with chart.svg, also draws the table as bars: one group per row, each system's figure
       relative to the row's best, the value written beside each bar)
       brook bench ... --json | table.py --tag ROW ROUND >> brook.jsonl
(the second form writes each report of one `brook bench --json`, an object or an array of
them, as one line tagged with the table row and the round)"""
import json
import statistics
import sys

ROWS = [
    # row, what, brook figure, peer tests (Redis's or NATS's name), peer figure, higher is better
    ("produce", "batched produce (records/s)", "records_per_sec", "produce", "msgs_per_s", True),
    ("consume", "consume (records/s)", "records_per_sec", "consume_xread consume_fetch", "msgs_per_s", True),
    ("ack", "one at a time, ack p50 (us)", "p50_us", "pub_ack_latency", "p50_us", False),
    ("ack", "one at a time, ack p99 (us)", "p99_us", "pub_ack_latency", "p99_us", False),
    ("e2e", "to receipt at 10 000/s, p50 (us)", "p50_us", "e2e_latency", "p50_us", False),
    ("e2e", "to receipt at 10 000/s, p99 (us)", "p99_us", "e2e_latency", "p99_us", False),
]


# The harness's system names as the table shows them.
PEER_NAMES = {"redis": "Redis Streams", "nats": "NATS JetStream"}


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


def svg(path, title, names, groups):
    """Bars per row: `groups` is [(row label, [value or None per name], higher is better)]."""
    colours = ["#1f77b4", "#aec7e8", "#7f7f7f", "#d62728", "#2ca02c"]
    bar, gap, left, width = 14, 10, 260, 420
    height = 40 + len(groups) * (len(names) * bar + gap) + 20 * len(names)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 120}" height="{height}" '
           'font-family="sans-serif" font-size="11">',
           f'<text x="10" y="20" font-size="13">{title}</text>']
    y = 40
    for label, values, higher in groups:
        known = [v for v in values if v]
        scale = max(known) if known else 1
        out.append(f'<text x="10" y="{y + bar * len(names) / 2 + 4}">{label}</text>')
        for i, value in enumerate(values):
            if value:
                w = max(1, width * value / scale)
                out.append(f'<rect x="{left}" y="{y}" width="{w:.0f}" height="{bar - 2}" fill="{colours[i % 5]}"/>')
                out.append(f'<text x="{left + w + 4:.0f}" y="{y + bar - 4}">{fmt(value, higher)}</text>')
            y += bar
        y += gap
    for i, name in enumerate(names):
        out.append(f'<rect x="10" y="{y + 20 * i}" width="10" height="10" fill="{colours[i % 5]}"/>')
        out.append(f'<text x="26" y="{y + 20 * i + 9}">{name}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    if sys.argv[1] == "--tag":
        return tag(sys.argv[2], sys.argv[3])
    brook = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    chart = next((a for a in sys.argv[2:] if a.endswith(".svg")), None)
    peers = {}
    for path in (a for a in sys.argv[2:] if a.endswith(".jsonl")):
        runs = [json.loads(line) for line in open(path) if '"kind":"run"' in line]
        if runs:
            peers[PEER_NAMES.get(runs[0]["system"], runs[0]["system"])] = runs
    doors = sorted({r["protocol"] for r in brook}, key=lambda d: (d != "grpc", d))
    size = brook[0]["record_bytes"] if brook else "?"
    print(f"records of {size} B, durability none, one producer, one consumer, one partition; "
          f"median of {len({r['round'] for r in brook})} round(s)\n")
    apart = any("baseline_apart" in r for r in brook)
    bases = ["baseline (TCP)"] + (["baseline apart (TCP)"] if apart else [])
    head = (["row"] + [f"brook {d}" for d in doors] + bases + list(peers)
            + [f"brook grpc / {p}" for p in peers])
    groups = []
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row, what, key, tests, rkey, higher in ROWS:
        rate = higher
        values = [median([r[key] for r in brook if r["row"] == row and r["protocol"] == d]) for d in doors]
        base = [median([r["baseline"][key] for r in brook if r["row"] == row])]
        if apart:
            base.append(median([r["baseline_apart"][key] for r in brook
                                if r["row"] == row and "baseline_apart" in r]))
        peer_values = [median([r[rkey] for r in runs if r["test"] in tests.split()])
                       for runs in peers.values()]
        cells = [what] + [fmt(v, rate) for v in values + base + peer_values]
        groups.append((what, values + base + peer_values, higher))
        ours = values[0] if values else None
        for name, peer in zip(peers, peer_values):
            if ours and peer:
                ratio = ours / peer if higher else peer / ours
                cells.append(f"{ratio:.2f}x" + ("" if higher else f" ({name} / brook)"))
            else:
                cells.append("-")
        print("| " + " | ".join(cells) + " |")

    if chart:
        names = ([f"brook {d}" for d in doors] + ["baseline (plain TCP)"]
                 + (["baseline apart (plain TCP)"] if apart else []) + list(peers))
        svg(chart, f"brook, its baseline and its peers, {size} B records (median of rounds)",
            names, groups)


if __name__ == "__main__":
    main()
