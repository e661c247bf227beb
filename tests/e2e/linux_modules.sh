#!/usr/bin/env bash
# The planted-bug modules (tests/linux/modules/krbug_*.c) on Debian's stock
# kernel: each boot loads one (krewind.bug=NAME), is recorded with the probe
# `krewind probe linux` makes, and `krewind check` must name that bug (a
# finding of the expected kind on the module's thread) and nothing else. The
# boots themselves are asserted (the module ran, the outcome), then what check
# says: the bug named on the module's thread, and no other error or warning
# (notes, true facts such as a mutex held when the trace ended, are allowed).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../linux/lib.sh"

linux_setup

# has_finding REC KINDS THREAD: a finding of a kind matching the regex KINDS
# that names a thread starting with THREAD.
has_finding() {
	jq -e --arg k "^($2)\$" --arg t "$3" \
		'[.findings[] | select((.kind // "") | test($k)) | select(any(.threads[]?; (.name // "") | startswith($t)))] | length > 0' \
		"$1/check.json" >/dev/null
}
# others REC: errors and warnings that name no krbug- thread (the boot's own:
# must be none).
others() {
	jq '[.findings[] | select(.severity != "note")
		| select(all(.threads[]?; ((.name // "") | startswith("krbug-")) | not))] | length' "$1/check.json"
}
# other_titles REC: their titles, for the failure message.
other_titles() {
	jq -r '[.findings[] | select(.severity != "note")
		| select(all(.threads[]?; ((.name // "") | startswith("krbug-")) | not)) | .title] | .[:3] | join("; ")' \
		"$1/check.json"
}

# named REC KINDS LOCK: a finding of KINDS names the module's static lock LOCK
# (module-load: the module's own symbols reached the trace).
named() {
	jq -e --arg k "^($2)\$" --arg l "$3" \
		'[.findings[] | select((.kind // "") | test($k)) | select(any(.lock_classes[]?; . == $l))] | length > 0' \
		"$1/check.json" >/dev/null
}

# bug NAME OUTCOME KINDS WHAT [LOCK]: boots with krbug_NAME, expects OUTCOME and
# (KINDS not empty) a finding of KINDS on a krbug- thread, naming LOCK when
# given; KINDS empty: no finding on one.
bug() {
	local name=$1 outcome=$2 kinds=$3 what=$4 lock=${5:-} rec=$TMP/$1 got ran
	linux_record "$rec" "krewind.bug=$name"
	got=$(jq -r .outcome "$rec/manifest.json" 2>/dev/null)
	check "krbug_$name: recorded, outcome $outcome ($got)" [ "$REC_RC" -eq 0 ] && [ "$got" = "$outcome" ]
	if [ "$outcome" = hang ]; then ran="krbug_$name: about to"; else ran="insmod krbug_$name: status 0"; fi
	check "krbug_$name: the module ran ($ran)" grep -q "$ran" "$rec/serial.log"
	check "krbug_$name: the trace saw the module load with its symbols" \
		sh -c "build/krewind events '$rec' --kind marker | grep -Eq 'module krbug_$name loaded: [1-9][0-9]* symbols'"
	build/krewind check "$rec" --json >"$rec/check.json" 2>/dev/null
	if [ -n "$kinds" ]; then
		check "krbug_$name: check names $what" has_finding "$rec" "$kinds" krbug-
		[ -z "$lock" ] || check "krbug_$name: the finding names the module's lock $lock" named "$rec" "$kinds" "$lock"
	else
		check "krbug_$name: check reports nothing on the module's threads ($what)" \
			[ "$(jq '[.findings[] | select(.severity != "note")
				| select(any(.threads[]?; (.name // "") | startswith("krbug-")))] | length' \
				"$rec/check.json")" -eq 0 ]
	fi
	check "krbug_$name: and nothing else ($(others "$rec") other errors or warnings: $(other_titles "$rec"))" \
		[ "$(others "$rec")" -eq 0 ]
	rm -rf "$rec"
}

bug abba exit "lock-order" "the AB-BA order" krbug_lock_a
bug hardirq exit "irq-unsafe-lock|irq-lock-order" "the hardirq lock taken with interrupts on" krbug_irq_lock
bug softirq exit "irq-unsafe-lock|irq-lock-order" "the softirq lock taken without _bh" krbug_bh_lock
bug trylock exit "" "a reverse-order spin_trylock is legal"
bug rwlock exit "lock-order" "the read_lock/write_lock inversion"
bug sleep exit "sleep-in-atomic" "the sleep under a spinlock"
bug double exit "release-not-held|recursive-locking" "the second release" krbug_lock
bug deadlock hang "hang|recursive-locking|recursive-spinlock|irq-unsafe-lock" "the deadlock"
done_testing
