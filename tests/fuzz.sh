#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a while each: a smoke run of the coverage-guided
# fuzzers, not part of CI (it needs the nightly toolchain and cargo-fuzz, and minutes).
#
#   tests/fuzz.sh                 # every target, 180 s each
#   tests/fuzz.sh 3600            # every target, an hour each
#   tests/fuzz.sh 600 kafka_requests http_bodies   # some targets
#
# Each target keeps its corpus in fuzz/corpus/TARGET (grown run after run) and writes what
# crashes it to fuzz/artifacts/TARGET/. A crash found becomes a regression test next to the
# code it broke (docs/reliability.md, "Fuzzing"). Exits non-zero when any target crashed.
set -euo pipefail

seconds="${1:-180}"
shift || true
cd "$(dirname "$0")/../fuzz"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "tests/fuzz.sh needs the nightly toolchain and cargo-fuzz:" >&2
    echo "  rustup toolchain install nightly && cargo install cargo-fuzz" >&2
    exit 2
fi
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    listed=$(cargo +nightly fuzz list)
    mapfile -t targets <<<"$listed"
fi
if [ "${#targets[@]}" -eq 0 ] || [ -z "${targets[0]}" ]; then
    echo "tests/fuzz.sh: no fuzz target to run" >&2
    exit 2
fi
failed=()
mkdir -p target
for target in "${targets[@]}"; do
    echo "== $target: ${seconds}s"
    log="target/fuzz-$target.log"
    # -rss_limit_mb: a door target holds a broker and its runtime; 2 GiB is far above both.
    status=0
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|SUMMARY)' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -40 "$log"
        failed+=("$target")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "no crash in ${targets[*]}"
