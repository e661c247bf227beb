#!/usr/bin/env bash
# QEMU killed with SIGKILL in the middle of `krewind record` (real QEMU, the
# plugin's writer thread dies with it), while missing-eoi hangs. Asserted:
# - record still makes a recording, with outcome "error" naming status 137;
# - trace.db opens, passes integrity_check, and `krewind check` works on it
#   and says the run was cut and its outcome (error: it did not end by itself);
# - the trace has serial.log's lines (written by QEMU itself), none missing: the kill comes >= 600 ms after the last
#   line, so the 250 ms bound allows no loss (the bound at full event rate,
#   with exact counts, is tests/e2e/db_sigkill.sh on db/'s writer);
# - the trace's events are in icount order, with ids 1..N without holes.
# (db/ alone, with exact counts: tests/e2e/db_sigkill.sh.)
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
if [ ! -x "$KREWIND" ]; then
	not_ok "krewind built" "missing $KREWIND"
	done_testing
fi
export KREWIND_TRACES=$TMP/traces
rec=$TMP/traces/killed
now_ms() { echo $(($(date +%s%N) / 1000000)); }

"$KREWIND" record --scenario missing-eoi --hang-after 60 -o "$rec" -q >"$TMP/out" 2>"$TMP/err" &
kpid=$!
# missing-eoi hangs quietly (the clock never fires again) and krewind would
# end it after --hang-after: QEMU is killed first, once serial.log has not
# grown for 600 ms. Every event is then older than 250 ms: none may be lost.
qpid= killed_ms= last_n=-1 still_ms=
for _ in $(seq 3000); do
	[ -n "$qpid" ] || qpid=$(pgrep -P "$kpid" qemu-system 2>/dev/null | head -n 1)
	n=0
	[ -f "$rec/serial.log" ] && n=$(tr -cd '\n' <"$rec/serial.log" | wc -c)
	if [ "$n" != "$last_n" ]; then
		last_n=$n still_ms=$(now_ms)
	elif [ -n "$qpid" ] && [ "$n" -ge 5 ] && [ $(($(now_ms) - still_ms)) -ge 600 ]; then
		kill -9 "$qpid" 2>/dev/null && killed_ms=$(now_ms)
		break
	fi
	kill -0 "$kpid" 2>/dev/null || break
	sleep 0.02
done
wait "$kpid"
rc=$?
if [ -z "$killed_ms" ]; then
	not_ok "QEMU killed mid-recording" "the run ended before the kill (rc=$rc): $(cat "$TMP/err")"
	done_testing
fi
ok "QEMU killed mid-recording (after $last_n serial lines)"

check "record still reports the recording (exit 0)" test "$rc" -eq 0
check "manifest outcome is error" grep -q '"outcome": "error"' "$rec/manifest.json"
check "manifest names QEMU's status 137" grep -q '"outcome_detail": "QEMU exited with status 137"' "$rec/manifest.json"
check "trace.db passes integrity_check" test "$(sqlite3 -readonly "$rec/trace.db" 'PRAGMA integrity_check')" = ok
n=$(sqlite3 -readonly "$rec/trace.db" 'SELECT count(*) FROM event_rows')
check "trace has events ($n)" test "${n:-0}" -gt 0
check "event ids are 1..N" test "$(sqlite3 -readonly "$rec/trace.db" 'SELECT min(id) || " " || max(id) FROM event_rows')" = "1 $n"
check "icounts never go back" test "$(sqlite3 -readonly "$rec/trace.db" \
	'SELECT count(*) FROM event_rows a JOIN event_rows b ON b.id = a.id + 1 WHERE b.icount < a.icount')" = 0

# Serial lines: as many in the trace as in serial.log, the last one the same.
"$KREWIND" events "$rec" --kind marker --json >"$TMP/markers.json" 2>"$TMP/ev.err"
sed -n 's/^ *"description": "serial: \(.*\)",\{0,1\}$/\1/p' "$TMP/markers.json" >"$TMP/trace_lines"
k=$(grep -c '' "$TMP/trace_lines")
total=$(tr -cd '\n' <"$rec/serial.log" | wc -c)
echo "# serial lines: $total in serial.log, $k in the trace"
check "the trace has serial lines" test "$k" -gt 0
check "the trace's last serial line is serial.log's last line" test "$(tail -n 1 "$TMP/trace_lines")" = "$(tail -n 1 "$rec/serial.log")"
check "no serial line lost (all were older than 250 ms)" test "$k" -eq "$total"
"$KREWIND" check "$rec" >"$TMP/check.out" 2>"$TMP/check.err"
crc=$?
echo "# check: $(head -n 3 "$TMP/check.out" | tr '\n' ' ')"
check "check works on the killed trace (exit 0 or 1)" test "$crc" -le 1
check "check's stderr is empty" test ! -s "$TMP/check.err"
check "check says the run was cut" grep -q '^the trace was cut' "$TMP/check.out"
check "check reports the outcome error" grep -q 'outcome error' "$TMP/check.out"
check "check --json says cut: true" test "$("$KREWIND" check "$rec" --json 2>/dev/null | jq -r .cut)" = true
done_testing
