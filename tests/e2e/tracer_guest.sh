#!/usr/bin/env bash
# The tracer on a guest that is not our kernel (tracer/testguest/guest.S):
# traps found through its lidt, a page fault's error code, xAPIC EOIs written
# over MMIO, serial lines; and the icounts of those events under replay.
source "$(dirname "$0")/lib.sh"
PLUGIN=build/tracer/libkrewind.so
GUEST=build/tracer/testguest.elf

for f in "$PLUGIN" "$GUEST"; do
	[ -e "$f" ] || { skip "tracer guest" "$f not built"; done_testing; }
done
guest() { # [qemu args]: killed after 60 s whatever happens
	timeout -s KILL 60 qemu-system-x86_64 -cpu max -m 128M -kernel "$GUEST" -display none \
		-no-reboot -net none -device isa-debug-exit,iobase=0xf4,iosize=0x04 "$@"
}
q() { sqlite3 "$TMP/g.db" "$1"; }

# A probe for this guest: its puts(rsi = string) as a text marker.
printf 'thread gs:0x10\nputs marker text=str:rsi\n' >"$TMP/guest.probe"
guest -serial "file:$TMP/g.serial" -monitor none -icount "shift=auto,rr=record,rrfile=$TMP/r.bin" \
	-plugin "$PLUGIN,db=$TMP/g.db,probe=$TMP/guest.probe,symbols=$GUEST" </dev/null >/dev/null 2>&1
check "test guest recorded with the plugin (status 33)" [ $? -eq 33 ]
sym() { printf '%d' "0x$(nm "$GUEST" | awk -v s="$1" '$3 == s {print $1}')"; }

n=$(q "SELECT count(*) FROM events WHERE kind='trap' AND a=3 AND pc=$(sym bp_handler)")
check "int3: one trap at vector 3 in bp_handler" [ "$n" -eq 1 ]
n=$(q "SELECT count(*) FROM events WHERE kind='trap' AND a=14 AND b=0 AND pc=$(sym pf_handler)")
check "page fault: vector 14 with error code 0 (not present, read, ring 0)" [ "$n" -eq 1 ]
ticks=$(q "SELECT count(*) FROM events WHERE kind='trap' AND a=48")
eois=$(q "SELECT count(*) FROM events WHERE kind='eoi' AND a=2")
check "xAPIC timer traps and MMIO EOIs pair up ($ticks/$eois)" [ "$ticks" -ge 5 ] && [ "$ticks" -eq "$eois" ]
n=$(q "SELECT count(*) FROM events WHERE kind='iret' AND a IN (3, 14, 48)")
check "every trap left by an iretq with its vector" [ "$n" -eq $((ticks + 2)) ]
n=$(q "SELECT group_concat(text, '|') FROM events WHERE kind='marker' AND a=3")
check "serial lines ($n)" [ "$n" = "testguest: hello|testguest: breakpoint|testguest: 5 ticks" ]
n=$(q "SELECT group_concat(text, '|') FROM events WHERE kind='marker' AND a=0 AND pc=$(sym puts)")
nl=$'\n' # ($(...) drops the last one)
check "probed puts: text markers read from str:rsi" \
	[ "$n" = "testguest: hello$nl|testguest: breakpoint$nl|testguest: 5 ticks" ]

# Replay to: the first xAPIC EOI (an MMIO store, re-executed by QEMU in icount
# mode), and the last serial line (after the page fault).
{
	echo "target remote $TMP/gdb.sock"
	q "SELECT icount, pc, kind FROM events WHERE id IN
		((SELECT min(id) FROM events WHERE kind='eoi'), (SELECT max(id) FROM events WHERE kind='marker' AND a=3))
		ORDER BY icount" | while IFS='|' read -r ic pc kind; do
		echo "monitor replay_break $ic"
		echo "continue"
		echo "printf \"$kind $pc %lu\\n\", \$pc"
	done
} >"$TMP/gdb.cmd"
rm -f "$TMP/gdb.sock"
guest -icount "shift=auto,rr=replay,rrfile=$TMP/r.bin" -S -gdb "unix:$TMP/gdb.sock,server=on,wait=off" \
	-serial null -monitor none </dev/null >/dev/null 2>&1 &
qpid=$!
for _ in $(seq 50); do [ -S "$TMP/gdb.sock" ] && break; sleep 0.1; done
timeout -s KILL 60 gdb -nx -batch -x "$TMP/gdb.cmd" </dev/null >"$TMP/gdb.out" 2>&1
kill "$qpid" 2>/dev/null
wait "$qpid" 2>/dev/null
for kind in eoi marker; do
	read -r _ want got <<<"$(grep "^$kind " "$TMP/gdb.out")"
	check "replay_break to the $kind event stops at its pc" [ -n "$want" ] && [ "$want" = "$got" ]
done

done_testing
