#!/usr/bin/env bash
# check_scale: `krewind check` on synthetic traces of 1 M and 10 M events.
# Prints, side by side from one run: wall time, user CPU time and peak RSS of
# the whole command, the time of a bare cursor scan of the same trace (the
# floor set by db/ and SQLite), and the 10M/1M ratios. Wall time depends on
# the machine's load; user CPU time less so. Target: 10 M events in < 10 s and
# < 256 MiB, with a ratio near 10 for time and near 1 for memory (streaming
# state). Then the same mix fed straight to the analysis (no trace file) at
# 10 M and 100 M events, with the resident set after each quarter: flat.
# CHECK_SCALE_SIZES="1000000 10000000" and CHECK_FEED_SIZES="10000000 100000000"
# override the sizes.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.." || exit 2
make -s -j2 "$BUILD/krewind" "$BUILD/bench/check_gen" "$BUILD/bench/check_run" >/dev/null || exit 1
dir=$(mktemp -d "${TMPDIR:-/tmp}/krewind-check-scale.XXXXXX")
trap 'rm -rf "$dir"' EXIT
sizes=${CHECK_SCALE_SIZES:-"1000000 10000000"}
feeds=${CHECK_FEED_SIZES:-"10000000 100000000"}

printf '%-10s %8s %8s %9s %11s %10s %9s %8s\n' events gen_s scan_s check_s check_cpu_s check_MiB findings db_MiB
declare -A T U M
for n in $sizes; do
	db=$dir/trace-$n.db
	g0=$(date +%s.%N)
	"$BUILD/bench/check_gen" "$db" "$n" || exit 1
	g1=$(date +%s.%N)
	scan=$("$BUILD/bench/check_run" "$db" scan) || exit 1
	/usr/bin/time -f '%e %U %M' -o "$dir/time" "$BUILD/krewind" check "$db" >"$dir/out" 2>&1
	rc=$?
	if [ $rc -ne 1 ]; then # the planted cycle must be found: exit 1 (findings)
		echo "krewind check exited $rc on $n events (expected 1):"; tail -5 "$dir/out"; exit 1
	fi
	read -r secs user kib < <(tail -n 1 "$dir/time")
	findings=$(grep -cE '^[0-9]+\. ' "$dir/out")
	T[$n]=$secs U[$n]=$user M[$n]=$kib
	printf '%-10s %8.2f %8.2f %9.2f %11.2f %10.1f %9s %8.1f\n' "$n" "$(echo "$g1 - $g0" | bc)" \
		"$(echo "$scan" | cut -d' ' -f3)" "$secs" "$user" "$(echo "$kib / 1024" | bc -l)" "$findings" \
		"$(echo "$(stat -c %s "$db") / 1048576" | bc -l)"
	rm -f "$db" "$db-wal" "$db-shm"
done
set -- $sizes
if [ $# -ge 2 ]; then
	printf 'ratio %s/%s: wall time %.2fx, cpu time %.2fx, peak RSS %.2fx\n' "$2" "$1" \
		"$(echo "${T[$2]} / ${T[$1]}" | bc -l)" "$(echo "${U[$2]} / ${U[$1]}" | bc -l)" \
		"$(echo "${M[$2]} / ${M[$1]}" | bc -l)"
fi

printf '\n%-10s %9s %9s %-32s\n' fed_events check_s findings 'RSS_MiB after 1/4 2/4 3/4 4/4'
for n in $feeds; do
	read -r ev found secs r1 r2 r3 r4 < <("$BUILD/bench/check_run" - feed "$n") || exit 1
	printf '%-10s %9.2f %9s %8s %5s %5s %5s\n' "$ev" "$secs" "$found" "$r1" "$r2" "$r3" "$r4"
done
