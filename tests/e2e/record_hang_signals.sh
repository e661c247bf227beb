#!/usr/bin/env bash
# krewind record detects a hang (missing-eoi: no events, no serial output) and
# stops QEMU cleanly so the recording replays to its last instruction; SIGINT
# or SIGTERM to krewind record / gdb leaves no QEMU or gdb behind; bisect finds
# the first event where a predicate holds.
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
if [ ! -x "$KREWIND" ] || [ ! -e build/kernel/kernel.elf ] || [ ! -e build/tracer/libkrewind.so ]; then
	skip "record hang/signals" "krewind, the kernel or the plugin is not built"
	done_testing
fi
export KREWIND_TRACES=$TMP/traces

same() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi; }
json_field() {
	python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v.get(sys.argv[2]))' "$1" "$2"
}
# children_of PID: the pids of PID's children (QEMU, gdb), one a line
children_of() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '; }
# wait_children PID N: until PID has N children (at most ~10 s)
wait_children() {
	local i
	for i in $(seq 100); do
		[ "$(children_of "$1" | wc -l)" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# --- hang detection
"$KREWIND" record --scenario missing-eoi --hang-after 2 --timeout 60 -q >"$TMP/hang.out" 2>&1
same "record of a hang exits 0" "$?" 0
rec=$KREWIND_TRACES/missing-eoi-1
same "missing-eoi outcome is hang" "$(json_field "$rec/manifest.json" outcome)" hang
same "the trace says hang too" "$("$KREWIND" sql "$rec" "SELECT value FROM meta WHERE key='outcome'" | tail -1 | tr -d ' ')" hang
total=$(json_field "$rec/manifest.json" icount_total)
check "a hang has an exact final icount" test "$total" -gt 0
"$KREWIND" verify "$rec" --no-plugin >"$TMP/verify.out" 2>&1
same "the hang replays to exactly its final icount" "$?" 0
check "verify says so" grep -q "reached the final icount $total exactly" "$TMP/verify.out"

# --- replay --to finding:1 stops at the event krewind check names first
"$KREWIND" check "$rec" --json >"$TMP/check.json" 2>/dev/null
fev=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["findings"][0]["event"])' "$TMP/check.json" 2>/dev/null)
"$KREWIND" replay "$rec" --to finding:1 --json >"$TMP/finding.json" 2>"$TMP/finding.err"
same "replay --to finding:1 exits 0" "$?" 0
same "it stops at the first finding's event" "$(json_field "$TMP/finding.json" event)" "${fev:-none}"

# --- bisect: sql from the trace, gdb by replays; both name the same event for CR8
"$KREWIND" bisect "$rec" --until "sql:kind = 'irql' AND b >= 2" --json >"$TMP/bs.json" 2>&1
same "bisect sql exits 0" "$?" 0
first=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["first_bad"]["event"])' "$TMP/bs.json")
check "bisect sql names a first bad event" test "$first" -gt 0
want=$("$KREWIND" sql "$rec" "SELECT min(id) FROM events WHERE kind = 'irql' AND b >= 2" | tail -1 | tr -d ' ')
same "it is the first IRQL >= 2 event" "$first" "$want"
"$KREWIND" bisect "$rec" --until 'gdb:$rip == 0x0' --kind irql >"$TMP/bg.out" 2>&1
same "a gdb predicate that never holds exits 1" "$?" 1
check "and says so" grep -q 'never turned true' "$TMP/bg.out"
check "after some replays" grep -qE '^replays: [1-9]' "$TMP/bg.out"

# --- SIGINT to krewind record: QEMU stopped, recording kept as interrupted
"$KREWIND" record --scenario missing-eoi --hang-after 60 --timeout 120 -q >"$TMP/int.out" 2>&1 &
pid=$!
if wait_children "$pid" 1; then
	qemu=$(children_of "$pid")
	sleep 0.5
	kill -INT "$pid"
	wait "$pid"
	same "record interrupted by SIGINT exits 130" "$?" 130
	if alive "$qemu"; then not_ok "no QEMU survives SIGINT" "pid $qemu alive"; else ok "no QEMU survives SIGINT"; fi
	same "the interrupted recording says interrupted" "$(json_field "$KREWIND_TRACES/missing-eoi-2/manifest.json" outcome)" interrupted
else
	not_ok "krewind record started QEMU" "no child of $pid"
	kill -KILL "$pid" 2>/dev/null
fi

# --- SIGTERM to krewind gdb --batch: gdb and QEMU stopped
printf 'shell sleep 60\n' >"$TMP/sleep.gdb"
"$KREWIND" gdb "$rec" --at 1 --batch "$TMP/sleep.gdb" >"$TMP/gdb.out" 2>&1 &
pid=$!
if wait_children "$pid" 2; then
	kids=$(children_of "$pid")
	kill -TERM "$pid"
	wait "$pid"
	same "gdb session interrupted by SIGTERM exits 130" "$?" 130
	left=""
	for k in $kids; do alive "$k" && left="$left $k"; done
	same "no QEMU or gdb survives SIGTERM" "$left" ""
else
	not_ok "krewind gdb started QEMU and gdb" "$(children_of "$pid" | wc -l) children of $pid"
	kill -KILL "$pid" 2>/dev/null
fi
done_testing
