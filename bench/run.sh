#!/usr/bin/env bash
# bench/run.sh is `make bench-e2e`: build herald, install the Node peers,
# run every scenario against Herald, Node ws, Socket.IO and the floor
# server (bench/floor) in turn, and
# write bench/results/<timestamp>/ (report.md, results.json, *.svg, logs/).
#
#   QUICK=1 make bench-e2e          ~3 minutes, for a smoke check
#   make bench-e2e                  full run (~20 min); also updates docs/benchmarks.md
#                                   (only a run of every default target and scenario does)
#   BENCH_ARGS="--conns 5000 broadcast" make bench-e2e   extra herald bench flags / scenarios
set -euo pipefail
cd "$(dirname "$0")/.."

for bin in go node npm redis-server; do
	command -v "$bin" >/dev/null || { echo "bench: $bin not found in PATH (redis-server: apt-get install redis-server)" >&2; exit 1; }
done

go build -o bin/herald ./cmd/herald
(cd bench/peers && npm ci --no-audit --no-fund --loglevel=error)

out="bench/results/$(date +%Y%m%d-%H%M%S)"
args=(--out "$out" --command "${QUICK:+QUICK=$QUICK }make bench-e2e${BENCH_ARGS:+ BENCH_ARGS=\"$BENCH_ARGS\"}")
if [ "${QUICK:-0}" = 1 ]; then
	args+=(--quick)
else
	args+=(--docs docs/benchmarks.md --docs-charts docs/benchmarks)
fi
# shellcheck disable=SC2086 # BENCH_ARGS is meant to be split
bin/herald bench "${args[@]}" ${BENCH_ARGS:-}
echo "bench: report in $out/report.md"
