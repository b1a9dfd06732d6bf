#!/usr/bin/env bash
# brook (through brook-client, whole batches, and the Kafka door with librdkafka) and Apache Iggy
# (its own benchmark client) in one run: batched produce and consume, 100 B and 1 KiB records,
# one producer, one consumer, one partition, no fsync on either side. One table (see README.md),
# with the page cache's own rate for the produce runs' bytes beside them (`raw page-cache write`).
#
# Iggy is not part of brook and has no Debian package: point IGGY at a directory holding its
# server and benchmark client, `iggy-server` and `iggy-bench` (or gzipped, `iggy-server.gz` and
# `iggy-bench.gz`), built from https://github.com/apache/iggy with
# `cargo build --release -p server -p iggy-bench` (the server links libhwloc15 and libudev1).
#
#   IGGY=/path/to/iggy benches/peerbench/iggy.sh
#
# Settings (environment): IGGY (required), ROUNDS (3), SIZES (record bytes, "100 1024"),
# RECORDS_SMALL (records per run for sizes below 1 KiB, 2000000), RECORDS_LARGE (500000),
# PROTOCOLS (brook bench doors, grpc,grpc-raw,kafka; kafka needs a brook built with
# `--features bench-kafka`), BROOK (target/release/brook), OUT (where the raw figures go),
# BROOK_PORT (50075), KAFKA_PORT (19095), IGGY_PORT (8195), KEEP_DATA (unset: the servers' data
# directories and unpacked binaries, about 550 MB a run, are removed at the end; the figures and
# logs stay in OUT).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
: "${IGGY:?set IGGY to the directory holding iggy-server and iggy-bench (see the head of this script)}"
ROUNDS=${ROUNDS:-3}
SIZES=${SIZES:-100 1024}
RECORDS_SMALL=${RECORDS_SMALL:-2000000}
RECORDS_LARGE=${RECORDS_LARGE:-500000}
PROTOCOLS=${PROTOCOLS:-grpc,grpc-raw,kafka}
BROOK=${BROOK:-$ROOT/target/release/brook}
OUT=${OUT:-$(mktemp -d /tmp/brook-iggy.XXXXXX)}
BROOK_PORT=${BROOK_PORT:-50075}
KAFKA_PORT=${KAFKA_PORT:-19095}
IGGY_PORT=${IGGY_PORT:-8195}
mkdir -p "$OUT/bin"

# The Iggy binaries, unpacked into $OUT when gzipped.
for tool in iggy-server iggy-bench; do
    if [ -x "$IGGY/$tool" ]; then
        ln -sf "$IGGY/$tool" "$OUT/bin/$tool"
    elif [ -f "$IGGY/$tool.gz" ]; then
        gunzip -c "$IGGY/$tool.gz" >"$OUT/bin/$tool"
        chmod +x "$OUT/bin/$tool"
    else
        echo "$IGGY holds neither $tool nor $tool.gz" >&2
        exit 2
    fi
done
if [ ! -x "$BROOK" ]; then
    features=()
    case ",$PROTOCOLS," in *,kafka,*) features=(--features bench-kafka) ;; esac
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin brook "${features[@]}"
fi

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${KEEP_DATA:-}" ] || rm -rf "$OUT/brook-data" "$OUT/iggy-data" "$OUT/bin"
}
trap cleanup EXIT

"$BROOK" serve --data-dir "$OUT/brook-data" --grpc-addr "127.0.0.1:$BROOK_PORT" \
    --kafka-addr "127.0.0.1:$KAFKA_PORT" --http-addr off >"$OUT/brook-serve.log" 2>&1 &
PIDS+=($!)
# Iggy with its TCP door only, on a port of its own; it does not fsync by default either.
IGGY_ROOT_USERNAME=iggy IGGY_ROOT_PASSWORD=iggy IGGY_TCP_ADDRESS="127.0.0.1:$IGGY_PORT" \
    IGGY_HTTP_ENABLED=false IGGY_QUIC_ENABLED=false IGGY_WEBSOCKET_ENABLED=false \
    IGGY_SYSTEM_PATH="$OUT/iggy-data" "$OUT/bin/iggy-server" >"$OUT/iggy-server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    up=1
    for port in "$BROOK_PORT" "$KAFKA_PORT" "$IGGY_PORT"; do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || up=0
    done
    [ "$up" = 1 ] && break
    sleep 0.2
done
[ "$up" = 1 ] || { echo "a server did not start: see $OUT/*.log" >&2; exit 1; }

S="--server http://127.0.0.1:$BROOK_PORT --kafka-addr 127.0.0.1:$KAFKA_PORT --durability none"
S="$S --protocol $PROTOCOLS --batch 1000 --json"
for round in $(seq "$ROUNDS"); do
    for size in $SIZES; do
        records=$RECORDS_SMALL
        [ "$size" -ge 1024 ] && records=$RECORDS_LARGE
        echo "round $round of $ROUNDS, $size B x $records ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
        # The page cache's own rate for the bytes a produce run stores, taken just before the
        # runs and kept until after them, so that neither server is handed the pages it frees.
        python3 "$HERE/iggy_table.py" --raw produce "$size" "$round" "$records" "$OUT/raw-write" \
            >>"$OUT/brook.jsonl"
        for workload in produce consume; do
            # shellcheck disable=SC2086
            "$BROOK" bench "$workload" --records "$records" --record-bytes "$size" $S \
                | python3 "$HERE/iggy_table.py" --brook "$workload" "$size" "$round" \
                >>"$OUT/brook.jsonl"
            # Iggy's pinned benchmarks: one producer (one consumer) on one stream and partition,
            # batches of 1000; the consumer's run first writes what it reads.
            actor=pinned-producer; flag=-p
            [ "$workload" = consume ] && { actor=pinned-consumer; flag=-c; }
            "$OUT/bin/iggy-bench" -m "$size" -P 1000 -b $((records / 1000)) "$actor" "$flag" 1 \
                tcp --server-address "127.0.0.1:$IGGY_PORT" 2>&1 \
                | python3 "$HERE/iggy_table.py" --iggy "$workload" "$size" "$round" \
                >>"$OUT/iggy.jsonl"
        done
        rm -f "$OUT/raw-write"
    done
done

python3 "$HERE/iggy_table.py" "$OUT/brook.jsonl" "$OUT/iggy.jsonl" "$OUT/chart.svg"
echo "raw figures and chart.svg: $OUT" >&2
