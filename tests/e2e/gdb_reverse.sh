#!/usr/bin/env bash
# krewind gdb behaves like rr replay, on the real kernel under real QEMU, driven
# both with --batch and interactively (a pseudo-terminal, as a person types):
# reverse-continue stops at the last breakpoint / watchpoint hit before now (and
# at the start without one), reverse-step/next/finish land in the right frame,
# continue stops at the end of the recording and the session stays usable,
# run goes back to the start, kr-goto finding:N and past-the-end, kr-events
# with krewind events' descriptions; no QEMU or gdb is left behind.
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
if [ ! -x "$KREWIND" ] || [ ! -e build/kernel/kernel.elf ] || [ ! -e build/tracer/libkrewind.so ]; then
	skip "gdb reverse" "krewind, the kernel or the plugin is not built"
	done_testing
fi
export KREWIND_TRACES=$TMP/traces

same() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi; }
sql1() { "$KREWIND" sql "$1" "$2" | tail -1 | tr -d ' '; }
kr() { sed -n "s/^KR $1=//p" "$2" | head -1; }
# QEMU or gdb processes started for this test (cwd or environment in $TMP)
leftovers() {
	local p
	for p in $(pgrep -x qemu-system-x86) $(pgrep -x gdb); do
		if readlink "/proc/$p/cwd" 2>/dev/null | grep -q "^$TMP" ||
			tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -q "^KREWIND_REC=$TMP"; then
			echo "$p"
		fi
	done
}

"$KREWIND" record --scenario eoi-before-switch -q >/dev/null 2>&1
rec=$KREWIND_TRACES/eoi-before-switch-1
check "eoi-before-switch recorded" test -s "$rec/replay.bin"
eoi() { sql1 "$rec" "SELECT icount FROM events WHERE kind = 'eoi' ORDER BY id LIMIT 1 OFFSET $1"; }
e36=$(sql1 "$rec" "SELECT id FROM events WHERE kind = 'eoi' ORDER BY id LIMIT 1 OFFSET 2")
ic1=$(eoi 0) ic2=$(eoi 1) ic3=$(eoi 2)
bp=$(nm build/kernel/kernel.elf | awk '$3 == "KiApicEndOfInterrupt" {print $1}' | sed 's/^0*/0x/')

# --- batch: breakpoints, watchpoints, no stop at all
cat >"$TMP/rc.gdb" <<'GDB'
break KiApicEndOfInterrupt
reverse-continue
python print("KR rc1=%d %s" % (int(gdb.parse_and_eval("$pc")), gdb.execute("monitor info replay", to_string=True).split()[-1]))
reverse-continue
python print("KR rc2=%d %s" % (int(gdb.parse_and_eval("$pc")), gdb.execute("monitor info replay", to_string=True).split()[-1]))
delete
printf "KR tick=%d\n", KeTickCount
watch KeTickCount
reverse-continue
printf "KR before=%d\n", KeTickCount
python print("KR wic=%s" % gdb.execute("monitor info replay", to_string=True).split()[-1])
stepi
printf "KR after=%d\n", KeTickCount
delete
reverse-continue
python print("KR start=%s" % gdb.execute("monitor info replay", to_string=True).split()[-1])
GDB
timeout -s KILL 300 "$KREWIND" gdb "$rec" --at "$e36" --batch "$TMP/rc.gdb" >"$TMP/rc.out" 2>&1
same "gdb --batch with reverse-continue exits 0" "$?" 0
read -r pc1 n1 <<<"$(kr rc1 "$TMP/rc.out")"
read -r pc2 n2 <<<"$(kr rc2 "$TMP/rc.out")"
same "reverse-continue stops at the breakpoint" "$(printf '0x%x' "${pc1:-0}")" "$bp"
check "at its last hit before now (the third EOI's call)" test "${n1:-0}" -gt "$ic2" -a "${n1:-0}" -lt "$ic3"
same "a second reverse-continue stops at the same breakpoint" "$(printf '0x%x' "${pc2:-0}")" "$bp"
check "one EOI earlier" test "${n2:-0}" -gt "$ic1" -a "${n2:-0}" -lt "$ic2"
tick=$(kr tick "$TMP/rc.out") before=$(kr before "$TMP/rc.out") after=$(kr after "$TMP/rc.out")
same "reverse-continue to a watchpoint stops before the write" "$before" "$((tick - 1))"
same "the next instruction is the write" "$after" "$tick"
check "the watchpoint stop is before now" test "$(kr wic "$TMP/rc.out")" -lt "${n2:-0}"
same "without breakpoints reverse-continue goes to the start" "$(kr start "$TMP/rc.out")" 0
check "and says so as gdb does" grep -q "No more reverse-execution history" "$TMP/rc.out"

