#!/usr/bin/env bash
# Debian's stock Linux under krewind: fetches (once, cached) the cloud kernel,
# its vmlinux and headers and builds the busybox initramfs
# (scripts/linux-subject.sh), generates its probe with `krewind probe linux`,
# records a boot that runs a workload and powers off, and asserts on the
# recording: outcome, events of every kind the probe promises, symbols, thread
# names, size, inputs, `verify` (also on a copy with a tail after the
# replay's end, and with an event changed) and `krewind pack`; then a panic
# and a reset.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../linux/lib.sh"

linux_subject || done_testing

# --- the probe, made from this build
probe=$TMP/linux.probe
check "krewind probe linux writes a probe" build/krewind probe linux "$LINUX_VMLINUX" -o "$probe"
grep -q "^thread-name" "$probe" && grep -q "^__switch_to" "$probe" && grep -q "^_raw_spin_lock " "$probe"
check "the probe has current, comm, the switch and the spinlocks" [ $? -eq 0 ]
id=$(build/krewind probe linux "$LINUX_VMLINUX" | sed -n 's/.*build-id \([0-9a-f]*\)\..*/\1/p')
shipped=$(sed -n 's/.*build-id \([0-9a-f]*\)\..*/\1/p' probes/linux.probe)
if [ "$id" = "$shipped" ]; then
	check "probes/linux.probe is what krewind probe linux prints for this build" cmp -s "$probe" probes/linux.probe
else
	skip "probes/linux.probe is regenerated identically" "fetched build $id, shipped probe made for $shipped"
fi
build/krewind probe linux "$LINUX_KVER-no-such-file" >/dev/null 2>"$TMP/err"
check "probe linux on a missing file: exit 2" [ $? -eq 2 ]
build/krewind probe linux "$LINUX_VMLINUZ" >/dev/null 2>"$TMP/err"
rc=$?
check "probe linux on the bzImage: exit 2, one line saying why" [ $rc -eq 2 ] && grep -q "^krewind: error: .*symbols" "$TMP/err"
linux_probe_for_parser "$probe"

# --- a clean boot
rec=$TMP/boot
linux_record "$rec" ""
check "record: exit 0" [ "$REC_RC" -eq 0 ]
check "a poweroff is outcome \"exit\" ($(jq -r .outcome "$rec/manifest.json"))" \
	[ "$(jq -r .outcome "$rec/manifest.json")" = exit ]
q() { sqlite3 "$rec/trace.db" "$1"; }
# Every kind of event the probe promises (what its events record, docs/probe.md).
missing=
for k in $(linux_probe_kinds "$PROBE"); do
	n=$(q "SELECT count(*) FROM events WHERE kind='$k'")
	[ "${n:-0}" -gt 0 ] || missing="$missing $k"
done
check "events of every kind the probe promises (missing:${missing:- none})" [ -z "$missing" ]
n=$(q "SELECT count(*) FROM events WHERE kind='bugcheck'")
check "no panic in a clean boot" [ "$n" -eq 0 ]
# Probed events are at a probed function's entry or return: always symbolized.
raw=$(build/krewind events "$rec" --json --kind lock_try,lock_acq,lock_rel,switch,signal,wait --limit 5000 |
	jq '[.[] | select(.symbol | startswith("0x"))] | length')
check "probed events have symbolized pcs ($raw raw of 5000)" [ "$raw" -eq 0 ]
n=$(q "SELECT count(*) FROM events WHERE kind='switch' AND pc <> (SELECT addr FROM symbols WHERE name='__switch_to')")
check "every switch is at __switch_to" [ "$n" -eq 0 ]
raw=$(build/krewind events "$rec" --json --kind trap,iret --limit 5000 |
	jq '[.[] | select(.symbol | startswith("0x"))] | length')
check "trap and iret pcs symbolized ($raw raw of 5000)" [ "$raw" -lt 50 ]
# Thread names: the comm of the workload's busybox processes and kernel threads.
for name in init dd gzip cat wc kthreadd ksoftirqd/0 rcu_preempt; do
	n=$(q "SELECT count(*) FROM threads WHERE name='$name'")
	[ "$n" -gt 0 ] || not_named="$not_named $name"
