#!/usr/bin/env bash
# Event icounts are the instruction counts QEMU's record/replay uses: record a
# clean boot with rr=record and the plugin, replay it with rr=replay, stop with
# replay_break at events' icounts (through gdb's `monitor`) and compare the pc
# QEMU stops at with the event's pc.
source "$(dirname "$0")/lib.sh"
PLUGIN=build/tracer/libkrewind.so

for f in "$PLUGIN" "$KERNEL"; do
	[ -e "$f" ] || { skip "tracer replay" "$f not built"; done_testing; }
done
# -net none: the NIC's option ROM rewrites its own code while it runs, which
# QEMU handles by restarting an instruction: the plugin would count the rest
# of its block twice.
qemu_rr() { # MODE [args]: killed after 120 s whatever happens
	local mode=$1; shift
	timeout -s KILL 120 qemu-system-x86_64 -cpu max -m 128M -kernel "$KERNEL" -append scenario=clean -display none \
		-no-reboot -net none -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-icount "shift=auto,rr=$mode,rrfile=$TMP/r.bin" "$@"
}
qemu_rr record -serial "file:$TMP/rec.serial" -monitor none \
	-plugin "$PLUGIN,db=$TMP/r.db,probe=probes/krewind.probe,symbols=$KERNEL" </dev/null >/dev/null 2>&1
check "clean boot recorded with rr=record and the plugin" [ $? -eq 33 ] && [ -s "$TMP/r.bin" ]

# Events to check: a few of each kind that is an instruction's own event.
sqlite3 -separator ' ' "$TMP/r.db" "SELECT icount, pc, kind FROM (
	SELECT icount, pc, kind, row_number() OVER (PARTITION BY kind ORDER BY id) AS n,
	       count(*) OVER (PARTITION BY kind) AS c FROM events
	WHERE kind IN ('irql','lock_try','lock_acq','lock_rel','switch','eoi','iret','wait','wait_end','signal','marker'))
	WHERE n IN (1, c / 2, c) ORDER BY icount" >"$TMP/want"
traps=$(sqlite3 -separator ' ' "$TMP/r.db" "SELECT icount, pc FROM events WHERE kind='trap' AND a=209 ORDER BY id LIMIT 1 OFFSET 20")
check "events to replay to ($(wc -l <"$TMP/want"))" [ "$(wc -l <"$TMP/want")" -ge 15 ] && [ -n "$traps" ]

# One replay, breaking at each icount in order.
{
	echo "target remote $TMP/gdb.sock"
	while read -r ic pc kind; do
		echo "monitor replay_break $ic"
		echo "continue"
		echo "printf \"at $ic %lu\\n\", \$pc"
	done <"$TMP/want"
} >"$TMP/gdb.cmd"
rm -f "$TMP/gdb.sock"
qemu_rr replay -S -gdb "unix:$TMP/gdb.sock,server=on,wait=off" -serial null -monitor none \
	</dev/null >/dev/null 2>&1 &
qpid=$!
for _ in $(seq 50); do [ -S "$TMP/gdb.sock" ] && break; sleep 0.1; done
timeout -s KILL 120 gdb -nx -batch -x "$TMP/gdb.cmd" </dev/null >"$TMP/gdb.out" 2>&1
kill "$qpid" 2>/dev/null
wait "$qpid" 2>/dev/null
bad=0 seen=0
while read -r ic pc kind; do
	got=$(sed -n "s/^at $ic \([0-9]*\)$/\1/p" "$TMP/gdb.out")
	seen=$((seen + 1))
	if [ "$got" != "$pc" ]; then
		bad=$((bad + 1))
		not_ok "replay_break $ic stops at the $kind event's pc" "want $(printf %x "$pc"), got ${got:+$(printf %x "$got")}"
	fi
done <"$TMP/want"
[ "$bad" -eq 0 ] && [ "$seen" -gt 0 ] && ok "replay_break to each of $seen events stops at the event's pc"

# A trap has no instruction of its own: replay_break to its icount stops just
# before the interrupt is delivered; one more instruction is the handler's first.
read -r ic pc <<<"$traps"
printf 'target remote %s\nmonitor replay_break %s\ncontinue\nstepi\nprintf "trap %%lu\\n", $pc\n' \
	"$TMP/gdb.sock" "$ic" >"$TMP/gdb2.cmd"
rm -f "$TMP/gdb.sock"
qemu_rr replay -S -gdb "unix:$TMP/gdb.sock,server=on,wait=off" -serial null -monitor none \
	</dev/null >/dev/null 2>&1 &
qpid=$!
for _ in $(seq 50); do [ -S "$TMP/gdb.sock" ] && break; sleep 0.1; done
timeout -s KILL 60 gdb -nx -batch -x "$TMP/gdb2.cmd" </dev/null >"$TMP/gdb2.out" 2>&1
kill "$qpid" 2>/dev/null
wait "$qpid" 2>/dev/null
got=$(sed -n 's/^trap \([0-9]*\)$/\1/p' "$TMP/gdb2.out")
check "replay_break to a timer trap's icount, stepi: in its handler ($(printf %x "$pc"))" [ -n "$pc" ] && [ "$got" = "$pc" ]

done_testing