# --- batch: reverse-step, reverse-next, reverse-finish, reverse-stepi, run, end
sw=$(sql1 "$rec" "SELECT id FROM events WHERE kind = 'switch' AND icount > $ic3 ORDER BY id LIMIT 1")
fin=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["findings"][0]["icount"])' \
	< <("$KREWIND" check "$rec" --json 2>/dev/null))
cat >"$TMP/step.gdb" <<GDB
python print("KR fn0=" + gdb.selected_frame().name())
reverse-step
python print("KR fn1=%s %d" % (gdb.selected_frame().name(), gdb.selected_frame().find_sal().line))
reverse-next
python print("KR fn2=%s %d" % (gdb.selected_frame().name(), gdb.selected_frame().find_sal().line))
reverse-finish
python print("KR fn3=" + gdb.selected_frame().name())
python print("KR ic3=%s" % gdb.execute("monitor info replay", to_string=True).split()[-1])
reverse-stepi
python print("KR ic4=%s" % gdb.execute("monitor info replay", to_string=True).split()[-1])
kr-goto finding:1
python print("KR fin=%s" % gdb.execute("monitor info replay", to_string=True).split()[-1])
kr-events 2
run
python print("KR run=%s" % gdb.execute("monitor info replay", to_string=True).split()[-1])
kr-goto $sw
continue
python print("KR end=%s" % gdb.execute("monitor info replay", to_string=True).split()[-1])
python
try:
    gdb.execute("reverse-stepi")
    print("KR back=%s" % gdb.execute("monitor info replay", to_string=True).split()[-1])
except gdb.error as e:
    print("KR backerr=%s" % e)
end
stepi
continue
python print("KR alive=1")
GDB
timeout -s KILL 300 "$KREWIND" gdb "$rec" --at "$sw" --batch "$TMP/step.gdb" >"$TMP/step.out" 2>&1
same "the session starts in KiSwapContext" "$(kr fn0 "$TMP/step.out")" KiSwapContext
same "reverse-step goes back out to the call's line" "$(kr fn1 "$TMP/step.out")" "KiSwitchTo 90"
f2=$(kr fn2 "$TMP/step.out")
check "reverse-next stays in the frame, on an earlier line ($f2)" test "${f2% *}" = KiSwitchTo -a "${f2#* }" -lt 90
same "reverse-finish goes to the caller" "$(kr fn3 "$TMP/step.out")" KiQuantumEndSwitchInIsr
same "reverse-stepi goes back one instruction" "$(kr ic4 "$TMP/step.out")" "$(($(kr ic3 "$TMP/step.out") - 1))"
same "kr-goto finding:1 goes to the first finding" "$(kr fin "$TMP/step.out")" "$fin"
desc=$("$KREWIND" events "$rec" --json | python3 -c "import json,sys; print([e for e in json.load(sys.stdin) if e['icount'] >= $fin][0]['description'])")
check "kr-events shows krewind events' description ($desc) marked =>" grep -qF -- "$desc" <(grep '^=>' "$TMP/step.out")
same "run goes back to the start" "$(kr run "$TMP/step.out")" 0
end=$(kr end "$TMP/step.out")
check "continue stops at the end of the recording ($end)" grep -q "end of the recording at icount $end" "$TMP/step.out"
# A guest-ended run's replayed shutdown stops QEMU at the next TB boundary:
# its end moves by a few instructions between replays, and krewind says so.
if grep -q "^KR backerr=.*stops a few instructions late" "$TMP/step.out"; then
	ok "reverse-stepi at the end: the end moved, and krewind says so"
else
	same "reverse-stepi works at the end" "$(kr back "$TMP/step.out")" "$((end - 1))"
fi

