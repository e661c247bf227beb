#!/usr/bin/env bash
# Strict input (issue #10): record refuses an unknown scenario, a kernel QEMU
# cannot boot, a missing kernel and an unreadable probe with one line and exit 2
# before QEMU starts (a QEMU shim says whether it ran) and leaves no recording;
# events refuses an inverted range at once; SIGINT ends record with 130 and keeps
# the recording marked "interrupted", and ends a long query with 130.
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
if [ ! -x "$KREWIND" ] || [ ! -e build/kernel/kernel.elf ] || [ ! -e build/tracer/libkrewind.so ]; then
	skip "strict input" "krewind, the kernel or the plugin is not built"
	done_testing
fi
export KREWIND_TRACES=$TMP/traces
# Background jobs get SIGINT like a terminal's Ctrl-C only with job control.
set -m

same() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi; }
json_field() { jq -r ".$2" "$1"; }

# A QEMU that notes it was started, then is the real one.
real_qemu=$(command -v qemu-system-x86_64)
cat >"$TMP/qemu" <<SH
#!/bin/sh
touch "$TMP/qemu-ran"
exec "$real_qemu" "\$@"
SH
chmod +x "$TMP/qemu"
export KREWIND_QEMU=$TMP/qemu

# refused NAME PATTERN CMD...: exit 2, one stderr line matching PATTERN, QEMU never
# started, no recording left.
refused() {
	local name=$1 pattern=$2 rc
	shift 2
	rm -f "$TMP/qemu-ran"
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [ "$rc" -ne 2 ]; then not_ok "$name" "exit $rc, want 2: $(cat "$TMP/err")"; return; fi
	if [ "$(wc -l <"$TMP/err")" -ne 1 ] || ! grep -qE -- "^krewind: error: .*$pattern" "$TMP/err"; then
		not_ok "$name" "stderr: $(cat "$TMP/err")"
		return
	fi
	if [ -e "$TMP/qemu-ran" ]; then not_ok "$name" "QEMU was started"; return; fi
	if [ -n "$(ls -A "$KREWIND_TRACES" 2>/dev/null)" ]; then not_ok "$name" "left $(ls "$KREWIND_TRACES")"; return; fi
	ok "$name"
}

printf 'not a kernel\n' >"$TMP/notelf"
mkdir -p "$TMP/probe-dir"
refused "record --scenario nosuch" "unknown scenario 'nosuch' \(known: clean, " \
	"$KREWIND" record --scenario nosuch
refused "record --kernel of a text file" "not a kernel QEMU can boot" "$KREWIND" record --kernel "$TMP/notelf"
refused "record --kernel of a text file with --no-plugin" "not a kernel QEMU can boot" \
	"$KREWIND" record --kernel "$TMP/notelf" --no-plugin --no-rr
refused "record --kernel of a missing file" "cannot read kernel" "$KREWIND" record --kernel "$TMP/nope.elf"
refused "record --probe of a missing file" "cannot read probe file" \
	"$KREWIND" record --scenario clean --probe "$TMP/nope.probe"
refused "record --probe of a directory" "probe-dir" "$KREWIND" record --scenario clean --probe "$TMP/probe-dir"
same "record --list-scenarios lists the kernel's table" \
	"$("$KREWIND" record --list-scenarios | head -2 | tr '\n' ' ')" "clean eoi-before-switch "

# A recording to query.
rm -f "$TMP/qemu-ran"
"$KREWIND" record --scenario eoi-before-switch -q >/dev/null 2>"$TMP/rec.err"
same "a good scenario records (exit 0)" "$?" 0
check "and QEMU ran for it" test -e "$TMP/qemu-ran"
rec=$KREWIND_TRACES/eoi-before-switch-1

