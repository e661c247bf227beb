#!/usr/bin/env bash
# report_scale: `krewind report` and `krewind export` on a synthetic trace of
# 1 M events (bench/check_gen: clock interrupts, switches, 17 spinlocks,
# mutexes, one planted lock-order cycle). Prints, side by side from one run:
# wall time, user CPU time and peak RSS of report, of check on the same trace
# (report runs the same analysis plus its two passes), and of the three
# exports, and the size of what each wrote; then the Perfetto protobuf
# export's size and time against chrome-json's. Target: report < 5 s and
# < 500 MB RSS; the protobuf several times smaller than the JSON.
# REPORT_SCALE_EVENTS=N overrides the size.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.." || exit 2
make -s -j2 "$BUILD/krewind" "$BUILD/bench/check_gen" >/dev/null || exit 1
dir=$(mktemp -d "${TMPDIR:-/tmp}/krewind-report-scale.XXXXXX")
trap 'rm -rf "$dir"' EXIT
n=${REPORT_SCALE_EVENTS:-1000000}
db=$dir/trace.db
"$BUILD/bench/check_gen" "$db" "$n" || exit 1

# run NAME EXPECTED_STATUS OUTPUT CMD...: times CMD, prints one row.
run() {
	local name=$1 want=$2 out=$3 rc secs user kib size
	shift 3
	/usr/bin/time -f '%e %U %M' -o "$dir/time" "$@" >"$dir/stdout" 2>"$dir/stderr"
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "$name exited $rc (expected $want):"; tail -3 "$dir/stderr"; exit 1
	fi
	read -r secs user kib < <(tail -n 1 "$dir/time")
	size=$(stat -c %s "$out" 2>/dev/null || echo 0)
	printf '%-18s %8.2f %8.2f %8.1f %10.1f\n' "$name" "$secs" "$user" "$(echo "$kib / 1024" | bc -l)" \
		"$(echo "$size / 1048576" | bc -l)"
	eval "T_${name//[^a-z]/_}=$secs M_${name//[^a-z]/_}=$kib S_${name//[^a-z]/_}=$size"
}

echo "$n events, trace $(echo "$(stat -c %s "$db") / 1048576" | bc) MiB"
printf '%-18s %8s %8s %8s %10s\n' command wall_s cpu_s rss_MiB output_MiB
run check 1 /dev/null "$BUILD/krewind" check "$db"
run report 0 "$dir/report.html" "$BUILD/krewind" report "$db" -o "$dir/report.html"
run export_chrome 0 "$dir/trace.json" "$BUILD/krewind" export "$db" --format chrome-json -o "$dir/trace.json"
run export_perfetto 0 "$dir/trace.pftrace" "$BUILD/krewind" export "$db" --format perfetto -o "$dir/trace.pftrace"
run export_csv 0 "$dir/trace.csv" "$BUILD/krewind" export "$db" --format csv -o "$dir/trace.csv"
printf 'report/check: wall time %.2fx, peak RSS %.2fx\n' "$(echo "$T_report / $T_check" | bc -l)" \
	"$(echo "$M_report / $M_check" | bc -l)"
printf 'export perfetto/chrome-json: size %.2fx (chrome-json %.1fx larger), wall time %.2fx\n' \
	"$(echo "$S_export_perfetto / $S_export_chrome" | bc -l)" "$(echo "$S_export_chrome / $S_export_perfetto" | bc -l)" \
	"$(echo "$T_export_perfetto / $T_export_chrome" | bc -l)"
ok=1
[ "$(echo "$T_report < 5" | bc)" -eq 1 ] || ok=0
[ "$M_report" -lt $((500 * 1024)) ] || ok=0
if [ "$ok" -eq 1 ]; then echo "report: within the target (< 5 s, < 500 MiB)"; else echo "report: OVER the target (< 5 s, < 500 MiB)"; fi
