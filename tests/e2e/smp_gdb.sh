#!/usr/bin/env bash
# krewind gdb on a recording with several vCPUs (issue #16): QEMU re-executes
# it, the plugin holds the machine at the event and is the gdb stub
# (tracer/gdbstub.c). Real gdb in batch mode on our kernel's smp-lock-order
# deadlock recorded with --smp 2:
#   - at Cpu1's try of ScenarioLockA: the held thread is vCPU 1's, pc and
#     registers are the ones `krewind replay --to` reports, the other vCPU is
#     a thread too; ScenarioLockA read by symbol is held (non-zero);
#   - stepi moves exactly one instruction (count + 1, pc + its length);
#   - reverse-stepi comes back to the event (a re-execution);
#   - a breakpoint continue stops at the next hit the trace has (Phase1's try
#     of B, on vCPU 0), reverse-continue at the last one before it;
#   - kr-goto back to Phase1's try of A: ScenarioLockA is free there;
#   - reverse-finish goes back to the call on the same vCPU, from inside the
#     function and from its entry (--json reports the start);
#   - stepping the other vCPU's thread holds the machine on it, and
#     reverse-stepi takes it to its previous instruction, across the other
#     vCPU's; writes are refused; Ctrl-C interrupts a continue into the
#     deadlock's spin; no QEMU, gdb or temporary file left behind.
# With the Linux subject (KREWIND_LINUX_CACHE or build/linux): one stop on vCPU 1 of the
# --smp 2 boot, at the event's pc, in its thread.
source "$(dirname "$0")/lib.sh"
K=build/krewind
for f in "$K" build/tracer/libkrewind.so build/kernel/kernel.elf; do
	[ -e "$f" ] || { skip "gdb on two CPUs" "$f not built"; done_testing; }
done
command -v gdb >/dev/null || { skip "gdb on two CPUs" "no gdb"; done_testing; }
export TMPDIR=$TMP # krewind's own temporary directories land here: checked below

same() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi; }
q() { sqlite3 "$1/trace.db" "$2"; }
kr() { sed -n "s/^KR $1=//p" "$2" | head -1; }
leftovers() {
	local p
	for p in $(pgrep -x qemu-system-x86) $(pgrep -x gdb); do
		if tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -q "^KREWIND_REC=$TMP" ||
			tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q "$TMP"; then
			echo "$p"
		fi
	done
}
# KR lines from gdb: python helpers every script starts with
cat >"$TMP/kr.gdb" <<'EOF'
python
import re
def kr(name, val):
    gdb.write("KR %s=%s\n" % (name, val))
def ic():
    return int(re.search(r"instruction count = (\d+)", gdb.execute("monitor info replay", to_string=True)).group(1))
def here(tag):
    kr(tag + "_icount", ic())
    kr(tag + "_pc", "%#x" % (int(gdb.parse_and_eval("$pc")) & (2**64 - 1)))
    kr(tag + "_thread", gdb.selected_thread().num)
def lock_a():
    return "%#x" % int(gdb.parse_and_eval("*(unsigned long *)&ScenarioLockA"))
end
EOF

rec=$TMP/ab
timeout -s INT 120 "$K" record -q --smp 2 --scenario smp-lock-order --hang-after 3 -o "$rec" </dev/null \
	>"$TMP/rec.out" 2>&1
check "smp-lock-order --smp 2 recorded (reexec, hang)" \
	[ "$(jq -r .mode "$rec/manifest.json")" = reexec ] && [ "$(jq -r .outcome "$rec/manifest.json")" = hang ]
