#!/usr/bin/env bash
# Runs the libFuzzer targets built by tests/fuzz/fuzz.mk.
#
# Usage: tests/fuzz/run.sh fuzz FUZZ_BUILD SECONDS NAME...
#        tests/fuzz/run.sh regress FUZZ_BUILD NAME...
# fuzz: each target for SECONDS from its seeds (tests/fuzz/corpus/NAME) into
#   FUZZ_BUILD/corpus/NAME; a crasher is kept as FUZZ_BUILD/crashes/NAME-*
#   (copy it to tests/fuzz/regress/NAME/ with the fix). One line per target.
# regress: each target once over its seeds and regression inputs
#   (tests/fuzz/regress/NAME), prints "ok"/"not ok" TAP lines.
# Exit status: 0 when every target ran clean, 1 when one crashed, 2 on usage.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-} build=${2:-}
case $mode in
fuzz) [ $# -ge 4 ] || { echo "usage: tests/fuzz/run.sh fuzz FUZZ_BUILD SECONDS NAME..." >&2; exit 2; }
	secs=$3; shift 3 ;;
regress) [ $# -ge 3 ] || { echo "usage: tests/fuzz/run.sh regress FUZZ_BUILD NAME..." >&2; exit 2; }
	shift 2 ;;
*) echo "usage: tests/fuzz/run.sh fuzz|regress FUZZ_BUILD ..." >&2; exit 2 ;;
esac
# The largest seed decides -max_len (trace databases are the big ones).
maxlen() {
	local m=4096 s f
	for f in "$top/tests/fuzz/corpus/$1"/* "$top/tests/fuzz/regress/$1"/*; do
		[ -f "$f" ] || continue
		s=$(stat -c %s "$f")
		[ "$s" -gt "$m" ] && m=$s
	done
	echo $((m + m / 4))
}
failed=0 n=0
for name in "$@"; do
	bin=$build/fuzz_$name
	seeds=$top/tests/fuzz/corpus/$name regress=$top/tests/fuzz/regress/$name
	n=$((n + 1))
	if [ ! -x "$bin" ]; then
		echo "not ok $n - $name: $bin not built"; failed=1; continue
	fi
	if [ "$mode" = regress ]; then
		inputs=()
		for f in "$seeds"/* "$regress"/*; do [ -f "$f" ] && inputs+=("$f"); done
		log=$(mktemp)
		if "$bin" -runs=1 -timeout=30 "${inputs[@]}" >"$log" 2>&1; then
			echo "ok $n - $name: ${#inputs[@]} seeds and regression inputs run clean"
		else
			echo "not ok $n - $name: an input crashes"
			grep -aE 'ERROR|runtime error|Running:' "$log" | tail -n 5 | sed 's/^/#   /'
			failed=1
		fi
		rm -f "$log"
		continue
	fi
	corpus=$build/corpus/$name crashes=$build/crashes
	mkdir -p "$corpus" "$crashes"
	log=$build/fuzz_$name.log
	"$bin" -max_total_time="$secs" -max_len="$(maxlen "$name")" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$crashes/$name-" "$corpus" "$seeds" >"$log" 2>&1
	rc=$?
	stats=$(grep -aE '^#[0-9]+' "$log" | tail -n 1 | sed -E 's/^#([0-9]+).*cov: ([0-9]+).*corp: ([0-9]+).*exec\/s: ([0-9]+).*/\1 runs, cov \2, corpus \3, \4 exec\/s/')
	if [ $rc -eq 0 ]; then
		echo "fuzz_$name: ${secs}s clean: $stats"
	else
		echo "fuzz_$name: CRASH after $stats: $(ls -t "$crashes/$name-"* 2>/dev/null | head -n 1) (log $log)"
		grep -aE 'ERROR|runtime error' "$log" | head -n 3 | sed 's/^/    /'
		failed=1
	fi
done
[ "$mode" = regress ] && echo "1..$n"
exit $failed