check "continue at the end is refused with a message" grep -q "at the end of the recording" "$TMP/step.out"

# --- reverse-next stops at the user's breakpoint on the way back, as gdb does
cat >"$TMP/ubp.gdb" <<'GDB'
python ic = lambda: int(gdb.execute("monitor info replay", to_string=True).split()[-1])
reverse-step
python n1 = ic()
reverse-next
python n2 = ic()
stepi
python pcm = int(gdb.parse_and_eval("$pc")) ; nm = ic()
python gdb.execute("kr-goto icount:%d" % n1)
python gdb.execute("break *0x%x" % pcm)
reverse-next
python print("KR ubp=%d %d %d" % (ic(), nm, n1))
GDB
timeout -s KILL 300 "$KREWIND" gdb "$rec" --at "$sw" --batch "$TMP/ubp.gdb" >"$TMP/ubp.out" 2>&1
read -r got want n1 <<<"$(kr ubp "$TMP/ubp.out")"
if [ -n "${want:-}" ] && [ "$want" -lt "$n1" ]; then
	same "reverse-next stops at a breakpoint between the lines" "$got" "$want"
	check "and reports it" grep -q "^Breakpoint 1, " "$TMP/ubp.out"
else
	not_ok "reverse-next with a breakpoint between the lines ran" "$(tail -3 "$TMP/ubp.out")"
fi

# --- interactive, through a pseudo-terminal
cat >"$TMP/tty_driver.py" <<'PY'
# Drives `krewind gdb` as a person at a terminal: waits for each (gdb) prompt
# (60 s at most), types a line, keeps everything it saw.
import os, pty, re, select, sys, time
cmds = sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1].split()[0], sys.argv[1].split())
out = b""
def until(pat, t=60):
    global out
    end = time.time() + t
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                b = os.read(fd, 4096)
            except OSError:
                return False
            if not b:
                return False
            out += b
            if out.endswith(pat):
                return True
    return False
for c in cmds:
    if not until(b"(gdb) "):
        break
    os.write(fd, c.encode() + b"\n")
until(b"\n(never)", 20)
_, st = os.waitpid(pid, 0)
sys.stdout.write(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace")).replace("\r", ""))
print("\nPTY exit=%d" % (os.waitstatus_to_exitcode(st)))
PY
timeout -s KILL 300 python3 "$TMP/tty_driver.py" "$KREWIND gdb $rec --at $e36" \
	"break KiApicEndOfInterrupt" "reverse-continue" "kr-icount" "kr-goto icount:999999999" "kr-icount" \
	"delete" "continue" "continue" "kr-icount" "run" "kr-icount" "quit" >"$TMP/pty.out" 2>&1
check "interactive: reverse-continue reports the breakpoint" grep -q "^Breakpoint 1, " "$TMP/pty.out"
check "interactive: kr-goto past the end is one clear error" grep -q "krewind: the recording ends at icount" "$TMP/pty.out"
check "interactive: the session survives it" test "$(grep -c '^icount [0-9]* (0x' "$TMP/pty.out")" -ge 3
check "interactive: continue stops at the end with a message" grep -q "end of the recording at icount" "$TMP/pty.out"
check "interactive: a second continue is refused" grep -q "nothing to run" "$TMP/pty.out"
check "interactive: run goes back to icount 0" grep -q "^icount 0 (0x0)" "$TMP/pty.out"
check "interactive: quit ends krewind gdb with 0" grep -q "^PTY exit=0" "$TMP/pty.out"

# --- gdb --json: only with --batch; the document carries gdb's output
"$KREWIND" gdb "$rec" --at "$e36" --json >/dev/null 2>"$TMP/j.err"
same "gdb --json without --batch exits 2" "$?" 2
printf 'kr-icount\n' >"$TMP/j.gdb"
"$KREWIND" gdb "$rec" --at "$e36" --batch "$TMP/j.gdb" --json >"$TMP/j.json" 2>/dev/null
same "gdb --batch --json exits 0" "$?" 0
same "its output has kr-icount's line" "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["gdb_status"], "icount %d (" % d["icount"] in d["output"])' "$TMP/j.json")" "0 True"
same "no QEMU or gdb is left" "$(leftovers | tr '\n' ' ')" ""
done_testing