refused_q() { # like refused, for commands that make no recording
	local name=$1 pattern=$2 rc
	shift 2
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [ "$rc" -ne 2 ]; then not_ok "$name" "exit $rc, want 2: $(cat "$TMP/err")"; return; fi
	if [ "$(wc -l <"$TMP/err")" -ne 1 ] || ! grep -qE -- "^krewind: error: .*$pattern" "$TMP/err"; then
		not_ok "$name" "stderr: $(cat "$TMP/err")"
		return
	fi
	[ -s "$TMP/out" ] && { not_ok "$name" "printed: $(head -c 200 "$TMP/out")"; return; }
	ok "$name"
}
refused_q "events --from 30 --to 20" "--from 30 comes after --to 20" "$KREWIND" events "$rec" --from 30 --to 20
refused_q "events --from icount:9 --to icount:8" "comes after" \
	"$KREWIND" events "$rec" --from icount:9 --to icount:8
refused_q "events --from 30 --to icount:5 (an id after an icount)" "comes after --to icount:5" \
	"$KREWIND" events "$rec" --from 30 --to icount:5
refused_q "events --from icount:N --to an id before it" "comes after --to 3" \
	"$KREWIND" events "$rec" --from icount:999999999 --to 3
same "events --from 20 --to 30 prints 11 events" "$("$KREWIND" events "$rec" --from 20 --to 30 --json |
	jq length)" 11
same "events --from 5 --to 5 is one event" "$("$KREWIND" events "$rec" --from 5 --to 5 --json |
	jq length)" 1

# SIGINT to record: QEMU stopped, exit 130, the recording kept and marked.
# The QEMU child (the shim exec'd into it); bounded generously: a loaded
# machine can take many seconds to get there.
qemu_of() { ps -o pid=,args= --ppid "$1" 2>/dev/null | awk '/qemu-system/ {print $1; exit}'; }
rm -f "$TMP/qemu-ran"
"$KREWIND" record --scenario missing-eoi --hang-after 60 --timeout 120 -q >"$TMP/int.out" 2>"$TMP/int.err" &
pid=$!
for _ in $(seq 600); do [ -e "$TMP/qemu-ran" ] && [ -n "$(qemu_of "$pid")" ] && break; sleep 0.1; done
qemu=$(qemu_of "$pid")
if [ -n "$qemu" ]; then
	sleep 0.5
	kill -INT "$pid"
	timeout 30 tail --pid="$pid" -f /dev/null
	wait "$pid"
	same "record interrupted by SIGINT exits 130" "$?" 130
	if kill -0 "$qemu" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$qemu/status" 2>/dev/null; then
		not_ok "no QEMU survives SIGINT" "pid $qemu alive"
		kill -KILL "$qemu"
	else
		ok "no QEMU survives SIGINT"
	fi
	irec=$KREWIND_TRACES/missing-eoi-1
	same "the manifest says interrupted" "$(json_field "$irec/manifest.json" outcome)" interrupted
	same "the trace says interrupted" \
		"$(sqlite3 "$irec/trace.db" "SELECT value FROM meta WHERE key = 'outcome'")" interrupted
	check "the summary was printed" grep -q 'interrupted' "$TMP/int.out"
	same "ls lists it as interrupted" "$("$KREWIND" ls --json |
		jq -r '.recordings[] | select(.name == "missing-eoi-1") | .outcome')" interrupted
else
	not_ok "krewind record started QEMU" "no child of $pid"
	kill -KILL "$pid" 2>/dev/null
fi

# SIGINT to a long read-only command (a query that never ends): status 130.
# A script's background job starts with SIGINT ignored (no job control), and
# so does everything under a shell that was itself started with it ignored;
# a terminal's Ctrl-C reaches a command that has it at its default.
(exec env --default-signal=INT "$KREWIND" sql "$rec" "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c") \
	>/dev/null 2>&1 &
pid=$!
sleep 0.5
kill -INT "$pid"
if timeout 10 tail --pid="$pid" -f /dev/null; then
	wait "$pid"
	same "sql interrupted by SIGINT: status 130" "$?" 130
else
	not_ok "sql interrupted by SIGINT: status 130" "still running 10 s after SIGINT"
	kill -KILL "$pid"
fi

done_testing