ev=$(q "$rec" "SELECT id FROM events WHERE vcpu = 1 AND kind = 'lock_try' ORDER BY id DESC LIMIT 1")
ev_ic=$(q "$rec" "SELECT icount FROM events WHERE id = $ev")
ev_pc=$(q "$rec" "SELECT printf('%#x', pc) FROM events WHERE id = $ev")
# the next event at the same pc (the breakpoint's next hit) and the last before it
nx=$(q "$rec" "SELECT id FROM events WHERE pc = $ev_pc AND id > $ev ORDER BY id LIMIT 1")
nx_ic=$(q "$rec" "SELECT icount FROM events WHERE id = $nx")
nx_vcpu=$(q "$rec" "SELECT vcpu FROM events WHERE id = $nx")
free_ev=$(q "$rec" "SELECT id FROM events WHERE kind = 'lock_try' AND lock_name = 'ScenarioLockA' AND vcpu = 0 ORDER BY id LIMIT 1")
free_ic=$(q "$rec" "SELECT icount FROM events WHERE id = $free_ev")
timeout 120 "$K" replay -q "$rec" --to "$ev" --json >"$TMP/replay.json" 2>/dev/null
reg() { jq -r ".registers.$1" "$TMP/replay.json"; }

cat "$TMP/kr.gdb" - >"$TMP/main.gdb" <<'EOF'
python here("at")
python kr("rsp", "%#x" % int(gdb.parse_and_eval("$rsp")))
python kr("rax", "%#x" % int(gdb.parse_and_eval("$rax")))
python kr("cr3", "%#x" % int(gdb.parse_and_eval("$cr3")))
python kr("threads", len(gdb.selected_inferior().threads()))
python kr("lock_at", lock_a())
python kr("next_pc", "%#x" % gdb.selected_frame().architecture().disassemble(int(gdb.parse_and_eval("$pc")), count=2)[1]["addr"])
stepi
python here("step")
reverse-stepi
python here("back")
python gdb.execute("break *%#x" % int(gdb.parse_and_eval("$pc")))
continue
python here("bp")
reverse-continue
python here("rc")
delete
kr-goto FREE_EV
python here("free")
python kr("lock_free", lock_a())
EOF
sed -i "s/FREE_EV/$free_ev/" "$TMP/main.gdb"
t0=$(date +%s.%N)
timeout 600 "$K" gdb -q "$rec" --at "$ev" --batch "$TMP/main.gdb" >"$TMP/main.out" 2>&1
rc=$?
t1=$(date +%s.%N)
echo "# krewind gdb --at $ev with 4 re-executions back (reverse-stepi, reverse-continue: 2, kr-goto): $(echo "$t1 - $t0" | bc) s"
[ $rc -eq 0 ] || sed 's/^/# /' "$TMP/main.out"
check "krewind gdb --at $ev (Cpu1's try of A) on the SMP recording: exit 0" [ $rc -eq 0 ]
same "held before the event's instruction: icount" "$(kr at_icount "$TMP/main.out")" "$ev_ic"
same "... pc (the trace's)" "$(kr at_pc "$TMP/main.out")" "$ev_pc"
same "... gdb's thread is vCPU 1's (thread 2)" "$(kr at_thread "$TMP/main.out")" 2
same "... two threads, one per vCPU" "$(kr threads "$TMP/main.out")" 2
same "... rsp as krewind replay --to reports it" "$(kr rsp "$TMP/main.out")" "$(reg rsp)"
same "... rax as krewind replay --to reports it" "$(kr rax "$TMP/main.out")" "$(reg rax)"
same "... cr3 as krewind replay --to reports it" "$(kr cr3 "$TMP/main.out")" "$(reg cr3)"
check "... ScenarioLockA read by symbol: held by Phase1 ($(kr lock_at "$TMP/main.out"))" \
	[ -n "$(kr lock_at "$TMP/main.out")" ] && [ "$(kr lock_at "$TMP/main.out")" != 0x0 ]
same "stepi: one instruction (count + 1)" "$(kr step_icount "$TMP/main.out")" "$((ev_ic + 1))"
same "stepi: pc after the instruction" "$(kr step_pc "$TMP/main.out")" "$(kr next_pc "$TMP/main.out")"
same "stepi: on the same vCPU" "$(kr step_thread "$TMP/main.out")" 2
same "reverse-stepi: back at the event (re-executed)" \
	"$(kr back_icount "$TMP/main.out") $(kr back_pc "$TMP/main.out")" "$ev_ic $ev_pc"
