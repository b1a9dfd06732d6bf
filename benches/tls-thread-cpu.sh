#!/usr/bin/env bash
# Which side bounds Kafka consume over TLS: the CPU each thread of the bench (librdkafka) and of
# the server spends while records flow, TLS beside plaintext (docs/benchmarks.md, "Kafka over
# TLS: which side bounds it").
#
# stunnel cannot split consume (its own copy is slower than either side), so this reads the
# threads' CPU instead: two `brook serve` children of one binary (Kafka door only, one
# plaintext, one with a certificate made here with openssl), then per round `brook bench consume
# --protocol kafka` against each, while every thread's utime+stime is read from /proc every
# 0.2 s. For each run it prints the cores each busy thread used over the consume phase (the
# window of the run's length where librdkafka's broker threads were busiest: the bench's fill
# and its TCP baseline are outside it) and CPU seconds per GB for the bench and the server.
#
#   benches/tls-thread-cpu.sh                 # 3 rounds of 2 000 000 records of 1 KiB
#   ROUNDS=5 RECORDS=1000000 benches/tls-thread-cpu.sh
#
# Needs: a brook built with `--features bench-kafka-tls` (apt-get install libssl-dev; BROOK,
# default target/release/brook), openssl, python3.
set -euo pipefail

BROOK=${BROOK:-target/release/brook}
ROUNDS=${ROUNDS:-3}
RECORDS=${RECORDS:-2000000}
PLAIN_ADDR=${PLAIN_ADDR:-127.0.0.1:19301}
TLS_ADDR=${TLS_ADDR:-127.0.0.1:19302}
work=$(mktemp -d -t brook-tls-cpu-XXXXXX)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# A CA and a server certificate it signs (tls-certs.sh).
# shellcheck source=benches/tls-certs.sh
. "$(dirname "$0")/tls-certs.sh"
tls_certs "$work"

serve() { # name addr extra-args...
    local name=$1 addr=$2
    shift 2
    "$BROOK" serve --data-dir "$work/$name" --grpc-addr off --http-addr off --metrics-addr off \
        --kafka-addr "$addr" --log-level warn "$@" >"$work/$name.log" 2>&1 &
    PIDS+=($!)
}
serve plain "$PLAIN_ADDR"
PLAIN_PID=${PIDS[-1]}
serve tls "$TLS_ADDR" --tls-cert "$work/server.pem" --tls-key "$work/server.key"
TLS_PID=${PIDS[-1]}
sleep 2

# One line per thread: "time side thread-name ticks" (utime + stime, in clock ticks).
sample() { # time pid side
    local now=$1 pid=$2 side=$3 stat comm
    for task in /proc/"$pid"/task/*; do
        stat=$(cat "$task/stat" 2>/dev/null) || continue
        comm=$(tr ' ' _ <"$task/comm" 2>/dev/null) || continue
        # shellcheck disable=SC2086 # the fields after the command name, split on purpose
        set -- ${stat##*) }
        echo "$now $side $comm $((${12} + ${13}))"
    done
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
    for mode in plain tls; do
        if [ "$mode" = plain ]; then
            server=(--kafka-addr "$PLAIN_ADDR"); server_pid=$PLAIN_PID
        else
            server=(--kafka-addr "$TLS_ADDR" --tls-ca "$work/ca.pem"); server_pid=$TLS_PID
        fi
        "$BROOK" bench consume --protocol kafka --durability none --records "$RECORDS" \
            --record-bytes 1024 --batch 1000 --topic "cpu-$mode-$round" --json "${server[@]}" \
            >"$work/$mode-$round.json" 2>"$work/$mode-$round.err" &
        bench_pid=$!
        while kill -0 "$bench_pid" 2>/dev/null; do
            now=$(date +%s.%N)
            { sample "$now" "$bench_pid" bench; sample "$now" "$server_pid" server; } \
                >>"$work/$mode-$round.cpu" || true
            sleep 0.2
        done
        wait "$bench_pid"
        python3 - "$work/$mode-$round.json" "$work/$mode-$round.cpu" "$mode" "$round" <<'PY'
import collections, json, sys
run = json.load(open(sys.argv[1]))
elapsed, mb = run["elapsed_secs"], run["mb_per_sec"]
snaps = collections.OrderedDict()
for line in open(sys.argv[2]):
    t, side, name, ticks = line.split()
    snaps.setdefault(float(t), collections.Counter())[(side, name)] += int(ticks)
times = list(snaps)
def used(a, b):
    return {k: snaps[b][k] - snaps[a].get(k, 0) for k in snaps[b]}
# The consume phase: the window of the run's length where librdkafka's broker threads were busiest.
best = None
for i, t0 in enumerate(times):
    j = min(range(len(times)), key=lambda k: abs(times[k] - (t0 + elapsed)))
    if j <= i:
        continue
    busy = sum(v for (side, name), v in used(t0, times[j]).items()
               if side == "bench" and name.startswith("rdk:broker"))
    if best is None or busy > best[0]:
        best = (busy, t0, times[j])
_, t0, t1 = best
span = t1 - t0
cores = {k: v / 100 / span for k, v in used(t0, t1).items()}
total = {s: sum(v for (side, _), v in cores.items() if side == s) for s in ("bench", "server")}
busy = sorted(((v, f"{side}:{name}") for (side, name), v in cores.items() if v >= 0.05), reverse=True)
print(f"{sys.argv[3]:5} round {sys.argv[4]}: {mb:7.0f} MB/s; cores: "
      + ", ".join(f"{name} {v:.2f}" for v, name in busy)
      + f"; CPU s/GB: bench {total['bench'] / mb * 1000:.2f}, server {total['server'] / mb * 1000:.2f}")
PY
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
