#!/usr/bin/env bash
# Each broken scenario shows its bug under plain QEMU: the expected exit status
# (37 bugcheck, 39 ran to the end with the bug uncaught) or a real hang (still
# running GRACE_S seconds after its last line), plus the serial lines that are
# its evidence. All boots run in parallel.
#
# Every boot runs under -icount with a fixed shift and sleep=off: guest time
# follows the instructions executed, not the host's clock, so timer interrupts
# land on the same instructions however loaded the machine is and each
# scenario takes the same path every run (two boots of one scenario must
# print the same serial output, checked below).
source "$(dirname "$0")/lib.sh"

GRACE_S=3	# a hang: no exit for this long after the scenario's last serial line
ICOUNT=(-icount shift=5,sleep=off)	# 32 ns of guest time per instruction
MAX_S=60	# boots are slow when the machine is busy; give up after this long

if [ ! -e "$KERNEL" ]; then
	not_ok "kernel image exists" "no $KERNEL (make kernel)"
	done_testing
fi

# run SCENARIO [LAST_LINE_REGEX]: boots in the background. With a regex the run
# is expected to hang after printing that line: it is killed GRACE_S seconds
# after the line shows up (status 124). Polling for the line instead of a
# fixed timeout keeps the test right however slowly QEMU boots. Writes
# $TMP/SCENARIO.out and $TMP/SCENARIO.rc.
run() {
	local name=$1 last=${2:-} out=$TMP/${3:-$1}.out pid ticks=0 seen=0 rc
	qemu-system-x86_64 -cpu max -m 128M -kernel "$KERNEL" -append "scenario=$name" \
		-serial stdio -display none -no-reboot -monitor none "${ICOUNT[@]}" \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 </dev/null >"$out" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		if [ -n "$last" ] && [ "$seen" -eq 0 ] && grep -qE -- "$last" "$out"; then seen=$ticks; fi
		[ "$seen" -gt 0 ] && [ $((ticks - seen)) -ge $((GRACE_S * 5)) ] && break
		[ "$ticks" -ge $((MAX_S * 5)) ] && break
		ticks=$((ticks + 1))
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
		rc=124
	else
		wait "$pid"
		rc=$?
	fi
	echo "$rc" >"$TMP/${3:-$name}.rc"
}

run eoi-before-switch &
run missing-eoi '^scenario missing-eoi: start$' &
run lock-order-deadlock 'clock stopped$' &
run spinlock-high-irql '^spinlock-high-irql: taking' &
run recursive-spinlock 'acquiring it again$' &
for s in global-irql lock-order irql-lower-raise irql-lower-raise-checked mutex-not-owner \
	page-fault no-such-scenario; do
	run "$s" &
done
# Second boots of two scenarios whose output depends on where the clock ticks.
run global-irql '' global-irql.again &
run eoi-before-switch '' eoi-before-switch.again &
wait

# expect SCENARIO STATUS WHAT: the exit status, 124 meaning "hung until killed"
expect() {
	local rc
	rc=$(cat "$TMP/$1.rc" 2>/dev/null || echo none)
	if [ "$rc" = "$2" ]; then ok "$1: $3"
	else not_ok "$1: $3" "status $rc, wanted $2; serial: $(tail -n 4 "$TMP/$1.out" | tr '\n' '|')"; fi
}
# shows SCENARIO REGEX: the serial output has a line matching REGEX
shows() {
	if grep -qE -- "$2" "$TMP/$1.out"; then ok "$1: serial shows '$2'"
	else not_ok "$1: serial shows '$2'" "$(tail -n 4 "$TMP/$1.out" | tr '\n' '|')"; fi
}
lacks() {
	if ! grep -qE -- "$2" "$TMP/$1.out"; then ok "$1: serial lacks '$2'"
	else not_ok "$1: serial lacks '$2'" "$(grep -E -- "$2" "$TMP/$1.out" | head -n 2 | tr '\n' '|')"; fi
}