same "breakpoint continue: at the trace's next hit (event $nx)" "$(kr bp_icount "$TMP/main.out")" "$nx_ic"
same "... on its vCPU" "$(kr bp_thread "$TMP/main.out")" "$((nx_vcpu + 1))"
same "reverse-continue: the last hit before it (event $ev)" "$(kr rc_icount "$TMP/main.out")" "$ev_ic"
same "kr-goto $free_ev (Phase1's try of A): its count" "$(kr free_icount "$TMP/main.out")" "$free_ic"
same "... ScenarioLockA is free there" "$(kr lock_free "$TMP/main.out")" 0x0

# --- the other vCPU, and refused writes
cat "$TMP/kr.gdb" - >"$TMP/other.gdb" <<'EOF'
thread 1
python kr("other_pc", "%#x" % (int(gdb.parse_and_eval("$pc")) & (2**64 - 1)))
python kr("other_rax", str(gdb.parse_and_eval("$rax")))
stepi
python here("ostep")
python kr("ostep_prev", gdb.execute("monitor prev", to_string=True).split()[-1])
reverse-stepi
python here("oback")
python
try:
    gdb.execute("set $rax = 1", to_string=True)
    kr("set_reg", "allowed")
except gdb.error:
    kr("set_reg", "refused")
try:
    gdb.execute("set *(unsigned long *)&ScenarioLockA = 0", to_string=True)
    kr("set_mem", "allowed")
except gdb.error:
    kr("set_mem", "refused")
end
EOF
timeout 600 "$K" gdb -q "$rec" --at "$ev" --batch "$TMP/other.gdb" >"$TMP/other.out" 2>&1
rc=$?
[ $rc -eq 0 ] || sed 's/^/# /' "$TMP/other.out"
same "the other vCPU's thread: registers unavailable" "$(kr other_rax "$TMP/other.out")" "<unavailable>"
oic=$(kr ostep_icount "$TMP/other.out")
check "stepi on thread 1 holds vCPU 0 at its next instruction (count $oic, after $ev_ic)" \
	[ "$(kr ostep_thread "$TMP/other.out")" = 1 ] && [ -n "$oic" ] && [ "$oic" -gt "$ev_ic" ]
same "... reverse-stepi: vCPU 0's previous instruction (monitor prev), across vCPU 1's" \
	"$(kr oback_icount "$TMP/other.out") $(kr oback_thread "$TMP/other.out")" "$(kr ostep_prev "$TMP/other.out") 1"
check "... which is before the event, at the pc gdb showed for thread 1" \
	[ "$(kr oback_icount "$TMP/other.out")" -lt "$ev_ic" ] && [ "$(kr oback_pc "$TMP/other.out")" = "$(kr other_pc "$TMP/other.out")" ]
same "a register write is refused" "$(kr set_reg "$TMP/other.out")" refused
same "a memory write is refused" "$(kr set_mem "$TMP/other.out")" refused

# --- reverse-finish (a search from the start, then a re-execution), --json
cat "$TMP/kr.gdb" - >"$TMP/finish.gdb" <<'EOF'
stepi
reverse-finish
python here("fin")
python kr("fin_insn", gdb.execute("x/i $pc", to_string=True).split(":", 1)[1].split()[0])
EOF
timeout 600 "$K" gdb -q "$rec" --at "$ev" --batch "$TMP/finish.gdb" --json >"$TMP/finish.json" 2>"$TMP/finish.err"
jq -r .output "$TMP/finish.json" >"$TMP/finish.out" 2>/dev/null
fic=$(kr fin_icount "$TMP/finish.out")
check "stepi, reverse-finish: back to the call ($(kr fin_insn "$TMP/finish.out") at $fic), before the event, on vCPU 1" \
	[ "$(kr fin_insn "$TMP/finish.out")" = call ] && [ -n "$fic" ] && [ "$fic" -lt "$ev_ic" ] &&
	[ "$(kr fin_thread "$TMP/finish.out")" = 2 ]
