#!/usr/bin/env bash
# Exact landing on the Linux boot: after the boot-time code patching
# (alternatives, static keys) the plugin's icount and QEMU's drift apart, and
# `replay --to EVENT` must still stop on the event's own instruction: its pc,
# at most 16 instructions from the trace's icount, with the drift reported
# (icount_drift = where QEMU stopped - the trace's icount, and the note in the
# text output). The event is the first context switch past 80% of the run.
# Leaves no QEMU behind.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../linux/lib.sh"

linux_setup
rec=$TMP/boot
linux_record "$rec" ""
check "record: exit 0" [ "$REC_RC" -eq 0 ]
[ "$REC_RC" -eq 0 ] || done_testing

total=$(jq -r .icount_total "$rec/manifest.json")
read -r id icount pc < <(build/krewind sql "$rec" --json \
	"SELECT id, icount, pc FROM events WHERE kind = 'switch' AND icount >= 0.8 * $total ORDER BY icount LIMIT 1" |
	jq -r '.rows[0] | "\(.[0]) \(.[1]) \(.[2])"')
check "a switch past 80% of the boot ($id at $icount)" [ -n "$id" ] && [ "$id" != null ]

timeout 600 build/krewind replay "$rec" --to "$id" --json -q >"$TMP/land.json" 2>"$TMP/land.err"
check "replay --to $id: exit 0" [ $? -eq 0 ] || sed 's/^/# /' "$TMP/land.err"
got_pc=$(jq -r .pc "$TMP/land.json")
got_ic=$(jq -r .icount "$TMP/land.json")
drift=$(jq -r .icount_drift "$TMP/land.json")
check "it stops on the event's instruction (pc $got_pc, event $(printf '0x%x' "$pc"))" \
	[ "$got_pc" = "$(printf '0x%x' "$pc")" ]
check "within 16 instructions of the trace's icount (QEMU $got_ic, trace $icount)" \
	[ "$got_ic" -ge $((icount - 16)) ] && [ "$got_ic" -le $((icount + 16)) ]
check "icount_drift is QEMU's icount minus the trace's ($drift)" [ "$drift" -eq $((got_ic - icount)) ]
echo "# drift at event $id: $drift"
if [ "$drift" -ne 0 ]; then
	timeout 600 build/krewind replay "$rec" --to "$id" -q >"$TMP/land.txt" 2>&1
	check "the text output says where and why (drift $drift)" grep -q "drift $(printf '%+d' "$drift"): code rewritten" "$TMP/land.txt"
fi
left=
for p in $(pgrep -x qemu-system-x86); do
	readlink "/proc/$p/cwd" 2>/dev/null | grep -q "^$TMP" && left="$left $p"
done
check "no QEMU left behind ($left)" [ -z "$left" ]
done_testing
