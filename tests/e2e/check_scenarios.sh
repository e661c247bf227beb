#!/usr/bin/env bash
# The whole product on every scenario of the kernel under test: krewind record
# (QEMU record/replay + plugin), krewind check names the scenario's bug (and
# nothing on clean; for the crashes, the crash), and krewind verify replays
# the recording deterministically.
# bisect, asking the guest, must land on the culprit check names.
# Two scenarios run at a time; hangs are called after 2 s without progress.
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
export KREWIND_TRACES=$TMP/traces

# scenario  expected exit of check  finding kinds that must be there (error severity)
# The two that spin with the clock running come first, together: QEMU replays
# their `pause` loops far slower than it recorded them (docs/replay.md).
expectations=(
	"spinlock-high-irql   1 hang irq-unsafe-lock"
	"recursive-spinlock   1 hang recursive-spinlock"
	"clean                0"
	"eoi-before-switch    1 eoi-before-switch"
	"missing-eoi          1 hang missing-eoi"
	"global-irql          1 irql-leak-across-switch"
	"lock-order           1 lock-order"
	"lock-order-deadlock  1 hang lock-order"
	"irql-lower-raise     1 irql-lower-raises irql-raise-lowers"
	"page-fault           1 crash"
	"mutex-not-owner      1 release-not-owner crash"
	"mutex-order-nested   1 lock-order"
	"spinlock-preempted   1 spinlock-across-switch"
	"spinlock-wrong-restore 1 spinlock-restore-mismatch"
	"nested-instances     1 recursive-locking"
)

# run_scenario NAME: record, check and verify; results in $TMP/NAME.*
run_scenario() {
	local s=$1 rec=$TMP/rec-$1
	"$KREWIND" record --scenario "$s" -o "$rec" --hang-after 2 --timeout 60 -q >"$TMP/$s.record" 2>&1
	echo $? >"$TMP/$s.record.rc"
	"$KREWIND" check "$rec" --json >"$TMP/$s.check" 2>"$TMP/$s.check.err"
	echo $? >"$TMP/$s.check.rc"
	"$KREWIND" verify "$rec" >"$TMP/$s.verify" 2>&1
	echo $? >"$TMP/$s.verify.rc"
}

