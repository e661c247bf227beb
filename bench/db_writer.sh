#!/usr/bin/env bash
# Trace writer throughput and size, measured side by side in one run:
# 1 M and 10 M events, kernel-half addresses (0xffffffff8xxxxxxx) and low
# ones (0x1xxxxx). "ingest" is the sustained rate (events committed while
# the producers push; the requirement is >= 1 M events/s); "close" is the
# time db_writer_close takes; "core ev/s" is the rate the writer thread
# reaches per second of CPU it gets (its CPU time per event, from schedstat),
# which does not depend on what else the machine runs; bytes/event is the
# closed file, block index included (the requirement is <= 64).
set -u
BUILD=${BUILD:-build}
bench=$BUILD/bench/db_bench
[ -x "$bench" ] || { echo "missing $bench (make $bench)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/db_bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<" $2"; }

printf '%-8s %-7s %12s %8s %12s %12s %11s\n' events addrs "ingest ev/s" "close s" "total ev/s" "core ev/s" bytes/event
declare -A rate size core
for addrs in kernel low; do
	for n in 1000000 10000000; do
		out=$("$bench" "$n" "$addrs" "$tmp/$addrs-$n.db") || { echo "db_bench failed: $out" >&2; exit 1; }
		rm -f "$tmp/$addrs-$n.db"
		rate[$addrs-$n]=$(field ingest_events_per_s "$out")
		size[$addrs-$n]=$(field bytes_per_event "$out")
		core[$addrs-$n]=$(field writer_core_events_per_s "$out")
		printf '%-8s %-7s %12.0f %8.2f %12.0f %12.0f %11.1f\n' "$n" "$addrs" "${rate[$addrs-$n]}" \
			"$(field close_s "$out")" "$(field total_events_per_s "$out")" "${core[$addrs-$n]}" \
			"${size[$addrs-$n]}"
	done
done
for addrs in kernel low; do
	awk -v a="${rate[$addrs-10000000]}" -v b="${rate[$addrs-1000000]}" \
		-v c="${size[$addrs-10000000]}" -v d="${size[$addrs-1000000]}" \
		-v e="${core[$addrs-10000000]}" -v f="${core[$addrs-1000000]}" -v s="$addrs" \
		'BEGIN { printf "ratio 10M/1M (%s): ingest rate %.2f, core rate %.2f, bytes/event %.2f\n", s, a / b, e / f, c / d }'
done
echo "load average at the end: $(cut -d" " -f1-3 /proc/loadavg)"