for s in eoi-before-switch missing-eoi lock-order-deadlock spinlock-high-irql recursive-spinlock \
	global-irql lock-order irql-lower-raise; do
	shows "$s" "^scenario $s: start\$"
done

expect eoi-before-switch 37 "the stack left on the interrupt stack is caught (bugcheck)"
shows eoi-before-switch '^\*\*\* STOP: 0x000000e2 '
shows eoi-before-switch '^\*\*\* KREWIND_THREAD_STACK_CORRUPT in thread EbsWorker[AB]$'

expect missing-eoi 124 "hangs once the EOI is skipped"
lacks missing-eoi 'woke up 2,|finished'

expect global-irql 39 "runs to the end, leak not caught by the kernel"
shows global-irql '^global-irql: thread GlobalIrqlB waited at IRQL 0 and resumed at IRQL 1$'

expect lock-order 39 "runs to the end without deadlocking"
shows lock-order '^lock-order: LockOrderAB took A then B$'
shows lock-order '^lock-order: LockOrderBA took B then A$'

expect lock-order-deadlock 124 "deadlocks"
shows lock-order-deadlock '^lock-order-deadlock: DeadlockAB holds A, wants B$'
shows lock-order-deadlock '^lock-order-deadlock: DeadlockBA holds B, wants A$'
shows lock-order-deadlock '^idle: no thread can run and no timer is armed; clock stopped$'
lacks lock-order-deadlock 'finished'

expect spinlock-high-irql 124 "the clock ISR spins on the lock its thread holds"
shows spinlock-high-irql '^spinlock-high-irql: taking ScenarioIsrLock'
lacks spinlock-high-irql 'finished'

expect irql-lower-raise 39 "runs to the end with the checks off"
shows irql-lower-raise '^irql-lower-raise: KeLowerIrql\(13\) at DISPATCH_LEVEL left IRQL 13$'
shows irql-lower-raise '^irql-lower-raise: KeRaiseIrql\(1\) at CLOCK_LEVEL left IRQL 1$'

expect recursive-spinlock 124 "spins forever on its own lock"
shows recursive-spinlock '^recursive-spinlock: acquired ScenarioRecursiveLock, acquiring it again$'
lacks recursive-spinlock 'finished'

# The same misuses with the kernel's checks on: NT's bugchecks.
expect irql-lower-raise-checked 37 "KeLowerIrql to a higher IRQL bugchecks"
shows irql-lower-raise-checked '^\*\*\* STOP: 0x0000000a \(0x000000000000000d, 0x0000000000000002,'
expect mutex-not-owner 37 "releasing another thread's mutex bugchecks"
shows mutex-not-owner '^\*\*\* STOP: 0x00000011 '
shows mutex-not-owner '^\*\*\* THREAD_NOT_MUTEX_OWNER in thread Phase1$'

expect page-fault 37 "an exception is reported and bugchecks"
shows page-fault '^\*\*\* exception 14 \(#PF page fault\) error code 0x0 at rip 0x[0-9a-f]+ rsp 0x[0-9a-f]+ cr2 0x40000000$'
shows page-fault '^\*\*\* STOP: 0x0000007f \(0x000000000000000e, 0x0000000000000000, 0x[0-9a-f]{16}, 0x0000000040000000\)$'

# Deterministic under icount: the same serial output, byte for byte, twice.
for s in global-irql eoi-before-switch; do
	if cmp -s "$TMP/$s.out" "$TMP/$s.again.out" && [ -s "$TMP/$s.out" ]; then
		ok "$s: two boots print the same serial output"
	else
		not_ok "$s: two boots print the same serial output" "$(diff "$TMP/$s.out" "$TMP/$s.again.out" | head -n 4 | tr '\n' '|')"
	fi
done

expect no-such-scenario 35 "an unknown scenario is refused (0x11)"
shows no-such-scenario "^error: unknown scenario 'no-such-scenario'"

done_testing
