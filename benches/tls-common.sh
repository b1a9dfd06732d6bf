# Sourced by the TLS bench scripts (tls-bench.sh, tls-thread-cpu.sh): one place for what both
# set up before they measure.
#
# tls_setup NAME makes the temporary directory $work (removed on exit, after every process the
# script started and recorded in $pids has been stopped: a server still writes its data
# directory as it stops) and the certificates in it (tls_certs).
#
# serve NAME ADDR ARGS... starts `$BROOK serve` on its own data directory $work/NAME with only
# the door $door (--grpc-addr, --kafka-addr or --http-addr, set by the caller) open on ADDR and
# ARGS added, logging to $work/NAME.log; its pid is the last of $pids.
#
# tls_certs DIR writes DIR/ca.pem (a P-256 CA, for the clients' --tls-ca) and DIR/server.pem,
# DIR/server.key (a certificate it signs for localhost and 127.0.0.1, for brook serve's
# --tls-cert/--tls-key). A CA and a certificate it signs, not one self-signed certificate:
# rustls (the bench's gRPC and HTTP clients) refuses a self-signed `openssl req -x509`
# certificate as the server's own (it is marked CA:TRUE). Needs openssl.
tls_certs() {
    local dir=$1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=brook bench CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' \
        >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
}

tls_setup() {
    work=$(mktemp -d -t "$1-XXXXXX")
    pids=()
    trap tls_cleanup EXIT
    tls_certs "$work"
}

tls_cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}

serve() { # name addr extra-args...
    local name=$1 addr=$2
    shift 2
    local doors=() other
    for other in --grpc-addr --kafka-addr --http-addr; do
        if [ "$other" = "$door" ]; then doors+=("$other" "$addr"); else doors+=("$other" off); fi
    done
    "$BROOK" serve --data-dir "$work/$name" "${doors[@]}" --metrics-addr off --log-level warn \
        "$@" >"$work/$name.log" 2>&1 &
    pids+=($!)
}
