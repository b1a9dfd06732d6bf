#!/usr/bin/env python3
"""Prints iggy.sh's table: per workload and record size, the median over rounds of brook through
each door (`brook bench` protocols) and of Apache Iggy, and each door's ratio to Iggy.

Usage: iggy_table.py brook.jsonl iggy.jsonl [chart.svg]
       (with chart.svg, also draws the table as bars, as compare.sh's table.py does)
       brook bench WORKLOAD ... --json | iggy_table.py --brook WORKLOAD SIZE ROUND >> brook.jsonl
       iggy-bench ... 2>&1 | iggy_table.py --iggy WORKLOAD SIZE ROUND >> iggy.jsonl
       iggy_table.py --raw produce SIZE ROUND RECORDS PATH >> brook.jsonl
(the second form writes one line per door of one `brook bench --json`; the third reads
iggy-bench's "Producers Results" or "Consumers Results" line and writes it as one line, or
fails when the run printed none; the fourth times a plain write of the produce run's bytes to
a new file, the page cache's own rate, shown as a column beside the doors)"""
import json
import re
import statistics
import sys
import time


def brook(workload, size, round_):
    reports = json.load(sys.stdin)
    for report in reports if isinstance(reports, list) else [reports]:
        print(json.dumps({"workload": workload, "size": int(size), "round": int(round_),
                          "system": report["protocol"],
                          "records_per_sec": report["records_per_sec"],
                          "mb_per_sec": report["mb_per_sec"],
                          "load": load()}))


def iggy(workload, size, round_):
    text = re.sub(r"\x1b\[[0-9;]*m", "", sys.stdin.read())
    found = re.search(r"(?:Producers|Consumers) Results: Total throughput: ([0-9.]+) MB/s, "
                      r"([0-9]+) messages/s", text)
    if not found:
        sys.exit(f"iggy-bench printed no results:\n{text[-2000:]}")
    print(json.dumps({"workload": workload, "size": int(size), "round": int(round_),
                      "system": "iggy", "records_per_sec": float(found.group(2)),
                      "mb_per_sec": float(found.group(1)), "load": load()}))


def raw(workload, size, round_, records, path):
    """Writes as many bytes as the produce run stores (records x size) to a fresh file at `path`
    in 1 MiB writes, no fsync (the runs use durability `none`): what the page cache takes on
    this machine at that moment, the ceiling of any server writing those bytes."""
    total = int(records) * int(size)
    chunk = bytes(1 << 20)
    start = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        left = total
        while left > 0:
            left -= f.write(chunk[:min(left, len(chunk))])
    seconds = time.perf_counter() - start
    print(json.dumps({"workload": workload, "size": int(size), "round": int(round_),
                      "system": "raw page-cache write", "records_per_sec": int(records) / seconds,
                      "mb_per_sec": total / seconds / 1e6, "load": load()}))


def load():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def table(paths):
    chart = next((p for p in paths if p.endswith(".svg")), None)
    paths = [p for p in paths if not p.endswith(".svg")]
    lines = [json.loads(line) for path in paths for line in open(path) if line.strip()]
    systems = [s for s in dict.fromkeys(line["system"] for line in lines) if s != "iggy"]
    cells = {}
    for line in lines:
        key = (line["workload"], line["size"], line["system"])
        cells.setdefault(key, []).append(line)
    head = ["row"] + systems + ["Apache Iggy"] + [f"{s} / Iggy" for s in systems] + ["rounds", "load"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    groups = []
    med_of = med_of_lines(cells)
    for workload, size in dict.fromkeys((line["workload"], line["size"]) for line in lines):
        big = size >= 1024
        unit = "mb_per_sec" if big else "records_per_sec"

        def med(system):
            runs = cells.get((workload, size, system), [])
            return statistics.median(r[unit] for r in runs) if runs else None

        def fmt(value):
            if value is None:
                return "-"
            return f"{value:.0f} MB/s" if big else f"{value / 1e6:.2f} M/s"

        peer = med("iggy")
        ratios = [f"{med(s) / peer:.2f}x" if med(s) and peer else "-" for s in systems]
        runs = [r for r in lines if (r["workload"], r["size"]) == (workload, size)]
        loads = [r["load"] for r in runs]
        rounds = len(cells.get((workload, size, "iggy"), []))
        row = f"{workload} {size} B"
        print("| " + " | ".join([row] + [fmt(med(s)) for s in systems] + [fmt(peer)] + ratios
                                + [str(rounds), f"{min(loads):.1f}-{max(loads):.1f}"]) + " |")
        groups.append((f"{row} (records/s)", [med_of(workload, size, s) for s in systems + ["iggy"]],
                       True))
    if chart:
        import table as drawing  # compare.sh's chart, drawn the same way
        drawing.svg(chart, "brook's doors, the page cache and Apache Iggy (median of rounds)",
                    systems + ["Apache Iggy"], groups)


def med_of_lines(cells):
    def med_of(workload, size, system):
        runs = cells.get((workload, size, system), [])
        return statistics.median(r["records_per_sec"] for r in runs) if runs else None
    return med_of


if __name__ == "__main__":
    if sys.argv[1] == "--brook":
        brook(*sys.argv[2:5])
    elif sys.argv[1] == "--iggy":
        iggy(*sys.argv[2:5])
    elif sys.argv[1] == "--raw":
        raw(*sys.argv[2:7])
    else:
        table(sys.argv[1:])
