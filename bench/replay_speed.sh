#!/usr/bin/env bash
# Replay against recording: `krewind record` of a scenario, then a full
# replay of it (`krewind verify --no-plugin`: QEMU replaying the whole log) and
# a seek to its last event (`krewind replay --to`), alternately REPS times
# (default 3) in one go. Prints the median wall times and the ratios
# replay/record and seek/record. SCENARIO (default clean) picks the run.
# Then, on the last recording: replay --to an event halfway and gdb attached
# there, each against the record time of that prefix (the prefix's share of
# the recording's instructions times the record wall time); reverse-stepi and
# reverse-continue (to the previous switch) in that gdb session; and the cost
# of a bisection in replays: the first switch at which the guest's
# KeTickCount reaches BISECT_TICKS (default 20), asked through gdb.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.." || exit 2
KREWIND=$BUILD/krewind
REPS=${REPS:-3}
SCENARIO=${SCENARIO:-clean}
[ -x "$KREWIND" ] || { echo "replay_speed: $KREWIND not built" >&2; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/krewind-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export KREWIND_TRACES=$tmp/traces

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: >"$tmp/rec"; : >"$tmp/rep"; : >"$tmp/seek"
for i in $(seq "$REPS"); do
	t0=$(now)
	"$KREWIND" record --scenario "$SCENARIO" -q >/dev/null 2>&1 || { echo "replay_speed: record failed" >&2; exit 1; }
	t1=$(now)
	rec=$KREWIND_TRACES/$SCENARIO-$i
	"$KREWIND" verify "$rec" --no-plugin >/dev/null 2>&1 || { echo "replay_speed: replay of $rec not deterministic" >&2; exit 1; }
	t2=$(now)
	last=$("$KREWIND" sql "$rec" "SELECT max(id) FROM events" | tail -1 | tr -d ' ')
	"$KREWIND" replay "$rec" --to "$last" >/dev/null 2>&1 || { echo "replay_speed: replay --to $last failed" >&2; exit 1; }
	t3=$(now)
	echo "$t1 - $t0" | bc >>"$tmp/rec"
	echo "$t2 - $t1" | bc >>"$tmp/rep"
	echo "$t3 - $t2" | bc >>"$tmp/seek"
done
rec=$(median <"$tmp/rec"); rep=$(median <"$tmp/rep"); seek=$(median <"$tmp/seek")
printf 'scenario %s, %d runs each (medians)\n' "$SCENARIO" "$REPS"
printf '  record          %6.2f s\n' "$rec"
printf '  full replay     %6.2f s   replay/record %.2f\n' "$rep" "$(echo "$rep / $rec" | bc -l)"
printf '  replay --to end %6.2f s   seek/record   %.2f\n' "$seek" "$(echo "$seek / $rec" | bc -l)"

dir=$KREWIND_TRACES/$SCENARIO-$REPS
total=$("$KREWIND" sql "$dir" "SELECT value FROM meta WHERE key = 'icount_total'" | tail -1 | tr -d ' ')
read -r mid micount < <("$KREWIND" sql "$dir" --json \
	"SELECT id, icount FROM events WHERE kind = 'switch' ORDER BY id LIMIT 1 OFFSET (SELECT count(*) / 2 FROM events WHERE kind = 'switch')" |
	python3 -c 'import json,sys; r=json.load(sys.stdin)["rows"][0]; print(r[0], r[1])')
prefix=$(echo "$rec * $micount / $total" | bc -l)
t0=$(now)
"$KREWIND" replay "$dir" --to "$mid" -q >/dev/null 2>&1 || { echo "replay_speed: replay --to $mid failed" >&2; exit 1; }
t1=$(now)
cat >"$tmp/rs.gdb" <<'GDB'
python import time; t = time.time()
reverse-stepi
python print("KRB rsi=%.3f" % (time.time() - t)); t = time.time()
break KiSwapContext
reverse-continue
python print("KRB rc=%.3f" % (time.time() - t))
GDB
printf 'kr-icount\n' >"$tmp/attach.gdb"
"$KREWIND" gdb "$dir" --at "$mid" --batch "$tmp/attach.gdb" -q >/dev/null 2>&1 || { echo "replay_speed: gdb --at $mid failed" >&2; exit 1; }
t2=$(now)
"$KREWIND" gdb "$dir" --at "$mid" --batch "$tmp/rs.gdb" -q >"$tmp/rs.out" 2>&1 || { echo "replay_speed: reverse commands failed" >&2; exit 1; }
rsi=$(sed -n 's/^KRB rsi=//p' "$tmp/rs.out"); rc=$(sed -n 's/^KRB rc=//p' "$tmp/rs.out")
printf '  replay --to %-4s %6.2f s   vs its prefix recorded (%.2f s): %.2f\n' "$mid" "$(echo "$t1 - $t0" | bc)" "$prefix" \
	"$(echo "($t1 - $t0) / $prefix" | bc -l)"
printf '  gdb --at %-7s %6.2f s   vs its prefix recorded: %.2f\n' "$mid" "$(echo "$t2 - $t1" | bc)" \
	"$(echo "($t2 - $t1) / $prefix" | bc -l)"
printf '  reverse-stepi   %6.2f s   reverse-continue to the previous switch %.2f s (in gdb at %s)\n' "$rsi" "$rc" "$mid"
n=$("$KREWIND" sql "$dir" "SELECT count(*) FROM events WHERE kind = 'switch'" | tail -1 | tr -d ' ')
t0=$(now)
"$KREWIND" bisect "$dir" --until "gdb:KeTickCount >= ${BISECT_TICKS:-20}" --kind switch >"$tmp/bisect" 2>&1 ||
	{ echo "replay_speed: bisect failed: $(tail -n 2 "$tmp/bisect")" >&2; exit 1; }
t1=$(now)
replays=$(sed -n 's/^replays: \([0-9]*\).*/\1/p' "$tmp/bisect")
printf '  bisect          %6.2f s   %s replays for %s candidate switches (log2: %.1f), bisect/record %.2f\n' \
	"$(echo "$t1 - $t0" | bc)" "$replays" "$n" "$(echo "l($n)/l(2)" | bc -l)" "$(echo "($t1 - $t0) / $rec" | bc -l)"