done
check "threads named by comm (missing:${not_named:- none})" [ -z "${not_named:-}" ]
n=$(q "SELECT count(*) FROM threads WHERE name='dd'")
check "each of the 4 dd processes is a thread of its own ($n)" [ "$n" -ge 4 ]
n=$(q "SELECT count(*) FROM events e JOIN threads t ON t.addr = e.thread WHERE e.kind='lock_try' AND t.name='gzip'")
check "gzip's own lock events carry its thread ($n)" [ "$n" -gt 0 ]
try=$(q "SELECT count(*) FROM events WHERE kind='lock_try'")
acq=$(q "SELECT count(*) FROM events WHERE kind IN ('lock_acq','lock_fail')")
check "every lock attempt ends ($try tries, $acq acquired or failed)" [ $((try - acq)) -lt 10 ]
traps=$(q "SELECT count(*) FROM events WHERE kind='trap'")
t0=$(q "SELECT count(*) FROM events WHERE kind='trap' AND thread=0")
check "traps carry their thread ($t0 of $traps without)" [ "$t0" -lt $((traps / 20 + 1)) ]
# The probe declares the preempt count's context bits: the count decides the
# context of every event but traps and irets (Linux preempts between a
# hardirq's irq_exit and its iret: process context inside an open frame).
n=$(q "SELECT count(*) FROM events WHERE kind LIKE 'lock_%' AND ctx='hardirq'")
m=$(q "SELECT count(*) FROM events WHERE kind LIKE 'lock_%' AND preempt >= 0 AND
	(ctx='hardirq') <> (preempt & 0xf0000 <> 0 AND preempt & 0xf00000 = 0)")
check "lock events are hardirq exactly when the preempt count says so ($n hardirq, $m disagree)" \
	[ "$n" -gt 0 ] && [ "$m" -eq 0 ]
m=$(q "SELECT count(*) FROM events WHERE kind LIKE 'lock_%' AND preempt >= 0 AND
	(ctx='softirq') <> (preempt & 0x100 <> 0 AND preempt & 0xff0000 = 0)")
check "and softirq exactly when it says softirqs are being served ($m disagree)" [ "$m" -eq 0 ]
eoi=$(q "SELECT count(*) FROM events WHERE kind='eoi'")
check "xAPIC EOIs seen ($eoi)" [ "$eoi" -gt 100 ]
build/krewind check "$rec" >"$TMP/check.out" 2>&1
rc=$?
check "krewind check on the clean boot: no error or warning ($(tail -n1 "$TMP/check.out"))" [ $rc -eq 0 ]
[ $rc -eq 0 ] || grep -E '^[0-9]+\. |^   [a-z-]+ +[0-9]+ ' "$TMP/check.out" | head -n 12 | sed 's/^/# /'

# --- small and self-contained
stored=$(jq -r '.inputs[] | select(.file=="symbols.elf") | .stored' "$rec/manifest.json")
check "the vmlinux is not copied ($stored)" [ "$stored" = hardlink ] || [ "$stored" = reflink ] || [ "$stored" = reference ]
bid=$(jq -r '.inputs[] | select(.file=="symbols.elf") | .build_id' "$rec/manifest.json")
check "the manifest keeps the vmlinux's build-id" [ "$bid" = "$id" ]
sha=$(jq -r '.inputs[] | select(.file=="symbols.elf") | .sha256' "$rec/manifest.json")
check "the manifest keeps the vmlinux's sha256" [ "$sha" = "$(sha256sum "$LINUX_VMLINUX" | cut -d' ' -f1)" ]
own=$(find "$rec" -type f -links 1 -printf '%s\n' | awk '{s += $1} END {print s}')
check "recording directory $((own / 1048576)) MB of its own (< 80 MB)" [ "$own" -lt $((80 << 20)) ]
echo "# recording: $((own / 1048576)) MB own files, $(q "SELECT count(*) FROM events") events," \
	"$(( $(stat -c %s "$rec/trace.db") / $(q "SELECT count(*) FROM events") )) bytes/event in trace.db"
build/krewind verify "$rec" >"$TMP/verify.out" 2>&1
rc=$?
check "verify: the Linux recording replays deterministically ($(head -n1 "$TMP/verify.out"))" [ $rc -eq 0 ]
sed 's/^/# /' "$TMP/verify.out"
# After the guest's shutdown request QEMU stops the vCPU at a host-dependent
# moment, in the recording and in the replay: a recording whose vCPU ran on
# further than the replay's does is compared up to the replay's end (a tail
# added to a copy stands for that), and a difference before it still fails.
tailrec=$TMP/tail
mkdir "$tailrec" && for f in "$rec"/*; do
	case ${f##*/} in symbols.elf) ln "$f" "$tailrec/" ;; *) cp -r "$f" "$tailrec/" ;; esac
