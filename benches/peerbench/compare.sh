#!/usr/bin/env bash
# brook, its plain-TCP baseline, Redis Streams and NATS JetStream in one run, one table (see
# README.md).
#
# Settings (environment): SIZE (record bytes, 100), RECORDS (per batched run, 1000000), ROUNDS
# (3), PROTOCOLS (brook bench doors, grpc,grpc-raw), BROOK (the brook binary,
# target/release/brook), SERVER_BROOK (the binary that serves, $BROOK), OUT (where the raw
# figures go), BROOK_PORT (50071), REDIS_PORT (6391), NATS_PORT (4232), NATS (1: drive NATS
# JetStream too, installing nats-server from Debian's packages when missing; 0: Redis only).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SIZE=${SIZE:-100}
RECORDS=${RECORDS:-1000000}
ROUNDS=${ROUNDS:-3}
PROTOCOLS=${PROTOCOLS:-grpc,grpc-raw}
BROOK=${BROOK:-$ROOT/target/release/brook}
SERVER_BROOK=${SERVER_BROOK:-$BROOK}
OUT=${OUT:-$(mktemp -d /tmp/brook-peer.XXXXXX)}
BROOK_PORT=${BROOK_PORT:-50071}
REDIS_PORT=${REDIS_PORT:-6391}
NATS_PORT=${NATS_PORT:-4232}
NATS=${NATS:-1}
mkdir -p "$OUT"

if ! command -v redis-server >/dev/null; then
    echo "redis-server is missing: installing it from Debian's packages" >&2
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
if [ "$NATS" = 1 ] && ! command -v nats-server >/dev/null; then
    echo "nats-server is missing: installing it from Debian's packages" >&2
    apt-get update -qq && apt-get install -y -qq nats-server >/dev/null
fi
cargo build --release --quiet --manifest-path "$HERE/Cargo.toml"
HARNESS=$HERE/target/release/harness
if [ ! -x "$BROOK" ]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin brook
fi

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

"$SERVER_BROOK" serve --data-dir "$OUT/brook-data" --grpc-addr "127.0.0.1:$BROOK_PORT" \
    --kafka-addr off --http-addr off >"$OUT/brook-serve.log" 2>&1 &
PIDS+=($!)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no >"$OUT/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
PORTS=("$BROOK_PORT" "$REDIS_PORT")
if [ "$NATS" = 1 ]; then
    # JetStream's file store with nats-server's default sync (every 2 minutes), which compares
    # with brook's --durability none as Redis without AOF does.
    cat >"$OUT/nats.conf" <<CONF
listen: 127.0.0.1:$NATS_PORT
jetstream {
  store_dir: "$OUT/nats-data"
  max_file_store: 20GB
  max_memory_store: 1GB
}
CONF
    nats-server -c "$OUT/nats.conf" >"$OUT/nats.log" 2>&1 &
    NATS_PID=$!
    PIDS+=("$NATS_PID")
    PORTS+=("$NATS_PORT")
fi
for _ in $(seq 50); do
    up=1
    for port in "${PORTS[@]}"; do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || up=0
    done
    [ "$up" = 1 ] && break
    sleep 0.2
done

S="--server http://127.0.0.1:$BROOK_PORT --durability none --protocol $PROTOCOLS --json"
LAT_RECORDS=20000
E2E_RECORDS=50000
for round in $(seq "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    # Each line of brook.jsonl is tagged with the row it measures.
    bench() {
        local row=$1; shift
        # shellcheck disable=SC2086
        "$BROOK" bench "$@" $S | python3 "$HERE/table.py" --tag "$row" "$round" >>"$OUT/brook.jsonl"
    }
    bench produce produce --records "$RECORDS" --record-bytes "$SIZE" --batch 1000
    bench consume consume --records "$RECORDS" --record-bytes "$SIZE" --batch 1000
    bench ack produce --records "$LAT_RECORDS" --record-bytes "$SIZE" --batch 1 --in-flight 1
    bench e2e e2e --records "$E2E_RECORDS" --record-bytes "$SIZE" --batch 1 --rate 10000
    "$HARNESS" redis --label redis --size "$SIZE" --count "$RECORDS" --repeats 1 \
        --url "redis://127.0.0.1:$REDIS_PORT/" --server-pid "$REDIS_PID" \
        --lat-count "$LAT_RECORDS" --e2e-secs 5 --tests produce,consume,lat,e2e \
        --out "$OUT/redis.jsonl" >/dev/null 2>>"$OUT/harness.log"
    if [ "$NATS" = 1 ]; then
        "$HARNESS" nats --label nats --size "$SIZE" --count "$RECORDS" --repeats 1 \
            --url "nats://127.0.0.1:$NATS_PORT" --server-pid "$NATS_PID" \
            --lat-count "$LAT_RECORDS" --e2e-secs 5 --tests produce,consume,lat,e2e \
            --out "$OUT/nats.jsonl" >/dev/null 2>>"$OUT/harness.log"
    fi
done

PEERS=("$OUT/redis.jsonl")
[ "$NATS" = 1 ] && PEERS+=("$OUT/nats.jsonl")
python3 "$HERE/table.py" "$OUT/brook.jsonl" "${PEERS[@]}" "$OUT/chart.svg"
echo "raw figures and chart.svg: $OUT" >&2
