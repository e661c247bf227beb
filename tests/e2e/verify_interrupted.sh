#!/usr/bin/env bash
# verify and replay on the edges: a recording interrupted by SIGINT verifies up
# to the real end of its replay log (the manifest's icount may be stale, the
# difference is reported); replay --to past the end is exit 2 before any QEMU;
# a replay that hangs is a bounded, clear error; progress shows on a terminal
# only; SIGINT / SIGTERM to replay and verify exit 130 and leave no QEMU behind.
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
if [ ! -x "$KREWIND" ] || [ ! -e build/kernel/kernel.elf ] || [ ! -e build/tracer/libkrewind.so ]; then
	skip "verify interrupted" "krewind, the kernel or the plugin is not built"
	done_testing
fi
export KREWIND_TRACES=$TMP/traces

same() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi; }
json_get() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"; }
qemus() { # QEMU processes running in a recording directory of this test
	local p
	for p in $(pgrep -x qemu-system-x86); do
		readlink "/proc/$p/cwd" 2>/dev/null | grep -q "^$TMP" && echo "$p"
	done
}
wait_qemu() { local i; for i in $(seq 100); do [ -n "$(qemus)" ] && return 0; sleep 0.1; done; return 1; }

# --- an interrupted recording (missing-eoi idles in hlt: it replays quickly)
"$KREWIND" record --scenario missing-eoi --hang-after 60 --timeout 120 -q -o "$TMP/traces/int" >/dev/null 2>&1 &
pid=$!
wait_qemu && sleep 2
kill -INT "$pid"
wait "$pid"
rec=$TMP/traces/int
same "the interrupted recording says interrupted" "$(json_get outcome <"$rec/manifest.json")" interrupted
"$KREWIND" verify "$rec" --json >"$TMP/v.json" 2>"$TMP/v.err"
same "verify of the interrupted recording exits 0" "$?" 0
sed 's/^/#   verify: /' "$TMP/v.err"
same "it is deterministic" "$(json_get deterministic <"$TMP/v.json")" True
check "the end is the replay log's ($(json_get end.detail <"$TMP/v.json"))" \
	grep -qE 'final icount [0-9]+ exactly|replay log ends at icount' "$TMP/v.json"
check "the end's icount drift is reported" grep -q '"icount_drift"' "$TMP/v.json"
same "the events agree" "$(json_get events.ok <"$TMP/v.json")" True

# --- interrupted as soon as QEMU runs the plugin, before QMP may have answered
# once (a loaded host): the manifest takes the plugin's count, not 0
early=$TMP/traces/early
"$KREWIND" record --scenario missing-eoi --hang-after 60 --timeout 120 -q -o "$early" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 300); do [ -e "$early/trace.db" ] && break; sleep 0.01; done
sleep 0.05
kill -INT "$pid"
wait "$pid"
n=$(json_get icount_total <"$early/manifest.json")
check "interrupted at once: the manifest has an icount ($n)" [ "$n" -gt 0 ]
"$KREWIND" verify "$early" -q >"$TMP/early.out" 2>&1
same "... and it verifies" "$?" 0 || sed 's/^/#   /' "$TMP/early.out"

# --- replay --to past the end of a hang (an exact end): exit 2 at once, no QEMU
"$KREWIND" record --scenario missing-eoi --hang-after 1 -q -o "$TMP/traces/hang" >/dev/null 2>&1
total=$(json_get icount_total <"$TMP/traces/hang/manifest.json")
"$KREWIND" replay "$TMP/traces/hang" --to "icount:$((total + 1))" >/dev/null 2>"$TMP/past.err"
same "replay --to icount past the end exits 2" "$?" 2
check "with one error line naming the end" grep -q "^krewind: error: .*ends at icount $total" "$TMP/past.err"

# --- a replay that hangs is one clear error, bounded: a NIC without QEMU's
# filter-replay stops the replay in the firmware (KREWIND_STALL: 3 s, not 60)
"$KREWIND" record --scenario clean --no-plugin -q -o "$TMP/traces/nic" -- -nic user,model=e1000 >/dev/null 2>&1
KREWIND_STALL=3 timeout -s KILL 120 "$KREWIND" verify "$TMP/traces/nic" -q >/dev/null 2>"$TMP/stuck.err"
same "verify of a replay that hangs exits 1" "$?" 1
check "with one line saying the replay is stuck" grep -q "^krewind: error: the replay is stuck: icount [0-9]* did not move for 3 s" "$TMP/stuck.err"
same "no QEMU is left" "$(qemus | tr '\n' ' ')" ""

# --- progress: a line on a terminal, none with -q (nor in a pipe: all the above)
on_tty() { # CMD...: runs it on a pseudo-terminal, prints what it wrote
	python3 - "$@" <<'PY'
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        b = os.read(fd, 4096)
    except OSError:
        break
    if not b:
        break
    out += b
os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
PY
}
on_tty "$KREWIND" verify "$TMP/traces/hang" --no-plugin >"$TMP/tty.out" 2>&1
check "verify draws a progress line on a terminal" grep -q "verifying: [0-9]*/[0-9]* instructions" "$TMP/tty.out"
on_tty "$KREWIND" verify "$TMP/traces/hang" --no-plugin -q >"$TMP/tty-q.out" 2>&1
check "and none with -q" test "$(grep -c 'verifying:' "$TMP/tty-q.out")" -eq 0
check "a terminal still gets the result" grep -q "deterministic" "$TMP/tty-q.out"

# --- signals: 130, QEMU stopped
last=$("$KREWIND" sql "$rec" "SELECT max(id) FROM events" | tail -1 | tr -d ' ')
for sig in INT TERM; do
	"$KREWIND" replay "$rec" --to "$last" -q >/dev/null 2>"$TMP/sig.err" &
	pid=$!
	if wait_qemu; then
		kill -"$sig" "$pid"
		wait "$pid"
		same "replay interrupted by SIG$sig exits 130" "$?" 130
	else
		wait "$pid"
		skip "replay interrupted by SIG$sig exits 130" "the replay ended before QEMU was seen"
	fi
	sleep 0.2
	same "no QEMU survives SIG$sig to replay" "$(qemus | tr '\n' ' ')" ""
done
"$KREWIND" verify "$rec" -q >/dev/null 2>&1 &
pid=$!
if wait_qemu; then
	kill -INT "$pid"
	wait "$pid"
	same "verify interrupted by SIGINT exits 130" "$?" 130
fi
sleep 0.2
same "no QEMU survives SIGINT to verify" "$(qemus | tr '\n' ' ')" ""
done_testing
