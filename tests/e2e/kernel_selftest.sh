#!/usr/bin/env bash
# The kernel under test: image facts the tracer relies on, the clean boot's
# self-tests, the default scenario, and a record/replay round trip under
# -icount that must reproduce the serial output.
source "$(dirname "$0")/lib.sh"

if [ ! -e "$KERNEL" ]; then
	not_ok "kernel image exists" "no $KERNEL (make kernel)"
	done_testing
fi

# --- the image ---
check "kernel has the PVH note (Xen, type 18)" \
	sh -c "readelf -nW '$KERNEL' | grep -q 'Xen.*0x00000012'"
check "kernel carries DWARF" sh -c "readelf -SW '$KERNEL' | grep -q '\.debug_info'"
missing=
for f in KeRaiseIrql KeLowerIrql KeAcquireSpinLockRaiseToDpc KeReleaseSpinLock \
	KeAcquireSpinLockAtDpcLevel KeReleaseSpinLockFromDpcLevel KeAcquireInStackQueuedSpinLock \
	KeReleaseInStackQueuedSpinLock KeInitializeSpinLock KiSwapContext KeWaitForSingleObject \
	KiSatisfyMutexWait KeReleaseMutex KeSetEvent KeReleaseSemaphore KeBugCheckEx \
	KiSelfTestReport KiScenarioStart; do
	nm "$KERNEL" | grep -qE " T $f\$" || missing="$missing $f"
done
if [ -z "$missing" ]; then ok "every ABI function is a global text symbol"
else not_ok "every ABI function is a global text symbol" "missing:$missing"; fi
swap_size=$(readelf -sW "$KERNEL" | awk '$8 == "KiSwapContext" { print $3 }')
if [ -n "$swap_size" ] && [ "$swap_size" -gt 0 ]; then ok "KiSwapContext has an ELF size ($swap_size)"
else not_ok "KiSwapContext has an ELF size" "size '${swap_size:-none}'"; fi
for s in ScenarioLockA ScenarioLockB ScenarioMutexA ScenarioMutexB; do
	check "scenario object $s has a symbol" sh -c "nm '$KERNEL' | grep -qE ' [BbDd] $s\$'"
done

# --- clean boot ---
# Plain boots under -icount (fixed shift, sleep=off): guest time follows the
# instructions, so the self-tests' timing does not depend on host load.
ICOUNT=(-icount shift=5,sleep=off)
boot_kernel clean 60 "$TMP/clean.out" "${ICOUNT[@]}"
if [ "$BOOT_RC" -eq 33 ]; then ok "clean boot powers off with 0x10 (status 33)"
else not_ok "clean boot powers off with 0x10 (status 33)" "status $BOOT_RC; $(tail -n 5 "$TMP/clean.out" | tr '\n' '|')"; fi
check "boot banner on serial" grep -q '^krewind NT-style kernel' "$TMP/clean.out"
summary=$(grep -E '^selftest: [0-9]+ passed, [0-9]+ failed' "$TMP/clean.out")
passed=$(echo "$summary" | sed -nE 's/^selftest: ([0-9]+) passed, ([0-9]+) failed.*/\1/p')
failed=$(echo "$summary" | sed -nE 's/^selftest: ([0-9]+) passed, ([0-9]+) failed.*/\2/p')
if [ -n "$passed" ] && [ "$passed" -ge 10 ] && [ "$failed" = 0 ]; then
	ok "self-tests: $passed passed, 0 failed"
else
	not_ok "self-tests: at least 10 passed, 0 failed" "summary '$summary'; $(grep -E 'FAIL|check failed' "$TMP/clean.out" | tr '\n' '|')"
fi
lines=$(grep -cE '^selftest: PASS ' "$TMP/clean.out")
if [ -n "$passed" ] && [ "$lines" -eq "$passed" ]; then ok "one PASS line per passed test ($lines)"
else not_ok "one PASS line per passed test" "$lines PASS lines, summary '$summary'"; fi
for t in irql_per_thread_across_wait irql_per_thread_across_preemption sched_round_robin_fairness \
	dpc_fifo_at_dispatch_level wait_timeout_returns_status_timeout mutex_recursive_ownership \
	spinlock_excludes_preemptible_threads; do
	check "self-test $t passes" grep -q "^selftest: PASS $t\$" "$TMP/clean.out"
done

# --- no scenario on the command line means clean ---
timeout -s KILL 60 qemu-system-x86_64 -cpu max -m 128M -kernel "$KERNEL" -serial stdio \
	-display none -no-reboot -monitor none -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	"${ICOUNT[@]}" </dev/null >"$TMP/default.out" 2>&1
rc=$?
if [ "$rc" -eq 33 ] && grep -q '^scenario: clean$' "$TMP/default.out"; then ok "no -append runs clean"
else not_ok "no -append runs clean" "status $rc"; fi

# --- record under -icount, replay to the same serial output ---
rr_args=(-cpu max -m 128M -kernel "$KERNEL" -append scenario=clean -display none -no-reboot
	-monitor none -device isa-debug-exit,iobase=0xf4,iosize=0x04)
timeout -s KILL 60 qemu-system-x86_64 "${rr_args[@]}" -serial "file:$TMP/rec.out" \
	-icount "shift=auto,rr=record,rrfile=$TMP/r.bin" </dev/null >"$TMP/rec.log" 2>&1
rc=$?
if [ "$rc" -eq 33 ] && grep -q '^selftest: [0-9]* passed, 0 failed' "$TMP/rec.out"; then
	ok "clean boot under -icount rr=record passes"
else
	not_ok "clean boot under -icount rr=record passes" "status $rc; $(tail -n 3 "$TMP/rec.log" | tr '\n' '|')"
fi
timeout -s KILL 60 qemu-system-x86_64 "${rr_args[@]}" -serial "file:$TMP/rep.out" \
	-icount "shift=auto,rr=replay,rrfile=$TMP/r.bin" </dev/null >"$TMP/rep.log" 2>&1
if [ -s "$TMP/rec.out" ] && cmp -s "$TMP/rec.out" "$TMP/rep.out"; then
	ok "rr=replay reproduces the serial output byte for byte"
else
	not_ok "rr=replay reproduces the serial output byte for byte" "$(diff "$TMP/rec.out" "$TMP/rep.out" | head -n 5 | tr '\n' '|')"
fi

done_testing