done
sqlite3 "$tailrec/trace.db" "INSERT INTO event_rows (icount, vcpu, kind_id, pc, thread_id, obj, a, b, state, preempt, caller)
	SELECT icount + 5000, vcpu, kind_id, pc, thread_id, obj, a, b, state, preempt, caller FROM event_rows
	WHERE id = (SELECT max(id) FROM event_rows)"
jq ".icount_total += 5000 | .events_total += 1" "$rec/manifest.json" >"$tailrec/manifest.json"
build/krewind verify -q "$tailrec" >"$TMP/verify2.out" 2>&1
check "verify: a recording that ran 5000 instructions past the replay's end is compared up to that end" \
	[ $? -eq 0 ] && grep -q "instructions before the recording's end" "$TMP/verify2.out"
sed 's/^/# /' "$TMP/verify2.out"
sqlite3 "$tailrec/trace.db" "UPDATE event_rows SET pc = pc + 1 WHERE id = (SELECT max(id) - 1000 FROM event_rows)"
build/krewind verify -q "$tailrec" >"$TMP/verify3.out" 2>&1
check "... and an event changed before that end fails it" [ $? -eq 1 ] && grep -q "differs" "$TMP/verify3.out"
rm -rf "$tailrec"
links=$(stat -c %h "$rec/symbols.elf")
build/krewind pack "$rec" >"$TMP/pack.out"
check "krewind pack: exit 0 ($(head -n1 "$TMP/pack.out"))" [ $? -eq 0 ]
check "after pack the vmlinux is a copy of its own (links before: $links)" [ "$(stat -c %h "$rec/symbols.elf")" -eq 1 ] &&
	[ "$(jq -r '.inputs[] | select(.file=="symbols.elf") | .stored' "$rec/manifest.json")" = copy ] &&
	cmp -s "$rec/symbols.elf" "$LINUX_VMLINUX"
rm -f "$rec/symbols.elf"
truncate -s "$(stat -c %s "$LINUX_VMLINUX")" "$rec/symbols.elf"
build/krewind replay "$rec" --to 1000 >/dev/null 2>"$TMP/err"
rc=$?
check "replay of a recording whose vmlinux changed: exit 2, says so" [ $rc -eq 2 ] && grep -q "changed since" "$TMP/err"
rm -f "$rec/symbols.elf"
build/krewind replay "$rec" --to 1000 >/dev/null 2>"$TMP/err"
rc=$?
check "replay of a recording whose vmlinux is gone: exit 2, says so" [ $rc -eq 2 ] && grep -q "is gone" "$TMP/err"
rm -rf "$rec"

# --- a panic, and a reset
linux_record "$TMP/panic" "krewind.exit=panic"
detail=$(jq -r .outcome_detail "$TMP/panic/manifest.json")
check "init exiting is outcome \"panic\" ($(jq -r .outcome "$TMP/panic/manifest.json"))" \
	[ "$(jq -r .outcome "$TMP/panic/manifest.json")" = panic ]
check "the panic's message is the outcome detail ($detail)" grep -q "Attempted to kill init" <<<"$detail"
build/krewind check "$TMP/panic" >"$TMP/check.out" 2>&1
check "krewind check reports the panic (its text reaches the crash finding)" \
	grep -qiE '^ *[0-9]+\. (error|warning) .*panic' "$TMP/check.out"
linux_record "$TMP/reset" "krewind.exit=reboot"
check "a reset under -no-reboot is outcome \"reset\" ($(jq -r .outcome "$TMP/reset/manifest.json"))" \
	[ "$(jq -r .outcome "$TMP/reset/manifest.json")" = reset ]
done_testing
