#!/usr/bin/env bash
# TLS beside plaintext on one door, in one run, against one build (docs/benchmarks.md, "TLS").
#
# Starts two `brook serve` children of the same binary, each on its own temporary data directory
# and only the benched door open: one plaintext, one with `--tls-cert/--tls-key` (a P-256
# certificate signed by a CA, both made here with `openssl`). Then, for each repetition, runs
# `brook bench produce` and `brook bench consume` (1 KiB records, batches of 1000, durability
# none) against the plaintext server and then the TLS one (`--tls-ca`, with an `https://`
# --server for grpc, grpc-raw and http, `--kafka-addr` for kafka), back to back, and prints one
# line per run and the TLS / plaintext ratio of each pair. The load average is printed before
# and after: the machine is shared.
#
#   benches/tls-bench.sh                      # gRPC door, 3 repetitions of 1 000 000 records (about 1 GB)
#   REPS=5 RECORDS=500000 PROTOCOL=grpc-raw benches/tls-bench.sh
#   PROTOCOL=http benches/tls-bench.sh        # the HTTP door (reqwest over rustls): needs a
#                                             # bench-http-tls build, see below
#   PROTOCOL=kafka benches/tls-bench.sh       # the Kafka door (librdkafka over OpenSSL): needs a
#                                             # bench-kafka-tls build, see below
#   BROOK=target/debug/brook RECORDS=2000 REPS=1 benches/tls-bench.sh   # a quick check of the path
#   STUNNEL=1 PROTOCOL=kafka benches/tls-bench.sh   # and two stunnel baselines (below)
#
# STUNNEL=1 (Kafka only) adds two modes to each pair, to tell the client's TLS from the server's:
#   c-ssl: librdkafka over TLS (OpenSSL) to stunnel (OpenSSL), which forwards in the clear to a
#          plaintext brook: brook's TLS is out of the path, librdkafka's is in it;
#   s-tls: librdkafka in the clear to a local stunnel client, which speaks TLS to a TLS brook
#          (rustls): librdkafka's TLS is out of the path, brook's is in it.
# Each has its own brook, advertising stunnel's port (Metadata sends clients there). stunnel
# adds a hop of its own (a copy through its 18 KiB buffers and its threads on the same cores),
# so each baseline is slower than TLS done in place would be. Needs stunnel (apt-get install
# stunnel4).
#
# Needs: a built brook (default target/release/brook: `cargo build --release --bin brook`; for
# PROTOCOL=http `cargo build --release --bin brook --features bench-http-tls`, for PROTOCOL=kafka
# `apt-get install libssl-dev` then `--features bench-kafka-tls,bench-http-tls`: this script runs
# them itself when BUILD=1), openssl, python3 (to read the bench's --json).
set -euo pipefail

BROOK=${BROOK:-target/release/brook}
REPS=${REPS:-3}
RECORDS=${RECORDS:-1000000}
PROTOCOL=${PROTOCOL:-grpc}
PLAIN_ADDR=${PLAIN_ADDR:-127.0.0.1:50071}
TLS_ADDR=${TLS_ADDR:-127.0.0.1:50072}
STUNNEL=${STUNNEL:-0}
# STUNNEL=1: stunnel's listening ports and the brooks behind them.
C_SSL_ADDR=${C_SSL_ADDR:-127.0.0.1:50073}
C_SSL_BROOK=${C_SSL_BROOK:-127.0.0.1:50074}
S_TLS_ADDR=${S_TLS_ADDR:-127.0.0.1:50075}
S_TLS_BROOK=${S_TLS_BROOK:-127.0.0.1:50076}

case "$PROTOCOL" in
grpc | grpc-raw) door=--grpc-addr ;;
http)
    door=--http-addr
    if [ "${BUILD:-0}" = 1 ]; then cargo build --release --bin brook --features bench-http-tls; fi
    ;;
kafka)
    door=--kafka-addr
    if [ "${BUILD:-0}" = 1 ]; then
        dpkg -s libssl-dev >/dev/null 2>&1 || apt-get install -y libssl-dev
        cargo build --release --bin brook --features bench-kafka-tls,bench-http-tls
    fi
    ;;
*)
    echo "PROTOCOL=$PROTOCOL: expected grpc, grpc-raw, http or kafka" >&2
    exit 2
    ;;