pids=()
for line in "${expectations[@]}"; do
	set -- $line
	run_scenario "$1" &
	pids+=($!)
	if [ ${#pids[@]} -ge 2 ]; then
		wait "${pids[0]}"
		pids=("${pids[@]:1}")
	fi
done
wait

for line in "${expectations[@]}"; do
	set -- $line
	s=$1 want_rc=$2
	shift 2
	if [ "$(cat "$TMP/$s.record.rc")" != 0 ]; then
		not_ok "$s: recorded" "$(tail -n 3 "$TMP/$s.record")"
		continue
	fi
	ok "$s: recorded ($(head -n 1 "$TMP/$s.record" | sed 's/^recorded [^:]*: //'))"
	rc=$(cat "$TMP/$s.check.rc")
	errors=$(jq -r '.findings[] | select(.severity == "error") | .kind' "$TMP/$s.check" 2>/dev/null | sort -u | tr '\n' ' ')
	if [ "$rc" = "$want_rc" ]; then
		ok "$s: check exits $want_rc"
	else
		not_ok "$s: check exits $want_rc" "exit $rc; errors: $errors $(head -c 300 "$TMP/$s.check.err")"
	fi
	for kind in "$@"; do
		if [[ " $errors " == *" $kind "* ]]; then
			ok "$s: check finds $kind"
		else
			not_ok "$s: check finds $kind" "error findings: ${errors:-none}"
		fi
	done
	if [ "$s" = clean ]; then
		n=$(jq '.findings | length' "$TMP/$s.check" 2>/dev/null)
		if [ "$n" = 0 ]; then ok "clean: no findings at all"; else not_ok "clean: no findings at all" "$n findings: $errors"; fi
	fi
	if [ "$(cat "$TMP/$s.verify.rc")" = 0 ] && grep -q 'deterministic' "$TMP/$s.verify"; then
		ok "$s: verify replays it deterministically"
	else
		not_ok "$s: verify replays it deterministically" "$(tail -n 4 "$TMP/$s.verify" | tr '\n' ' ')"
	fi
done

# The crash after a page fault: its code, the exception before it, exit 1.
title=$(jq -r '[.findings[] | select(.kind == "crash")][0].title' "$TMP/page-fault.check" 2>/dev/null)
if [[ "$title" == *"bugcheck 0x7f"*"after exception"* ]]; then ok "page-fault: the crash names STOP 0x7f and the exception"; else not_ok "page-fault: the crash names STOP 0x7f and the exception" "title: $title"; fi
# Nested instances: the class is the init site, not either lock's address.
cls=$(jq -r '[.findings[] | select(.kind == "recursive-locking")][0].lock_classes[0]' "$TMP/nested-instances.check" 2>/dev/null)
if [[ "$cls" == init@ScenarioObjectInit+* ]]; then ok "nested-instances: classed by their init site ($cls)"; else not_ok "nested-instances: classed by their init site" "class: $cls"; fi
# The mutex inversion names both mutexes, each first used nested.
n=$(jq -r '[.findings[] | select(.kind == "lock-order")][0].lock_classes | map(select(. == "ScenarioMutexA" or . == "ScenarioMutexB")) | length' "$TMP/mutex-order-nested.check" 2>/dev/null)
if [ "$n" = 2 ]; then ok "mutex-order-nested: the cycle names both mutexes"; else not_ok "mutex-order-nested: the cycle names both mutexes" "classes: $n"; fi

# check names the culprit event of eoi-before-switch: the switch right after
# the EOI, inside the still-open timer interrupt.
rec=$TMP/rec-eoi-before-switch
ev=$(jq -r '[.findings[] | select(.kind == "eoi-before-switch")][0].event' "$TMP/eoi-before-switch.check" 2>/dev/null)
kind=$("$KREWIND" sql "$rec" "SELECT kind FROM events WHERE id = ${ev:-0}" 2>/dev/null | tail -n 1 | tr -d ' ')
if [ "$kind" = switch ]; then ok "eoi-before-switch: the culprit is a switch event"; else not_ok "eoi-before-switch: the culprit is a switch event" "event ${ev:-?} is ${kind:-nothing}"; fi
prev=$("$KREWIND" sql "$rec" "SELECT kind FROM events WHERE id < ${ev:-0} AND kind IN ('eoi','trap','iret') ORDER BY id DESC LIMIT 1" 2>/dev/null | tail -n 1 | tr -d ' ')
if [ "$prev" = eoi ]; then ok "eoi-before-switch: an EOI and no iret precede it"; else not_ok "eoi-before-switch: an EOI and no iret precede it" "last interrupt event before it: ${prev:-none}"; fi


# bisect, asking the guest itself (CR8 through gdb at each replayed switch),
# finds the same culprit that check names: the first switch at interrupt level.
"$KREWIND" bisect "$rec" --until 'gdb:$cr8 > 2' --kind switch --json >"$TMP/bisect.json" 2>"$TMP/bisect.err"
rc=$?
first=$(jq -r '.first_bad.event' "$TMP/bisect.json" 2>/dev/null)
if [ "$rc" = 0 ] && [ "$first" = "$ev" ]; then
	ok "bisect by guest CR8 finds check's culprit (event $ev)"
else
	not_ok "bisect by guest CR8 finds check's culprit (event $ev)" "exit $rc, first bad ${first:-none}: $(head -c 300 "$TMP/bisect.err")"
fi
last=$(jq -r '.last_good.event' "$TMP/bisect.json" 2>/dev/null)
if [ -n "$last" ] && [ "$last" != null ] && [ "$last" -lt "${ev:-0}" ]; then ok "bisect names a last good event before it"; else not_ok "bisect names a last good event before it" "last good: ${last:-none}"; fi

done_testing