cat "$TMP/kr.gdb" - >"$TMP/entry.gdb" <<'EOF'
python kr("entry_prev", gdb.execute("monitor prev", to_string=True).split()[-1])
reverse-finish
python here("entry")
EOF
timeout 600 "$K" gdb -q "$rec" --at "$ev" --batch "$TMP/entry.gdb" >"$TMP/entry.out" 2>&1
same "reverse-finish at the function's entry (the event): vCPU 1's instruction before, the call" \
	"$(kr entry_icount "$TMP/entry.out") $(kr entry_thread "$TMP/entry.out")" "$(kr entry_prev "$TMP/entry.out") 2"
same "--json: the event, its count and gdb's status" \
	"$(jq -r '"\(.event) \(.icount) \(.gdb_status)"' "$TMP/finish.json")" "$ev $ev_ic 0"

# --- Ctrl-C (SIGINT to gdb) during a continue into the deadlock's spin
cat "$TMP/kr.gdb" - >"$TMP/int.gdb" <<'EOF'
python
import os, signal, threading
threading.Timer(1.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
end
continue
python here("int")
python kr("int_fn", gdb.selected_frame().name())
EOF
timeout 300 "$K" gdb -q "$rec" --at "$ev" --batch "$TMP/int.gdb" >"$TMP/int.out" 2>&1
iic=$(kr int_icount "$TMP/int.out")
check "Ctrl-C stops a continue (at count $iic, a multiple of 2^20 after the event), the session goes on" \
	[ -n "$iic" ] && [ "$iic" -gt "$ev_ic" ] && [ $((iic % 1048576)) -eq 0 ] && grep -q "received signal SIGINT" "$TMP/int.out"
same "... in the deadlock's spin" "$(kr int_fn "$TMP/int.out")" KxAcquireSpinLock

sleep 1
same "no QEMU or gdb left behind" "$(leftovers)" ""
same "no temporary directory left behind" "$(ls -d "$TMP"/krewind-* 2>/dev/null)" ""

# --- the Linux --smp 2 boot
# (when the subject is there already: KREWIND_LINUX_CACHE or build/linux)
if { [ -n "${KREWIND_LINUX_CACHE:-}" ] || [ -d build/linux ]; } && source "$(dirname "$0")/../linux/lib.sh" &&
	linux_subject; then
	build/krewind probe linux "$LINUX_VMLINUX" -o "$TMP/linux.probe" 2>/dev/null
	linux_probe_for_parser "$TMP/linux.probe"
	lrec=$TMP/linux
	timeout -s INT 400 "$K" record -q --smp 2 --kernel "$LINUX_VMLINUZ" --symbols "$LINUX_VMLINUX" \
		--initrd "$LINUX_INITRD" --probe "$PROBE" --append "console=ttyS0 nokaslr panic=-1" --timeout 300 \
		-o "$lrec" </dev/null >"$TMP/linux.out" 2>&1
	lev=$(q "$lrec" "SELECT id FROM events WHERE vcpu = 1 AND kind = 'lock_acq' ORDER BY id LIMIT 1 OFFSET 5000")
	lpc=$(q "$lrec" "SELECT printf('%#x', pc) FROM events WHERE id = $lev")
	cat "$TMP/kr.gdb" - >"$TMP/linux.gdb" <<'EOF'
python here("at")
EOF
	t0=$(date +%s.%N)
	timeout 900 "$K" gdb -q "$lrec" --at "$lev" --batch "$TMP/linux.gdb" >"$TMP/linux.gdb.out" 2>&1
	rc=$?
	t1=$(date +%s.%N)
	echo "# Linux --smp 2: krewind gdb --at $lev (icount $(q "$lrec" "SELECT icount FROM events WHERE id = $lev")): $(echo "$t1 - $t0" | bc) s"
	[ $rc -eq 0 ] || sed 's/^/# /' "$TMP/linux.gdb.out" | tail -n 20
	same "Linux --smp 2: gdb --at $lev holds vCPU 1 (thread 2) at the event's pc" \
		"$(kr at_thread "$TMP/linux.gdb.out") $(kr at_pc "$TMP/linux.gdb.out")" "2 $lpc"
	sleep 1
	same "Linux: no QEMU or gdb left behind" "$(leftovers)" ""
else
	skip "Linux --smp 2: gdb --at on vCPU 1" "no Linux subject (KREWIND_LINUX_CACHE)"
fi
done_testing
