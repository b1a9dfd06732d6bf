#!/usr/bin/env bash
# Which side bounds a door over TLS: the CPU each thread of the bench (the client) and of the
# server spends while records flow, TLS beside plaintext (docs/benchmarks.md, "Kafka over TLS:
# which side bounds it" and "gRPC over TLS: where the time goes").
#
# stunnel cannot split consume (its own copy is slower than either side), so this reads the
# threads' CPU instead: two `brook serve` children of one binary (only the benched door open,
# one plaintext, one with a certificate made here with openssl), then per round `brook bench
# consume --protocol kafka` against each, while every thread's utime+stime is read from /proc every
# 0.2 s. For each run it prints the cores each busy thread used over the consume phase (the
# window of the run's length where librdkafka's broker threads were busiest: the bench's fill
# and its TCP baseline are outside it) and CPU seconds per GB for the bench and the server.
#
# PROTOCOL=grpc does the same for the gRPC door (brook-client over tonic: `--server
# https://...`), for each workload of WORKLOADS (default: produce consume); its window is the
# run's length up to the last moment the server was busy (the bench's baselines come after the
# timed phase and leave the server idle; consume's fill comes before it).
#
#   benches/tls-thread-cpu.sh                 # Kafka consume, 3 rounds of 2 000 000 records of 1 KiB
#   ROUNDS=5 RECORDS=1000000 benches/tls-thread-cpu.sh
#   PROTOCOL=grpc benches/tls-thread-cpu.sh   # gRPC produce and consume
#
# Needs: a brook built with `--features bench-kafka-tls` for Kafka (apt-get install libssl-dev;
# any release build for gRPC; BROOK, default target/release/brook), openssl, python3.
set -euo pipefail

BROOK=${BROOK:-target/release/brook}
ROUNDS=${ROUNDS:-3}
RECORDS=${RECORDS:-2000000}
PROTOCOL=${PROTOCOL:-kafka}
case "$PROTOCOL" in
kafka) door=--kafka-addr WORKLOADS=${WORKLOADS:-consume} ;;
grpc) door=--grpc-addr WORKLOADS=${WORKLOADS:-produce consume} ;;
*)
    echo "PROTOCOL=$PROTOCOL: expected kafka or grpc" >&2
    exit 2
    ;;
esac
PLAIN_ADDR=${PLAIN_ADDR:-127.0.0.1:19301}
TLS_ADDR=${TLS_ADDR:-127.0.0.1:19302}
# The temporary directory, its cleanup, the certificates and `serve` (tls-common.sh).
# shellcheck source=benches/tls-common.sh
. "$(dirname "$0")/tls-common.sh"
tls_setup brook-tls-cpu

serve plain "$PLAIN_ADDR"
PLAIN_PID=${pids[-1]}
serve tls "$TLS_ADDR" --tls-cert "$work/server.pem" --tls-key "$work/server.key"
TLS_PID=${pids[-1]}
sleep 2

# Until the bench ends, every 0.2 s one line per thread of the bench and of the server:
# "time side thread-name ticks" (utime + stime, in clock ticks). One python process reads /proc,
# so the sampling itself forks nothing while it runs.
sample() { # bench-pid server-pid out
    python3 - "$@" <<'PY'
import os, sys, time
bench, server, out = sys.argv[1], sys.argv[2], open(sys.argv[3], "w")
while os.path.exists(f"/proc/{bench}"):
    now = time.time()
    for pid, side in ((bench, "bench"), (server, "server")):
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                stat = open(f"/proc/{pid}/task/{task}/stat").read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")].replace(" ", "_")
            fields = stat[stat.rindex(")") + 2:].split()
            out.write(f"{now} {side} {comm} {int(fields[11]) + int(fields[12])}\n")
    time.sleep(0.2)
PY
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
    for workload in $WORKLOADS; do
        for mode in plain tls; do
            if [ "$mode" = plain ]; then
                server_pid=$PLAIN_PID
                if [ "$PROTOCOL" = kafka ]; then server=(--kafka-addr "$PLAIN_ADDR")
                else server=(--server "http://$PLAIN_ADDR"); fi
            else
                server_pid=$TLS_PID
                if [ "$PROTOCOL" = kafka ]; then server=(--kafka-addr "$TLS_ADDR")
                else server=(--server "https://$TLS_ADDR"); fi
                server+=(--tls-ca "$work/ca.pem")
            fi
            run=$mode-$workload-$round
            "$BROOK" bench "$workload" --protocol "$PROTOCOL" --durability none --records "$RECORDS" \
                --record-bytes 1024 --batch 1000 --topic "cpu-$run" --json "${server[@]}" \
                >"$work/$run.json" 2>"$work/$run.err" &
            bench_pid=$!
            sample "$bench_pid" "$server_pid" "$work/$run.cpu"
            wait "$bench_pid"
            python3 - "$work/$run.json" "$work/$run.cpu" "$mode" "$round" "$PROTOCOL" "$workload" <<'PY'
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
# The timed phase. gRPC: the run's length up to the last sample where the server was busy (after
# the timed phase the bench measures its baselines without the server). Kafka: the window of the
# run's length where librdkafka's broker threads were busiest.
best = None
if sys.argv[5] == "grpc":
    server = [sum(v for (side, _), v in snaps[t].items() if side == "server") for t in times]
    end = max(times[i] for i in range(1, len(times)) if server[i] - server[i - 1] >= 3)
    start = min(times, key=lambda t: abs(t - (end - elapsed)))
    best = (0, start, end)
for i, t0 in enumerate(times if best is None else []):
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
print(f"{sys.argv[6]:7} {sys.argv[3]:5} round {sys.argv[4]}: {mb:7.0f} MB/s; cores: "
      + ", ".join(f"{name} {v:.2f}" for v, name in busy)
      + f"; CPU s/GB: bench {total['bench'] / mb * 1000:.2f}, server {total['server'] / mb * 1000:.2f}")
PY
        done
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