esac
modes=(plain tls)
if [ "$STUNNEL" = 1 ]; then
    if [ "$PROTOCOL" != kafka ]; then
        echo "STUNNEL=1 is for PROTOCOL=kafka" >&2
        exit 2
    fi
    command -v stunnel >/dev/null || {
        echo "STUNNEL=1 needs stunnel: apt-get install stunnel4" >&2
        exit 2
    }
    modes+=(c-ssl s-tls)
fi

# The temporary directory, its cleanup, the certificates and `serve` (tls-common.sh).
# shellcheck source=benches/tls-common.sh
. "$(dirname "$0")/tls-common.sh"
tls_setup brook-tls-bench

serve plain "$PLAIN_ADDR"
serve tls "$TLS_ADDR" --tls-cert "$work/server.pem" --tls-key "$work/server.key"
if [ "$STUNNEL" = 1 ]; then
    serve c-ssl "$C_SSL_BROOK" --kafka-advertised-addr "$C_SSL_ADDR"
    serve s-tls "$S_TLS_BROOK" --kafka-advertised-addr "$S_TLS_ADDR" \
        --tls-cert "$work/server.pem" --tls-key "$work/server.key"
    # Server mode in front of the plaintext brook; client mode (checking brook's certificate
    # against the CA and the IP) in front of the TLS one. No delay on either side, as brook
    # and librdkafka set.
    cat >"$work/stunnel.conf" <<CONF
foreground = yes
pid =
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
[c-ssl]
accept = $C_SSL_ADDR
connect = $C_SSL_BROOK
cert = $work/server.pem
key = $work/server.key
[s-tls]
client = yes
accept = $S_TLS_ADDR
connect = $S_TLS_BROOK
CAfile = $work/ca.pem
verifyChain = yes
checkIP = ${S_TLS_BROOK%:*}
CONF
    stunnel "$work/stunnel.conf" >"$work/stunnel.log" 2>&1 &
    pids+=($!)
fi

wait_port() { # addr
    local host=${1%:*} port=${1##*:}
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "no server on $1; its log:" >&2
    cat "$work"/*.log >&2
    exit 1
}
wait_port "$PLAIN_ADDR"
wait_port "$TLS_ADDR"
if [ "$STUNNEL" = 1 ]; then
    for addr in "$C_SSL_BROOK" "$S_TLS_BROOK" "$C_SSL_ADDR" "$S_TLS_ADDR"; do wait_port "$addr"; done
fi

bench() { # workload mode -> "records/s MB/s p99_us"
    local workload=$1 mode=$2 server
    if [ "$PROTOCOL" = kafka ]; then
        case "$mode" in
        plain) server=(--kafka-addr "$PLAIN_ADDR") ;;
        tls) server=(--kafka-addr "$TLS_ADDR" --tls-ca "$work/ca.pem") ;;
        c-ssl) server=(--kafka-addr "$C_SSL_ADDR" --tls-ca "$work/ca.pem") ;;
        s-tls) server=(--kafka-addr "$S_TLS_ADDR") ;;
        esac
    elif [ "$mode" = tls ]; then
        server=(--server "https://$TLS_ADDR" --tls-ca "$work/ca.pem")
    else
        server=(--server "http://$PLAIN_ADDR")
    fi
    "$BROOK" bench "$workload" --protocol "$PROTOCOL" --durability none --records "$RECORDS" \
        --record-bytes 1024 --batch 1000 --topic "tls-bench-$mode" --json "${server[@]}" |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f %.1f %d" % (r["records_per_sec"], r["mb_per_sec"], r["p99_us"]))'
}

echo "brook: $BROOK ($(stat -c %y "$BROOK" | cut -d. -f1)); protocol $PROTOCOL; $RECORDS records of 1024 B, batches of 1000, durability none"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
printf '%-4s %-8s %-6s %12s %9s %9s\n' rep workload mode records/s MB/s p99_us
ratios=()
for rep in $(seq "$REPS"); do
    for workload in produce consume; do
        line="rep $rep $workload:"
        for mode in "${modes[@]}"; do
            # An assignment of its own, so a failing bench stops the script (set -e).
            out=$(bench "$workload" "$mode")
            read -r rps mbs p99 <<<"$out"
            printf '%-4s %-8s %-6s %12s %9s %9s\n' "$rep" "$workload" "$mode" "$rps" "$mbs" "$p99"
            if [ "$mode" = plain ]; then
                plain_rps=$rps
            else
                line+=" $mode $(python3 -c "print('%.2f' % ($rps / $plain_rps))")x"
            fi
        done
        ratios+=("$line")
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "each mode / plaintext records/s:"
for r in "${ratios[@]}"; do echo "  $r"; done
