#!/usr/bin/env bash
# A replaying QEMU that stops answering (here: SIGSTOP, as a wedged QEMU
# would) is never waited on without end. `replay --to` from the start ends in
# "the replay is stuck" (exit 1) once its icount has not moved for
# KREWIND_STALL seconds, with no QEMU left; from a snapshot, a first QEMU that
# stands still gets a second one from the same snapshot, which lands (the
# fall-back of replay --to, docs/replay.md). The subject is a spinning
# deadlock: it replays slowly (about 100 k instructions/s, #15), so the
# stopped QEMU cannot finish before it is stopped.
source "$(dirname "$0")/lib.sh"
same() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi; }

KREWIND=build/krewind
rec=$TMP/spin
KREWIND_SNAPSHOT_EVERY=1 "$KREWIND" record -q --scenario recursive-spinlock --hang-after 3 -o "$rec" \
	>"$TMP/rec.out" 2>&1
check "record recursive-spinlock with a snapshot every second: exit 0" [ $? -eq 0 ]
snap=$(ls "$rec/snapshots" 2>/dev/null | sed 's/\.qcow2$//' | sort -n | head -1)
check "a snapshot was taken (${snap:-none})" [ -n "$snap" ]
[ -n "$snap" ] || done_testing

# stop_qemus PID N: SIGSTOPs the first N QEMUs that PID (timeout) or its
# child (krewind) starts, half a second after each appears; prints how many
# QEMUs were started in all, and keeps their pids in $TMP/qemus.
stop_qemus() {
	local parent=$1 n=$2 seen="" q
	while kill -0 "$parent" 2>/dev/null; do
		for q in $(pgrep -P "$parent,$(pgrep -P "$parent" | paste -sd, -)" qemu-system-x86); do
			case " $seen " in *" $q "*) continue ;; esac
			seen="$seen $q"
			if [ "$n" -gt 0 ]; then
				sleep 0.5
				kill -STOP "$q" 2>/dev/null
				n=$((n - 1))
			fi
		done
		sleep 0.05
	done
	echo $seen >"$TMP/qemus"
	echo $seen | wc -w
}
# none of the QEMUs stop_qemus saw is still there
no_qemu_left() {
	local q
	for q in $(cat "$TMP/qemus"); do ! kill -0 "$q" 2>/dev/null || return 1; done
}

# from the start, the one QEMU stopped: stuck, bounded, nothing left
start=$(date +%s)
KREWIND_STALL=3 timeout 90 "$KREWIND" replay "$rec" --to "icount:$((snap - 1000))" -q >"$TMP/stuck.out" 2>"$TMP/stuck.err" &
pid=$!
started=$(stop_qemus $pid 1)
wait $pid
rc=$?
took=$(($(date +%s) - start))
same "replay --to before the snapshot, its QEMU stopped: exit 1" "$rc" 1
check "... saying the replay is stuck ($(head -c 120 "$TMP/stuck.err"))" grep -q "the replay is stuck" "$TMP/stuck.err"
check "... within a bound (${took} s for a 3 s stall and 2 s queries; 60 s allowed)" [ "$took" -lt 60 ]
same "... after one QEMU" "$started" 1
check "... and no QEMU is left" no_qemu_left

# from the snapshot, the first QEMU stopped: a second from the same snapshot lands
target=$((snap + 300000))
timeout 90 "$KREWIND" replay "$rec" --to "icount:$target" --json -q >"$TMP/retry.json" 2>"$TMP/retry.err" &
pid=$!
started=$(stop_qemus $pid 1)
wait $pid
rc=$?
same "replay --to icount:$target, the first QEMU from the snapshot stopped: exit 0" "$rc" 0
same "... after two QEMUs" "$started" 2
same "... the second from the same snapshot" "$(jq -r .from_snapshot "$TMP/retry.json" 2>/dev/null)" "$snap"
same "... at the target" "$(jq -r .icount "$TMP/retry.json" 2>/dev/null)" "$target"
same "... with no warning (the start was not needed)" "$(grep -c "does not replay" "$TMP/retry.err")" 0
check "... and no QEMU is left" no_qemu_left
done_testing
