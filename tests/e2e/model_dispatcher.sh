#!/usr/bin/env bash
# The Promela model of the kernel's dispatcher (tests/model/dispatcher.pml),
# checked with spin: the correct kernel verifies (no assertion, no deadlock,
# every wake-up delivered); the eoi-before-switch variant yields a trail that
# ends with an overwritten interrupt frame; and the mutants that exist to
# show each property can fail (the ISR spinning on the dispatcher lock, a
# wait that tests its event before taking the lock) are caught. Each spin
# run takes well under a second.
. "$(dirname "$0")/lib.sh"

RUN=tests/model/run.sh
if ! command -v spin >/dev/null; then
	not_ok "spin installed" "scripts/install-deps.sh installs it"
	done_testing
fi

# expect NAME PATTERN ARGS...: run.sh's result line matches PATTERN.
expect() {
	local name=$1 pattern=$2 line; shift 2
	line=$("$RUN" "$@" 2>&1)
	echo "# $line"
	if grep -qE -- "$pattern" <<<"$line"; then ok "$name"; else not_ok "$name" "got: $line"; fi
}

expect "correct kernel: safety verifies (0 errors)" " safety: errors=0 " safety "$TMP/ok-s"
expect "correct kernel: no lost wake-up (ltl done, 0 errors)" " liveness: errors=0 " liveness "$TMP/ok-l"
grep -qE 'never claim[[:space:]]+\+ \(done\)' "$TMP/ok-l/pan.log" && ok "the liveness run used the ltl claim" ||
	not_ok "the liveness run used the ltl claim" "$(grep 'never claim' "$TMP/ok-l/pan.log")"

expect "eoi-before-switch: counterexample" " safety: errors=1 .*assertion violated \(istFrame==" \
	-D EOI_BEFORE_SWITCH safety "$TMP/ebs"
if [ -s "$TMP/ebs/trail.txt" ] && grep -q 'assertion violated' "$TMP/ebs/trail.txt"; then
	ok "eoi-before-switch: the trail replays to the violation"
else
	not_ok "eoi-before-switch: the trail replays to the violation" "no trail.txt"
fi
# The trail goes through the planted switch: a thread switched out at
# CLOCK_LEVEL (swapIrql = 13) inside the ISR, before its iretq.
check "eoi-before-switch: the trail switches at CLOCK_LEVEL" grep -qE 'swapIrql\[[12]\] = irql' "$TMP/ebs/trail.txt"
grep -qE 'irql = 13' "$TMP/ebs/trail.txt" && ok "eoi-before-switch: trail passes through CLOCK_LEVEL" ||
	not_ok "eoi-before-switch: trail passes through CLOCK_LEVEL"

expect "clock on IST2 with the correct switch path: also a counterexample" \
	" safety: errors=1 .*assertion violated \(istFrame==" -D CLOCK_ON_IST safety "$TMP/ist"
expect "ISR spinning on the dispatcher lock: deadlock (invalid end state)" \
	" safety: errors=1 .*invalid end state" -D ISR_TAKES_DISPATCHER_LOCK safety "$TMP/isr"
expect "wait testing before the lock: lost wake-up (ltl done violated)" \
	" liveness: errors=1 .*acceptance cycle" -D WAIT_TESTS_BEFORE_LOCK liveness "$TMP/lw"
expect "wait testing before the lock: the idle-halt assertion fires" \
	" safety: errors=1 .*assertion violated \( !\(stopped\)" -D WAIT_TESTS_BEFORE_LOCK safety "$TMP/lws"

"$RUN" bogus "$TMP/x" >/dev/null 2>"$TMP/err"
check "run.sh: a bad check is a usage error (exit 2)" test $? -eq 2
done_testing
