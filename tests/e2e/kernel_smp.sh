#!/usr/bin/env bash
# Our kernel on two CPUs (issue #16), recorded with `krewind record --smp 2`
# (the re-executable mode, replay/smp.c):
# - smp-clean: the AP started by INIT-SIPI-SIPI runs on its own KPCR
#   (thread Cpu1, only ever on vCPU 1), both CPUs contend for A and B in one
#   order, then CPU 0 sends it an IPI: pass, no finding, verify deterministic;
# - smp-lock-order: CPU 0 takes A then B while CPU 1 takes B then A: a real
#   deadlock (hang), which check names with both CPUs' spins, and the lock
#   order; verify re-runs the hang to its last instruction; replay --to CPU
#   1's spin holds vCPU 1 there;
# - the same scenario on one CPU: the orders never overlap, no hang (the
#   inversion is still found: lockdep's "possible").
source "$(dirname "$0")/lib.sh"
K=build/krewind
for f in "$K" build/tracer/libkrewind.so build/kernel/kernel.elf; do
	[ -e "$f" ] || { skip "kernel on two CPUs" "$f not built"; done_testing; }
done

rec() { # NAME ARGS...: records into $TMP/NAME
	local name=$1; shift
	timeout -s INT 120 "$K" record -q "$@" -o "$TMP/$name" </dev/null >"$TMP/$name.out" 2>&1
}
m() { jq -r "$2" "$TMP/$1/manifest.json"; }
q() { sqlite3 "$TMP/$1/trace.db" "$2"; }

# --- smp-clean
rec clean --smp 2 --scenario smp-clean
check "smp-clean --smp 2: pass, mode reexec" [ "$(m clean .outcome)" = pass ] && [ "$(m clean .mode)" = reexec ]
check "the AP was started (serial: cpu 1 started)" grep -q "cpu 1 started" "$TMP/clean/serial.log"
n1=$(q clean "SELECT count(*) FROM events WHERE vcpu = 1 AND thread_name = 'Cpu1' AND kind = 'lock_acq'")
bad=$(q clean "SELECT count(*) FROM events WHERE (thread_name = 'Cpu1') != (vcpu = 1)")
check "Cpu1's $n1 acquisitions all on vCPU 1, nothing else there ($bad misplaced)" [ "$n1" -eq 400 ] && [ "$bad" -eq 0 ]
spun=$(q clean "SELECT count(*) FROM events WHERE kind = 'lock_acq' AND b > 0")
check "the CPUs contended: acquisitions that spun ($spun)" [ "$spun" -gt 0 ]
ipi=$(q clean "SELECT count(*) FROM events WHERE vcpu = 1 AND kind = 'trap' AND a = 225")
ipi_eoi=$(q clean "SELECT count(*) FROM events WHERE vcpu = 1 AND kind IN ('eoi', 'iret')")
check "CPU 0's IPI (vector 0xe1) taken on vCPU 1: its trap, EOI and iret there" [ "$ipi" -eq 1 ] && [ "$ipi_eoi" -eq 2 ]
"$K" check "$TMP/clean" >"$TMP/clean.check" 2>&1
check "check smp-clean: no findings (exit 0)" [ $? -eq 0 ] && grep -q "no findings" "$TMP/clean.check"
"$K" verify -q "$TMP/clean" >"$TMP/clean.verify" 2>&1
check "verify smp-clean: deterministic" [ $? -eq 0 ] && grep -q "events ok" "$TMP/clean.verify"

# --- smp-lock-order on two CPUs: the real deadlock
rec ab --smp 2 --scenario smp-lock-order --hang-after 3
check "smp-lock-order --smp 2: hang" [ "$(m ab .outcome)" = hang ]
"$K" check "$TMP/ab" >"$TMP/ab.check" 2>&1
check "check: a deadlock of Phase1 and Cpu1 on ScenarioLockA/B" \
	grep -q "deadlock: Phase1 waits for ScenarioLockB held by Cpu1, Cpu1 waits for ScenarioLockA held by Phase1" "$TMP/ab.check"
check "check: both spins, on their CPUs" \
	bash -c 'grep -q "spin .* 1 Cpu1 .*spins on ScenarioLockA" "$1" && grep -q "spin .* 0 Phase1 .*spins on ScenarioLockB" "$1"' _ "$TMP/ab.check"
check "check: the lock-order cycle" grep -q "lock-order: possible circular locking dependency: ScenarioLockA -> ScenarioLockB" "$TMP/ab.check"
"$K" verify -q "$TMP/ab" >"$TMP/ab.verify" 2>&1
rc=$?
sed 's/^/# /' "$TMP/ab.verify"
check "verify of the hang: deterministic up to its last instruction" [ $rc -eq 0 ]
spin=$(q ab "SELECT id FROM events WHERE vcpu = 1 AND kind = 'lock_try' ORDER BY id DESC LIMIT 1")
pc=$(q ab "SELECT printf('%x', pc) FROM events WHERE id = $spin")
"$K" replay -q "$TMP/ab" --to "$spin" >"$TMP/ab.replay" 2>"$TMP/ab.replay.err"
check "replay --to $spin (Cpu1's try of A): held vCPU 1 at pc 0x$pc" \
	bash -c 'grep -q "held vCPU 1 before" "$1" && grep -q "^pc  *0x0*$2 " "$1" && ! grep -q warning "$3"' _ \
	"$TMP/ab.replay" "$pc" "$TMP/ab.replay.err"

# --- the same scenario on one CPU (QEMU rr, as every other scenario)
rec one --scenario smp-lock-order
check "smp-lock-order on one CPU: completed, no hang" [ "$(m one .outcome)" = completed ]
"$K" check "$TMP/one" >"$TMP/one.check" 2>&1
check "... check: the inversion, no deadlock" \
	bash -c 'grep -q "lock-order: possible circular" "$1" && ! grep -q "deadlock:" "$1"' _ "$TMP/one.check"
done_testing
