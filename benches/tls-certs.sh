# Sourced by the TLS bench scripts (tls-bench.sh, tls-thread-cpu.sh): one place that makes their
# certificates.
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
