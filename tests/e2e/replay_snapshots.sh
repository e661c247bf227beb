#!/usr/bin/env bash
# Snapshots taken while recording (replay/snapshot.c): `record` with
# KREWIND_SNAPSHOT_EVERY=0.5 leaves snapshots/N.qcow2, each holding the VM
# state tagged kr-N; `replay --to` a point after one starts from the nearest
# (from_snapshot in JSON) and shows the same registers as a replay from the
# start; an event past a snapshot is landed on exactly; a target before the
# first snapshot starts from the start; KREWIND_SNAPSHOT_EVERY=0 takes none;
# `verify` of a recording with snapshots still compares identical (the stops
# are not part of the run); no QEMU is left.
source "$(dirname "$0")/lib.sh"
same() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi; }

KREWIND=build/krewind
export KREWIND_TRACES=$TMP/traces
KREWIND_SNAPSHOT_EVERY=0.1 "$KREWIND" record --scenario clean -q >"$TMP/rec.out" 2>&1
check "record clean with a snapshot every 0.1 s (the boot runs about 0.3 s on an idle machine): exit 0" [ $? -eq 0 ]
rec=$KREWIND_TRACES/clean-1
check "no warning while recording" [ -z "$(grep warning "$TMP/rec.out")" ]
snaps=$(ls "$rec/snapshots" 2>/dev/null | sed 's/\.qcow2$//' | sort -n)
check "snapshots were taken ($(echo $snaps))" [ -n "$snaps" ]
tagged=1
for n in $snaps; do
	qemu-img snapshot -l "$rec/snapshots/$n.qcow2" | grep -q " kr-$n " || tagged=0
done
check "each snapshots/N.qcow2 holds the snapshot kr-N" [ $tagged = 1 ]
first=$(echo "$snaps" | head -1)
[ -n "$first" ] || done_testing

# a point after the first snapshot: from the nearest, same machine as from the start
total=$(jq -r .icount_total "$rec/manifest.json")
target=$((first + (total - first) / 2))
last=$(echo "$snaps" | awk -v t=$target '$1 <= t' | tail -1)
if [ "$target" -gt "$first" ]; then
	"$KREWIND" replay "$rec" --to "icount:$target" --json -q >"$TMP/snap.json"
	check "replay --to icount:$target: exit 0" [ $? -eq 0 ]
	same "it started from the snapshot at $last" "$(jq -r .from_snapshot "$TMP/snap.json")" "$last"
	mv "$rec/snapshots" "$rec/snapshots.off"
	"$KREWIND" replay "$rec" --to "icount:$target" --json -q >"$TMP/start.json"
	mv "$rec/snapshots.off" "$rec/snapshots"
	same "without snapshots it starts from the start" "$(jq -r .from_snapshot "$TMP/start.json")" 0
	same "both stop with the same registers" "$(jq -c .registers "$TMP/snap.json")" "$(jq -c .registers "$TMP/start.json")"
else
	skip "a point after the first snapshot" "the run ended at $total"
fi

# an event after the first snapshot is landed on exactly
read -r id icount pc < <("$KREWIND" sql "$rec" --json \
	"SELECT id, icount, pc FROM events WHERE kind = 'switch' AND icount > $first + 16 ORDER BY icount LIMIT 1" |
	jq -r '.rows[0] | "\(.[0]) \(.[1]) \(.[2])"')
"$KREWIND" replay "$rec" --to "$id" --json -q >"$TMP/ev.json"
check "replay --to $id (a switch after the first snapshot): exit 0" [ $? -eq 0 ]
check "it started from a snapshot ($(jq -r .from_snapshot "$TMP/ev.json"))" [ "$(jq -r .from_snapshot "$TMP/ev.json")" -ge "$first" ]
same "at the event's icount" "$(jq -r .icount "$TMP/ev.json")" "$icount"
same "at the event's pc" "$(jq -r .pc "$TMP/ev.json")" "$(printf '0x%x' "$pc")"

# before the first snapshot: from the start
early=$("$KREWIND" sql "$rec" "SELECT id FROM events WHERE kind = 'switch' AND icount < $first - 16 ORDER BY icount LIMIT 1" | tail -1 | tr -d ' ')
if [ -n "$early" ] && [ "$early" != id ] && [ "$early" != NULL ]; then
	"$KREWIND" replay "$rec" --to "$early" --json -q >"$TMP/early.json"
	same "replay --to $early (before the first snapshot) starts from the start" "$(jq -r .from_snapshot "$TMP/early.json")" 0
else
	skip "an event before the first snapshot" "none"
fi

"$KREWIND" verify "$rec" -q >"$TMP/verify.out" 2>&1
check "verify of the recording with snapshots: deterministic" [ $? -eq 0 ]

KREWIND_SNAPSHOT_EVERY=0 "$KREWIND" record --scenario clean -q >/dev/null 2>&1
check "KREWIND_SNAPSHOT_EVERY=0 takes none" [ ! -e "$KREWIND_TRACES/clean-2/snapshots" ]

left=
for p in $(pgrep -x qemu-system-x86); do
	readlink "/proc/$p/cwd" 2>/dev/null | grep -q "^$TMP" && left="$left $p"
done
same "no QEMU is left" "$left" ""
done_testing
